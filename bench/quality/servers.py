"""The servers a run plays against, each for as long as a `with` block runs: a real Cowrite server
under a variant's settings, and llama-server on the same GGUF (bench.peer builds and starts it)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from bench.peer import serve as serve_peer
from bench.peer import wait_peer_ready
from harness.processes import free_port, start_server, wait_ready


@contextlib.contextmanager
def cowrite_server(data_dir: Path, env: dict[str, str]) -> Iterator[str]:
    """A real Cowrite server with `env` added to its settings, for as long as the block runs."""
    port = free_port()
    # every run signs its writers in again: more than the default 30 sign-ups an hour
    server = start_server(port, data_dir, {"COWRITE_SIGNUPS_PER_ADDRESS": "10000"} | env)
    try:
        base = f"http://127.0.0.1:{port}"
        asyncio.run(wait_ready(base, server))
        yield base
    finally:
        _stop(server)


@contextlib.contextmanager
def peer_server(data_dir: Path, gguf: Path | None) -> Iterator[str]:
    port = free_port()
    peer = serve_peer(port, data_dir / "llama-server.log", gguf=gguf)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_peer_ready(base, peer)
        yield base
    finally:
        _stop(peer)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


def model_env(model: str | None) -> dict[str, str]:
    return {"COWRITE_MODEL": model} if model else {}
