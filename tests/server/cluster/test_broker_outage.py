"""Redis goes away while two replicas serve one document: each keeps storing and acknowledging its
own writers' edits, and once Redis is back every replica catches up from the database (what pub/sub
dropped meanwhile is not lost). Runs its own `redis-server` on a free port, so stopping it disturbs
nothing else; PostgreSQL from `COWRITE_TEST_POSTGRES_URL`."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from harness.accounts import account_async
from harness.processes import free_port
from harness.yclient import YClient, document_socket
from server.app import create_app
from server.settings import Settings
from streaming.loader import LoadedModel
from tests.conftest import serve

pytestmark = pytest.mark.timeout(120)


class RedisServer:
    """A throwaway `redis-server` without persistence."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.process = subprocess.Popen(
            command, cwd=self.folder, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while True:  # a child process has no event to wait on: poll its port, bounded
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError("redis-server did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("needs redis-server and redis-cli (Debian's redis-server package)")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_replicas_catch_up_after_redis_comes_back(
    tmp_path: Path,
    settings: Settings,
    loaded_model: LoadedModel,
    postgres_url: str,
    redis_server: RedisServer,
) -> None:
    shared = replace(
        settings,
        database_url=postgres_url,
        redis_url=redis_server.url,
        secret_key="a secret both replicas share",
    )
    app_a = create_app(replace(shared, data_dir=tmp_path / "a"), loaded_model)
    app_b = create_app(replace(shared, data_dir=tmp_path / "b"), loaded_model)
    with serve(app_a) as a, serve(app_b) as b:
        async with httpx.AsyncClient(base_url=a) as http:
            ann = await account_async(http, "ann")
            created = await http.post("/api/documents", json={"title": "Outage"}, headers=ann)
            document = created.json()["id"]
        async with (
            YClient(document_socket(a, document), headers={**ann, "origin": a}) as on_a,
            YClient(document_socket(b, document), headers={**ann, "origin": b}) as on_b,
        ):
            await asyncio.gather(on_a.synced.wait(), on_b.synced.wait())
            with on_a.doc.transaction():
                on_a.text.insert(0, "before ")
            await on_b.wait_for(lambda c: "before" in str(c.text))

            redis_server.stop()
            with on_a.doc.transaction():
                on_a.text.insert(len(on_a.text), "during ")
            await on_a.wait_saved()  # stored and acknowledged without Redis
            assert on_a.closed is None and on_b.closed is None
            async with httpx.AsyncClient(base_url=b) as http:  # limits are counted on B meanwhile
                wrong = {"username": "ann", "password": "not the passphrase at all"}
                answer = await http.post("/api/auth/signin", json=wrong, headers={"origin": b})
                assert answer.status_code == 401, answer.text
                unready = await http.get("/readyz")
                assert unready.status_code == 503 and "redis" in unready.json()["problems"]

            redis_server.start()  # same port: the listeners reconnect and resync from the database
            await on_b.wait_for(lambda c: "during" in str(c.text), within_s=30)
            with on_b.doc.transaction():
                on_b.text.insert(len(on_b.text), "after")
            await on_a.wait_for(
                lambda c: str(c.text) == str(on_b.text) and "after" in str(c.text), within_s=30
            )
            async with httpx.AsyncClient(base_url=b) as http:
                assert (await http.get("/readyz")).status_code == 200
