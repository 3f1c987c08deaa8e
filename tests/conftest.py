"""Shared fixtures: the real bundled model, loaded once per test run."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette

from harness.processes import free_port
from server.settings import Settings
from streaming.loader import LoadedModel, load_model

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings from the environment, so COWRITE_DEVICE / COWRITE_DTYPE steer the test run too."""
    base = Settings.from_env(os.environ)
    if "COWRITE_DATA_DIR" not in os.environ:
        base = replace(base, data_dir=ROOT / "data")
    if "COWRITE_ALLOWED_HOSTS" not in os.environ:
        # Starlette's TestClient sends `Host: testserver`; a real uvicorn here is on 127.0.0.1
        base = replace(base, allowed_hosts="testserver")
    return base


@pytest.fixture(scope="session")
def loaded_model(settings: Settings) -> LoadedModel:
    return load_model(settings.model, settings.device, settings.dtype, settings.model_cache_dir)


@contextlib.contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """A real uvicorn serving `app` on a free loopback port, in a thread; yields its base URL."""
    port = free_port()
    # no proxy in front: X-Forwarded-For is not trusted, as `python -m server` does by default
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), "uvicorn to start")
    assert thread.is_alive(), "uvicorn exited during start-up"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait for state another thread changes (a server's loop), bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.01)
