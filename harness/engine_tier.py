"""A `cowrite serve-engine` child process, for the tests of the model on its own tier
(tests/streaming/test_remote.py, tests/server/test_engine_tier.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx

from harness.processes import free_port, start_server, wait_ready

TOKEN = "engine-tier-test-token"
Health = dict[str, Any]


@dataclass
class EngineProcess:
    url: str
    process: Popen[bytes]

    async def health(self) -> Health:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            health: Health = (await http.get("/healthz")).json()
        return health

    async def settles(self, condition: Callable[[Health], bool], what: str, within_s: float = 30.0) -> Health:
        """The engine's /healthz once `condition` holds of it; fails after `within_s`."""
        async with asyncio.timeout(within_s), httpx.AsyncClient(base_url=self.url) as http:
            while True:
                health: Health = (await http.get("/healthz")).json()
                if condition(health):
                    return health
                # another process: nothing to wait on but its answers (bounded above)
                await asyncio.sleep(0.01)  # noqa: ASYNC110
        raise AssertionError(f"timed out waiting: {what}")


@contextlib.contextmanager
def engine_process(data_dir: Path, env: Mapping[str, str] | None = None) -> Iterator[EngineProcess]:
    """`python -m server serve-engine` on a free port with `TOKEN`, ready to serve."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    process = start_server(port, data_dir, {"COWRITE_ENGINE_TOKEN": TOKEN, **(env or {})}, ["serve-engine"])
    try:
        asyncio.run(wait_ready(url, process))
        yield EngineProcess(url, process)
    finally:
        process.terminate()
        process.wait(timeout=30)
