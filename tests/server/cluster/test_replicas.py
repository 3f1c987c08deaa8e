"""Two replicas (real uvicorns) sharing one PostgreSQL database and one Redis: clients on either
converge, presence crosses, a role change or sign-out made through one reaches sockets on the other,
and the limits are counted once for both."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from pycrdt import create_awareness_message, write_message

from harness.accounts import account
from harness.yclient import YClient, document_socket
from server.app import create_app
from server.cluster.broker import RESYNC, UPDATE, Envelope
from server.cluster.redis_broker import RedisBroker
from server.cluster.redis_limits import RedisAttemptLimiter, RedisRateLimiter
from server.collab.yupdates import write_var_uint
from server.errors import WS_4401_UNAUTHENTICATED, WS_4429_TOO_MANY_SOCKETS
from server.settings import Settings
from storage import sharing
from storage.database import Store
from storage.models import Role
from streaming.loader import LoadedModel
from tests.conftest import serve

pytestmark = pytest.mark.timeout(180)
SOCKETS_PER_USER = 3
SIGNIN_ATTEMPTS = 3


@dataclass
class Pair:
    a: str  # replica A's base URL
    b: str
    people: dict[str, dict[str, str]]  # headers acting as each person (origin: replica A)
    store: Store  # replica A's, on the shared database

    def on(self, url: str, name: str) -> dict[str, str]:
        """`name`'s headers for a request to `url` (the same session, that replica's origin)."""
        return {**self.people[name], "origin": url}


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory,
    settings: Settings,
    loaded_model: LoadedModel,
    postgres_url: str,
    redis_url: str,
) -> Iterator[Pair]:
    shared = replace(
        settings,
        database_url=postgres_url,
        redis_url=redis_url,
        secret_key="a secret both replicas sign cookies with",
        sockets_per_user=SOCKETS_PER_USER,
        signin_attempts=SIGNIN_ATTEMPTS,
        session_check_s=1,
    )
    app_a = create_app(replace(shared, data_dir=tmp_path_factory.mktemp("replica-a")), loaded_model)
    app_b = create_app(replace(shared, data_dir=tmp_path_factory.mktemp("replica-b")), loaded_model)
    with serve(app_a) as a, serve(app_b) as b, httpx.Client(base_url=a) as http:
        people = {name: account(http, name) for name in ("ann", "bob", "cy")}
        yield Pair(a, b, people, app_a.state.services.store)


def entry(client_id: int, clock: int, state: str) -> bytes:
    return (
        write_var_uint(1) + write_var_uint(client_id) + write_var_uint(clock) + write_message(state.encode())
    )


async def call(method: str, url: str, **options: Any) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.request(method, url, **options)


def new_document(pair: Pair, title: str, members: dict[str, str]) -> str:
    created = httpx.post(f"{pair.a}/api/documents", json={"title": title}, headers=pair.people["ann"])
    assert created.status_code == 201, created.text
    document = str(created.json()["id"])
    for name, role in members.items():
        added = httpx.post(
            f"{pair.a}/api/documents/{document}/members",
            json={"username": name, "role": role},
            headers=pair.people["ann"],
        )
        assert added.status_code == 201, added.text
    return document


async def test_clients_on_two_replicas_converge_and_every_edit_is_stored(pair: Pair) -> None:
    document = new_document(pair, "Split", {"bob": "editor"})
    async with (
        YClient(document_socket(pair.a, document), headers=pair.on(pair.a, "ann")) as ann,
        YClient(document_socket(pair.b, document), headers=pair.on(pair.b, "bob")) as bob,
    ):
        await asyncio.gather(ann.synced.wait(), bob.synced.wait())
        for i in range(20):
            writer, word = (ann, f"a{i} ") if i % 2 == 0 else (bob, f"b{i} ")
            with writer.doc.transaction():
                writer.text.insert(len(writer.text), word)
            await asyncio.sleep(0.01)  # interleaved with the other replica's edits arriving
        await asyncio.gather(ann.wait_saved(), bob.wait_saved())
        await ann.wait_for(lambda c: str(c.text) == str(bob.text) and len(str(c.text)) > 0, within_s=10)
        await bob.wait_for(lambda c: str(c.text) == str(ann.text), within_s=10)
        final = str(ann.text)
    words = {f"a{i}" for i in range(0, 20, 2)} | {f"b{i}" for i in range(1, 20, 2)}
    assert set(final.split()) == words
    for url, name in ((pair.a, "ann"), (pair.b, "bob")):  # each replica reads the same stored text
        stored = await call("GET", f"{url}/api/documents/{document}", headers=pair.on(url, name))
        assert stored.status_code == 200
        assert set(stored.json()["text"].split()) == words


async def test_presence_crosses_replicas(pair: Pair) -> None:
    document = new_document(pair, "Presence", {"bob": "editor"})
    async with (
        YClient(document_socket(pair.a, document), headers=pair.on(pair.a, "ann")) as ann,
        YClient(document_socket(pair.b, document), headers=pair.on(pair.b, "bob")) as bob,
    ):
        await asyncio.gather(ann.synced.wait(), bob.synced.wait())
        await ann.set_awareness({"user": {"name": "forged", "color": "#30bced"}}, clock=1)
        await bob.wait_for(lambda c: ann.client_id in c.awareness)
        seen = bob.awareness[ann.client_id]
        assert seen["user"]["name"] == "ann"  # rebuilt by ann's replica, not passed through
        assert seen["user"]["color"] == "#30bced"
        # someone joining later on B still sees ann
        async with YClient(document_socket(pair.b, document), headers=pair.on(pair.b, "ann")) as late:
            await late.wait_for(lambda c: ann.client_id in c.awareness)
        await ann.set_awareness(None, clock=2)
        await bob.wait_for(lambda c: c.awareness.get(ann.client_id) is None)

        # pages pass on the states they hear (y-websocket does); bob's, sent back through A by ann's
        # connection, stays bob's: A neither gives his client id to ann nor renames him
        await bob.set_awareness({"user": {"name": "bob"}}, clock=5)
        await ann.wait_for(lambda c: bob.client_id in c.awareness)
        echoed = json.dumps(ann.awareness[bob.client_id])  # as heard: the same clock
        await ann.send_raw(create_awareness_message(entry(bob.client_id, 5, echoed)))
        await bob.set_awareness({"user": {"name": "bob"}, "suggesting": True}, clock=6)
        await ann.wait_for(lambda c: c.awareness.get(bob.client_id, {}).get("suggesting") is True)
        assert ann.awareness[bob.client_id]["user"]["name"] == "bob"

        # bob's page moves to A (B went away): news of his client id there is his
        async with YClient(
            document_socket(pair.a, document), headers=pair.on(pair.a, "bob"), doc=bob.doc
        ) as moved:
            await moved.synced.wait()
            await moved.set_awareness({"user": {"name": "bob"}, "suggesting": False}, clock=7)
            await ann.wait_for(lambda c: c.awareness.get(bob.client_id, {}).get("suggesting") is False)
            assert ann.awareness[bob.client_id]["user"]["name"] == "bob"


async def test_a_role_changed_through_one_replica_holds_on_the_other(pair: Pair) -> None:
    document = new_document(pair, "Demoted", {"bob": "editor"})
    async with YClient(document_socket(pair.b, document), headers=pair.on(pair.b, "bob")) as bob:
        await bob.synced.wait()
        with bob.doc.transaction():
            bob.text.insert(0, "allowed ")
        await bob.wait_saved()
        changed = await call(
            "PATCH",
            f"{pair.a}/api/documents/{document}/members/bob",
            json={"role": "viewer"},
            headers=pair.people["ann"],
        )
        assert changed.status_code == 200, changed.text
        await bob.wait_for(lambda c: c.role == "viewer")  # the change went A -> Redis -> B
        with bob.doc.transaction():
            bob.text.insert(len(bob.text), "refused ")
        await bob.wait_for(lambda c: bool(c.rejected))
    stored = (await call("GET", f"{pair.a}/api/documents/{document}", headers=pair.people["ann"])).json()[
        "text"
    ]
    assert stored.startswith("allowed") and "refused" not in stored


async def test_a_comment_made_through_one_replica_is_announced_on_the_other(pair: Pair) -> None:
    document = new_document(pair, "Commented", {"bob": "commenter"})
    async with YClient(document_socket(pair.b, document), headers=pair.on(pair.b, "ann")) as ann:
        await ann.synced.wait()
        made = await call(
            "POST",
            f"{pair.a}/api/documents/{document}/comments",
            json={"body": "Why?", "anchor_start": "AQ==", "anchor_end": "Ag=="},
            headers=pair.people["bob"],
        )
        assert made.status_code == 201, made.text
        await ann.wait_for(lambda c: c.comment_changes == 1)  # A -> Redis -> B


async def test_a_role_change_whose_message_was_lost_holds_within_a_sweep(pair: Pair) -> None:
    document = new_document(pair, "Lost message", {"bob": "editor"})
    async with YClient(document_socket(pair.b, document), headers=pair.on(pair.b, "bob")) as bob:
        await bob.synced.wait()
        # changed in the database with no message to any replica (as if the broker had lost it)
        await pair.store.run(sharing.put_member, document, "bob", Role.VIEWER)
        await bob.wait_for(lambda c: c.role == "viewer", within_s=10)  # B's sweep found it
        with bob.doc.transaction():
            bob.text.insert(0, "refused ")
        await bob.wait_for(lambda c: bool(c.rejected))


async def test_signing_out_through_one_replica_closes_sockets_on_the_other(pair: Pair) -> None:
    document = new_document(pair, "Signed out", {"cy": "editor"})
    with httpx.Client(base_url=pair.a) as http:
        cy = account(http, "cy")  # a session of cy's own, so the others' stay signed in
    async with YClient(
        document_socket(pair.b, document), headers=pair.on(pair.b, "cy") | {"cookie": cy["cookie"]}
    ) as socket:
        await socket.synced.wait()
        out = await call("POST", f"{pair.a}/api/auth/signout", headers=cy)
        assert out.status_code in (200, 204), out.text
        await socket.wait_for(lambda c: c.closed is not None, within_s=10)
        assert socket.closed == WS_4401_UNAUTHENTICATED


async def test_sockets_per_user_are_counted_across_replicas(pair: Pair) -> None:
    document = new_document(pair, "Counted", {})
    headers = {url: pair.on(url, "ann") for url in (pair.a, pair.b)}
    a1 = YClient(document_socket(pair.a, document), headers=headers[pair.a])
    b1 = YClient(document_socket(pair.b, document), headers=headers[pair.b])
    a2 = YClient(document_socket(pair.a, document), headers=headers[pair.a])
    async with a1, b1, a2:
        await asyncio.gather(a1.synced.wait(), b1.synced.wait(), a2.synced.wait())
        async with YClient(document_socket(pair.b, document), headers=headers[pair.b]) as over:
            await over.wait_for(lambda c: c.closed is not None, within_s=10)
            assert over.closed == WS_4429_TOO_MANY_SOCKETS
    # closed sockets give their places back on both replicas
    async with YClient(document_socket(pair.b, document), headers=headers[pair.b]) as again:
        await again.synced.wait()
        assert again.closed is None


def test_failed_sign_ins_are_counted_across_replicas(pair: Pair) -> None:
    wrong = {"username": "bob", "password": "not bob's passphrase at all"}
    for url in (pair.a, pair.b, pair.a):
        answer = httpx.post(f"{url}/api/auth/signin", json=wrong, headers={"origin": url})
        assert answer.status_code == 401, answer.text
    refused = httpx.post(f"{pair.b}/api/auth/signin", json=wrong, headers={"origin": pair.b})
    assert refused.status_code == 429, refused.text


async def test_the_redis_limiters_count_once_for_every_replica(redis_url: str) -> None:
    one, two = aioredis.Redis.from_url(redis_url), aioredis.Redis.from_url(redis_url)
    try:
        first = RedisAttemptLimiter(one, "test-shared", {"account": 2}, window_s=60)
        second = RedisAttemptLimiter(two, "test-shared", {"account": 2}, window_s=60)
        held = await first.reserve("account:zed")
        assert held is not None and await second.reserve("account:zed") is not None
        assert await first.reserve("account:zed") is None and await second.reserve("account:zed") is None
        assert 58 <= await second.retry_after("account:zed") <= 60
        await first.release(held, "account:zed")  # un-counted: a place is free again, for either
        assert await second.reserve("account:zed") is not None
        await second.forget("account:zed")
        assert await first.retry_after("account:zed") == 0

        rate_one = RedisRateLimiter(one, "test-rate", per_minute=3)
        rate_two = RedisRateLimiter(two, "test-rate", per_minute=3)
        takes = [await rate_one.take("zed"), await rate_two.take("zed"), await rate_one.take("zed")]
        assert takes == [0.0, 0.0, 0.0]
        assert 0 < await rate_two.take("zed") <= 20.0  # one token comes back every 20 s
    finally:
        await one.aclose()
        await two.aclose()


async def test_the_broker_carries_envelopes_between_replicas_and_resyncs_after_a_cut(redis_url: str) -> None:
    async with RedisBroker(redis_url) as a, RedisBroker(redis_url) as b:
        heard_a: list[Envelope] = []
        heard_b: list[Envelope] = []
        arrived = asyncio.Event()

        def on_b(envelope: Envelope) -> None:
            heard_b.append(envelope)
            arrived.set()

        await a.subscribe("cowrite:doc:test-broker", heard_a.append)
        await b.subscribe("cowrite:doc:test-broker", on_b)
        await a.publish("cowrite:doc:test-broker", UPDATE, b"an update")
        await asyncio.wait_for(arrived.wait(), 5)
        assert [(e.kind, e.payload, e.sender) for e in heard_b] == [(UPDATE, b"an update", a.replica)]
        assert heard_a == []  # never echoed to its sender

        # leases: one holder at a time; released, the other may take it
        assert await a.take_lease("test-broker", 5) and await a.take_lease("test-broker", 5)
        assert not await b.take_lease("test-broker", 5)
        await a.release_lease("test-broker")
        assert await b.take_lease("test-broker", 5)
        await b.release_lease("test-broker")

        # cut b's listening connection: it reconnects and tells its subscribers to resync
        arrived.clear()
        killer = aioredis.Redis.from_url(redis_url)
        try:
            clients = await killer.client_list()
            listening = [c for c in clients if "subscribe" in c.get("cmd", "") and int(c.get("sub", 0)) > 0]
            assert listening, "no subscribed connections found"
            for client in listening:
                await killer.client_kill_filter(_id=client["id"])
        finally:
            await killer.aclose()
        async with asyncio.timeout(15):
            while not any(e.kind == RESYNC for e in heard_b):
                arrived.clear()
                await arrived.wait()
        arrived.clear()
        await a.publish("cowrite:doc:test-broker", UPDATE, b"after the cut")
        async with asyncio.timeout(10):
            while heard_b[-1].payload != b"after the cut":
                arrived.clear()
                await arrived.wait()
