"""PostgreSQL restarts and goes away while two people type, through a real uvicorn: afterwards
every acknowledged edit is in the database and both copies agree.

The test runs its own PostgreSQL cluster (on a free port, in a temporary folder), so stopping it
disturbs nothing else; it runs where `COWRITE_TEST_POSTGRES_URL` says PostgreSQL is installed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from pycrdt import Doc, Text

from harness.accounts import account
from harness.processes import free_port
from harness.yclient import YClient
from server.app import create_app
from server.settings import Settings
from streaming.loader import LoadedModel
from tests.conftest import serve

pytestmark = pytest.mark.timeout(240)
POSTGRES_ENV = "COWRITE_TEST_POSTGRES_URL"
WORDS = 60


class Cluster:
    """A throwaway PostgreSQL cluster run with `pg_ctl` (as the `postgres` user when we are root)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.folder = Path(tempfile.mkdtemp(prefix="cowrite-pg-"))
        self.port = free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, program: str, *args: str) -> None:
        command = [*self.as_postgres, str(self.bindir / program), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        data, log = str(self.folder / "data"), str(self.folder / "server.log")
        self._run("pg_ctl", "-D", data, "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        subprocess.run(
            [
                *self.as_postgres,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"needs PostgreSQL: set {POSTGRES_ENV} (as .ci/run does); none on this machine")
    try:
        bindir = Path(
            subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("PostgreSQL's server programs (pg_config --bindir) are not installed here")
    made = Cluster(bindir)
    try:
        made.start()
        yield made
    finally:
        made.remove()


@pytest.fixture(scope="module")
def live(
    cluster: Cluster, settings: Settings, loaded_model: LoadedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Any, dict[str, dict[str, str]]]]:
    app = create_app(
        replace(settings, data_dir=tmp_path_factory.mktemp("postgres"), database_url=cluster.url),
        loaded_model,
    )
    with serve(app) as url, httpx.Client(base_url=url) as http:
        yield url, app, {name: account(http, name) for name in ("ann", "bob")}


class Writer:
    """Someone typing into their copy of the document, connected or not; their tab reconnects
    whenever the server closes it, as the editor does, and remembers every handshake answer."""

    def __init__(self, socket: str, headers: dict[str, str], name: str) -> None:
        self.socket = socket
        self.headers = headers
        self.name = name
        self.doc: Doc[Text] = Doc()
        self.text = self.doc.get("content", type=Text)
        self.typed: list[str] = []
        self.closes: list[int] = []
        self.refusals: list[int] = []  # HTTP statuses of refused handshakes
        self.done_typing = asyncio.Event()

    async def type(self) -> None:
        for i in range(WORDS):
            word = f"{self.name}{i} "
            self.text.insert(len(str(self.text).encode()), word)
            self.typed.append(word)
            await asyncio.sleep(0.05)
        self.done_typing.set()

    async def stay_connected(self) -> None:
        """Connect, and reconnect after any close, until typing is over and all of it is saved."""
        while True:
            try:
                async with YClient(self.socket, headers=self.headers, doc=self.doc) as client:
                    await asyncio.wait_for(client.synced.wait(), 10)
                    await client.wait_for(
                        lambda c: c.closed is not None or (self.done_typing.is_set() and c.saved()),
                        within_s=60,
                    )
                    if client.closed is None:
                        return
                    self.closes.append(client.closed)
            except websockets.InvalidStatus as refused:
                self.refusals.append(refused.response.status_code)
            except (OSError, TimeoutError, websockets.ConnectionClosed):
                pass
            await asyncio.sleep(0.2)  # the editor backs off before reconnecting


async def test_acknowledged_edits_survive_postgres_restarting_and_going_away(
    live: Any, cluster: Cluster
) -> None:
    url, app, people = live
    async with httpx.AsyncClient(base_url=url, headers=people["ann"]) as http:
        document = (await http.post("/api/documents", json={"title": "PG"})).json()["id"]
        invite = {"username": "bob", "role": "editor"}
        await http.post(f"/api/documents/{document}/members", json=invite)
    socket = url.replace("http", "ws", 1) + f"/ws/doc/{document}"
    ann, bob = Writer(socket, people["ann"], "ann"), Writer(socket, people["bob"], "bob")
    tasks = [asyncio.create_task(task) for w in (ann, bob) for task in (w.type(), w.stay_connected())]
    try:
        await asyncio.sleep(0.5)  # both typing
        await asyncio.to_thread(cluster.restart)  # a blip: connections die, the server comes back
        await asyncio.sleep(0.5)
        await asyncio.to_thread(cluster.stop)  # an outage, until the document sockets give up
        async with asyncio.timeout(30):
            while not (ann.closes or bob.closes) or not (ann.refusals or bob.refusals):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await asyncio.to_thread(cluster.start)
        async with asyncio.timeout(120):
            await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    assert set(ann.closes + bob.closes) == {1013}
    assert set(ann.refusals + bob.refusals) == {503}
    # the database holds every word: the room, dropped, loads it all again from its log
    app.state.services.rooms._rooms.pop(document, None)
    async with YClient(socket, headers=people["bob"]) as reader:
        await asyncio.wait_for(reader.synced.wait(), 10)
        stored = str(reader.text)
    for word in ann.typed + bob.typed:
        assert word in stored, f"{word!r} was lost"
    async with httpx.AsyncClient(base_url=url, headers=people["ann"]) as http:
        assert (await http.get(f"/api/documents/{document}")).json()["text"] == stored
    # and both copies come to hold exactly that
    async with YClient(socket, headers=people["ann"], doc=ann.doc) as again_ann:
        async with YClient(socket, headers=people["bob"], doc=bob.doc) as again_bob:
            await again_ann.wait_for(lambda c: str(c.text) == stored)
            await again_bob.wait_for(lambda c: str(c.text) == stored)
