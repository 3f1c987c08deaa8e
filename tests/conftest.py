"""Shared fixtures: the real bundled model, loaded once per test run."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import redis
import uvicorn
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from harness.processes import free_port
from server.settings import Settings
from streaming.loader import LoadedModel, load_model

ROOT = Path(__file__).resolve().parent.parent
# Most tests need a suggestion on screen whatever the model's confidence in it (ghost text, Tab,
# history): their servers show every suggestion, as COWRITE_SUGGEST_RUN_CONFIDENCE=0 does. The
# default policy, which shows only confident ones, is tested where it is named
# (tests/server/suggest/test_policy.py, test_outcomes.py). This process's own servers and the
# uvicorn subprocesses both read it from the environment.
os.environ.setdefault("COWRITE_SUGGEST_RUN_CONFIDENCE", "0")


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


# more than one replica: a fresh PostgreSQL database and a Redis cleared of Cowrite's keys, from
# the servers `.ci/run` names (skipped, saying so, where there are none)
POSTGRES_ENV = "COWRITE_TEST_POSTGRES_URL"
REDIS_ENV = "COWRITE_TEST_REDIS_URL"


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A new, empty database on the test PostgreSQL server, dropped afterwards."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"needs PostgreSQL: set {POSTGRES_ENV} (as .ci/run does); none on this machine")
    url = make_url(base)
    name = f"cowrite_replicas_{uuid.uuid4().hex[:12]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def redis_url() -> str:
    """The test Redis, with Cowrite's counters and leases from earlier runs removed."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"needs Redis: set {REDIS_ENV} (as .ci/run does); none on this machine")
    client = redis.Redis.from_url(url)
    try:
        client.ping()
        for key in client.scan_iter(match="cowrite:*"):
            client.delete(key)
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {REDIS_ENV} does not answer: {exc}")
    finally:
        client.close()
    return url
