"""Presence through a real uvicorn: hostile colours and fields never reach another page, and one
connection cannot make the server hold unbounded presence (ids, bytes per state, bytes per room)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from pycrdt import create_awareness_message, write_message

from harness.accounts import account, shared_document
from harness.yclient import YClient, document_socket
from server.app import create_app
from server.collab.awareness import AwarenessLimits, RoomPresence, sanitized
from server.collab.yupdates import write_var_uint
from server.settings import Settings
from streaming.loader import LoadedModel
from tests.conftest import serve

pytestmark = pytest.mark.timeout(120)

ROOM_LIMIT_KB = 2


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, loaded_model: LoadedModel
) -> Iterator[tuple[str, dict[str, dict[str, str]]]]:
    app_settings = replace(
        settings,
        data_dir=tmp_path_factory.mktemp("awareness"),
        database_url=None,
        awareness_room_limit_kb=ROOM_LIMIT_KB,
    )
    with serve(create_app(app_settings, loaded_model)) as url, httpx.Client(base_url=url) as http:
        people = {name: account(http, name) for name in ("alice", "ed")}
        yield url, people


def entry(client_id: int, clock: int, state: str) -> bytes:
    return write_var_uint(client_id) + write_var_uint(clock) + write_message(state.encode())


def position(clock: int, tname: str = "content") -> dict[str, Any]:
    return {"type": None, "tname": tname, "item": {"client": 7, "clock": clock}, "assoc": 0}


async def test_only_hex_colours_and_known_fields_reach_the_others(live: Any) -> None:
    url, people = live
    socket = document_socket(url, shared_document(url, people["alice"], "ed", "Presence"))
    async with (
        YClient(socket, headers=people["alice"]) as watcher,
        YClient(socket, headers=people["ed"]) as ed,
    ):
        hostile = {
            "user": {
                "name": "alice",
                "color": "red;background:url(http://127.0.0.1:9/track)",
                "colorLight": "#fff;position:fixed;inset:0",
            },
            "cursor": {"anchor": {"item": {"client": "x", "clock": 1}}, "head": position(1)},
            "suggesting": "yes",
            "html": "<img src=x onerror=alert(1)>",
        }
        await ed.set_awareness(hostile, clock=1)
        await watcher.wait_for(lambda c: ed.client_id in c.awareness)
        assert watcher.awareness[ed.client_id] == {"user": {"name": "ed"}}

        honest = {
            "user": {"name": "ed", "color": "#c33", "colorLight": "#cc3333"},
            "cursor": {"anchor": position(3), "head": position(5)},
            "suggesting": True,
        }
        await ed.set_awareness(honest, clock=2)
        await watcher.wait_for(lambda c: c.awareness[ed.client_id].get("suggesting") is True)
        assert watcher.awareness[ed.client_id] == honest
        # y-codemirror's own colourLight, with an alpha channel, is dropped: it derives the same one
        await ed.set_awareness(
            {"user": {"name": "ed", "color": "#cc3333", "colorLight": "#cc333333"}}, clock=3
        )
        await watcher.wait_for(lambda c: c.awareness[ed.client_id]["user"].get("color") == "#cc3333")
        assert watcher.awareness[ed.client_id] == {"user": {"name": "ed", "color": "#cc3333"}}


async def test_a_connection_may_use_only_a_few_client_ids(live: Any) -> None:
    url, people = live
    socket = document_socket(url, shared_document(url, people["alice"], "ed", "Presence"))
    limit = AwarenessLimits().ids_per_connection
    async with (
        YClient(socket, headers=people["alice"]) as watcher,
        YClient(socket, headers=people["ed"]) as ed,
    ):
        claimed = [10_000 + i for i in range(limit + 1)]
        for client_id in claimed[:limit]:
            await ed.send_raw(create_awareness_message(write_var_uint(1) + entry(client_id, 1, "{}")))
        await watcher.wait_for(lambda c: set(claimed[:limit]) <= c.awareness.keys())
        await ed.send_raw(create_awareness_message(write_var_uint(1) + entry(claimed[-1], 1, "{}")))
        await ed.wait_for(lambda c: c.closed is not None)
        assert ed.closed == 1008
        # the closed connection's states go away for everyone; the refused one never arrived
        await watcher.wait_for(lambda c: not set(claimed) & c.awareness.keys())


async def test_a_message_claiming_400000_entries_is_refused_before_reading_them(live: Any) -> None:
    url, people = live
    socket = document_socket(url, shared_document(url, people["alice"], "ed", "Presence"))
    async with YClient(socket, headers=people["ed"]) as ed, httpx.AsyncClient(base_url=url) as http:
        await asyncio.wait_for(ed.synced.wait(), 10)
        claim = write_var_uint(415_000) + b"".join(entry(20_000 + i, 1, "{}") for i in range(50))
        await ed.send_raw(create_awareness_message(claim))
        await ed.wait_for(lambda c: c.closed is not None)
        assert ed.closed == 1008
        assert (await http.get("/healthz")).status_code == 200


async def test_an_oversized_state_or_message_is_refused_and_not_relayed(live: Any) -> None:
    url, people = live
    socket = document_socket(url, shared_document(url, people["alice"], "ed", "Presence"))
    async with YClient(socket, headers=people["alice"]) as watcher:
        async with YClient(socket, headers=people["ed"]) as ed:
            big = json.dumps({"user": {"name": "ed"}, "padding": "x" * (9 << 10)})
            await ed.send_raw(create_awareness_message(write_var_uint(1) + entry(ed.client_id, 1, big)))
            await ed.wait_for(lambda c: c.closed is not None)
            assert ed.closed == 1008
        async with YClient(socket, headers=people["ed"]) as ed:
            # a 4 MB awareness message is refused by its size, before it is parsed
            huge = write_var_uint(1) + entry(ed.client_id, 1, json.dumps({"p": "x" * ((4 << 20) - 100)}))
            await ed.send_raw(create_awareness_message(huge))
            await ed.wait_for(lambda c: c.closed is not None)
            assert ed.closed in (1008, 1009)
        # the server relays a state to its sender too: once alice sees hers, it has handled ed's
        await watcher.set_awareness({"user": {"name": "alice"}}, clock=1)
        await watcher.wait_for(lambda c: watcher.client_id in c.awareness)
        assert ed.client_id not in watcher.awareness


async def test_a_room_caps_the_bytes_of_all_its_presence(live: Any) -> None:
    url, people = live
    socket = document_socket(url, shared_document(url, people["alice"], "ed", "Presence"))
    # each state is about 0.8 KiB after cleaning (two positions with long type names)
    bulky = {
        "user": {"name": "x"},
        "cursor": {"anchor": position(1, "t" * 256), "head": position(2, "t" * 256)},
    }
    async with YClient(socket, headers=people["alice"]) as watcher:
        writers = [YClient(socket, headers=people["ed"]) for _ in range(3)]
        try:
            for writer in writers:
                await writer.__aenter__()
            await writers[0].set_awareness(bulky, clock=1)
            await writers[1].set_awareness(bulky, clock=1)
            await watcher.wait_for(
                lambda c: {writers[0].client_id, writers[1].client_id} <= c.awareness.keys()
            )
            await writers[2].set_awareness(bulky, clock=1)
            await writers[2].wait_for(lambda c: c.closed is not None)
            assert writers[2].closed == 1008
            assert writers[2].client_id not in watcher.awareness
        finally:
            for writer in writers:
                await writer.__aexit__(None, None, None)


def test_the_room_forgets_a_leaving_connections_ids_and_bytes() -> None:
    class Peer:
        def __init__(self, name: str) -> None:
            self.username = name
            self.awareness_ids: set[int] = set()

    presence = RoomPresence("doc", AwarenessLimits(ids_per_connection=2, room_bytes=1 << 10))
    ann, bob = Peer("ann"), Peer("bob")
    relayed = presence.accept(write_var_uint(1) + entry(1, 3, '{"user":{"name":"eve"}}'), ann)
    assert relayed == write_var_uint(1) + entry(1, 3, sanitized('{"user":{}}', "ann"))
    assert presence.accept(write_var_uint(1) + entry(1, 2, "{}"), ann) is None  # an older clock
    assert presence.accept(write_var_uint(1) + entry(1, 9, "{}"), bob) is None  # not bob's id
    assert presence.bytes > 0 and ann.awareness_ids == {1}
    assert presence.forget(ann) == write_var_uint(1) + entry(1, 4, "null")
    assert presence.bytes == 0 and presence.snapshot() is None
    assert presence.accept(write_var_uint(1) + entry(1, 1, "{}"), bob) is not None  # free again


def test_states_from_another_replica_are_rebuilt_before_anyone_sees_them() -> None:
    presence = RoomPresence("doc", AwarenessLimits(state_bytes=256))
    hostile = json.dumps({"user": {"name": "bob", "color": "red;background:url(x)"}, "script": "<b>"})
    oversized = json.dumps({"user": {"name": "cy"}, "pad": "x" * 300})
    nameless = json.dumps({"user": {"color": "#123456"}})
    update = write_var_uint(3) + entry(7, 1, hostile) + entry(8, 1, oversized) + entry(9, 1, nameless)
    relayed = presence.accept_remote(update, now=0.0)
    assert relayed == write_var_uint(1) + entry(7, 1, '{"user":{"name":"bob"}}')
    assert set(presence.remote) == {7}
