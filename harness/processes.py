"""Cowrite servers as child processes, for tests and benchmarks that need a real one to kill or load.

The server's log goes to `data_dir/server.log`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(
    port: int, data_dir: Path, env: Mapping[str, str] | None = None, command: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """`python -m server` on `port` with its data in `data_dir`, reusing the converted weights;
    `env` adds settings (`COWRITE_...`); `command` is a subcommand (`serve-engine`)."""
    models, shared = data_dir / "models", ROOT / "data" / "models"
    if not models.exists():
        shared.mkdir(parents=True, exist_ok=True)  # converted once, then loaded by every server
        models.symlink_to(shared)
    line = [sys.executable, "-m", "server", *command, "--port", str(port), "--data-dir", str(data_dir)]
    environment = {**os.environ, "COWRITE_LOG_LEVEL": "warning", **(env or {})}
    with open(data_dir / "server.log", "ab") as log:
        return subprocess.Popen(line, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)


async def wait_ready(url: str, server: subprocess.Popen[bytes], within_s: float = 120.0) -> None:
    """Return once `/healthz` answers; fail at once if the server exits."""
    async with asyncio.timeout(within_s), httpx.AsyncClient(base_url=url) as http:
        while True:
            assert server.poll() is None, "the server exited during start-up"
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)  # noqa: ASYNC110 - a child process has no event to wait on
