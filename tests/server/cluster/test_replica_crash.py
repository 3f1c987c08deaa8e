"""A replica is SIGKILLed while people type on both: every edit it acknowledged is on the other
replica and in the database, and its writers reconnect to the other one and resync what it lacked.
Two `python -m server` processes sharing PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from harness.accounts import account_async
from harness.processes import free_port, start_server, wait_ready
from harness.yclient import YClient, document_socket

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
async def replicas(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> AsyncIterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    env = {
        "COWRITE_DATABASE_URL": postgres_url,
        "COWRITE_REDIS_URL": redis_url,
        "COWRITE_SECRET_KEY": "a secret both replicas sign cookies with",
    }
    servers: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for name in ("a", "b"):
            port = free_port()
            (tmp_path / name).mkdir()
            servers.append(start_server(port, tmp_path / name, env))
            urls.append(f"http://127.0.0.1:{port}")
        for url, server in zip(urls, servers, strict=True):
            await wait_ready(url, server)
        yield list(zip(urls, servers, strict=True))
    finally:
        for server in servers:
            if server.poll() is None:
                server.terminate()
        for server in servers:
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        _replicas_log(tmp_path)


def _replicas_log(folder: Path) -> None:
    for log in sorted(folder.glob("*/server.log")):
        print(f"--- {log.parent.name}/server.log\n{log.read_text(errors='replace')[-3000:]}")


async def type_words(client: YClient, words: list[str], stop: asyncio.Event) -> dict[str, int]:
    """One word per update, at typing speed, until `stop` or the socket closes; returns each word
    typed with the count of updates the client had sent once it was (acknowledged when the
    server's count reaches it)."""
    sent: dict[str, int] = {}
    for word in words:
        if stop.is_set() or client.closed is not None:
            break
        with client.doc.transaction():
            client.text.insert(len(client.text), word + " ")
        sent[word] = client.updates_sent
        await asyncio.sleep(0.02)
    return sent


async def test_a_killed_replica_loses_nothing_it_acknowledged(
    replicas: list[tuple[str, subprocess.Popen[bytes]]],
) -> None:
    (a, server_a), (b, _) = replicas
    async with httpx.AsyncClient(base_url=a) as http:
        ann = await account_async(http, "ann")
        bob = await account_async(http, "bob")
        created = await http.post("/api/documents", json={"title": "Crash"}, headers=ann)
        document = created.json()["id"]
        added = await http.post(
            f"/api/documents/{document}/members", json={"username": "bob", "role": "editor"}, headers=ann
        )
        assert added.status_code == 201, added.text
    ann_words = [f"ann{i}" for i in range(400)]
    bob_words = [f"bob{i}" for i in range(40)]
    stop = asyncio.Event()
    ann_client = YClient(document_socket(a, document), headers={**ann, "origin": a})
    async with ann_client, YClient(document_socket(b, document), headers={**bob, "origin": b}) as bob_client:
        await asyncio.gather(ann_client.synced.wait(), bob_client.synced.wait())
        typing = asyncio.create_task(type_words(ann_client, ann_words, stop))
        await ann_client.wait_for(lambda c: c.updates_acknowledged >= 20, within_s=30)
        server_a.send_signal(signal.SIGKILL)  # mid-typing: some of ann's words are not stored yet
        await ann_client.wait_for(lambda c: c.closed is not None, within_s=10)
        stop.set()
        sent = await typing
        acknowledged = [w for w, count in sent.items() if count <= ann_client.updates_acknowledged]
        typed = list(sent)
        assert len(acknowledged) >= 10

        # B has every word A acknowledged, before ann comes back
        await bob_client.wait_for(lambda c: set(acknowledged) <= set(str(c.text).split()), within_s=10)
        await type_words(bob_client, bob_words, asyncio.Event())
        await bob_client.wait_saved()

        # ann's tab reconnects to the surviving replica with its copy; the sync sends what B lacks
        async with YClient(
            document_socket(b, document), headers={**ann, "origin": b}, doc=ann_client.doc
        ) as back:
            await back.synced.wait()
            expected = set(typed) | set(bob_words)
            await bob_client.wait_for(lambda c: expected <= set(str(c.text).split()), within_s=20)
            await back.wait_for(lambda c: str(c.text) == str(bob_client.text), within_s=20)
    async with httpx.AsyncClient(base_url=b) as http:
        stored = (await http.get(f"/api/documents/{document}", headers={**ann, "origin": b})).json()["text"]
    assert set(acknowledged) | set(bob_words) <= set(stored.split())
    assert set(typed) <= set(stored.split())
