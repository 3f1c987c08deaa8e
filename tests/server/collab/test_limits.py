"""What one update may cost, through a real uvicorn: a CRDT bomb (a delete set that would split one
long insert into a million blocks) is refused with 4413 before it is applied or stored, the
document's size is capped, and a large but ordinary update still goes through."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from pycrdt import create_update_message

from harness.accounts import account, shared_document
from harness.yclient import YClient, decode_state_vector, document_socket
from server.app import create_app
from server.collab.yupdates import write_var_uint
from server.settings import Settings
from storage import collab
from streaming.loader import LoadedModel
from tests.conftest import serve

pytestmark = pytest.mark.timeout(180)
TIGHT_LIMIT_MB = 1


def served(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, loaded_model: LoadedModel, **changes: Any
) -> Iterator[tuple[str, Any, dict[str, dict[str, str]]]]:
    app = create_app(
        replace(settings, data_dir=tmp_path_factory.mktemp("limits"), database_url=None, **changes),
        loaded_model,
    )
    with serve(app) as url, httpx.Client(base_url=url) as http:
        yield url, app, {name: account(http, name) for name in ("ann", "bob")}


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, loaded_model: LoadedModel
) -> Iterator[tuple[str, Any, dict[str, dict[str, str]]]]:
    """A server with the default limits."""
    yield from served(tmp_path_factory, settings, loaded_model)


@pytest.fixture(scope="module")
def tight(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, loaded_model: LoadedModel
) -> Iterator[tuple[str, Any, dict[str, dict[str, str]]]]:
    """A server whose documents may hold only `TIGHT_LIMIT_MB`."""
    yield from served(tmp_path_factory, settings, loaded_model, document_limit_mb=TIGHT_LIMIT_MB)


def deletions(client: int, clocks: range) -> bytes:
    """A Yjs v1 update with no structs and a delete set of one-character ranges."""
    out = bytearray(write_var_uint(0) + write_var_uint(1) + write_var_uint(client))
    out += write_var_uint(len(clocks))
    for clock in clocks:
        out += write_var_uint(clock) + write_var_uint(1)
    return bytes(out)


def stored_entries(app: Any, document_id: str) -> int:
    return int(app.state.services.store.call(collab.count_updates, document_id))


async def healthz_latencies(url: str, until: asyncio.Event) -> list[float]:
    """Seconds each `/healthz` took, asked one after another until `until` is set."""
    latencies = []
    async with httpx.AsyncClient(base_url=url) as http:
        while not until.is_set():
            started = time.perf_counter()
            assert (await http.get("/healthz")).status_code == 200
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)
    return latencies


async def test_a_delete_set_bomb_is_refused_before_it_is_applied_or_stored(live: Any) -> None:
    url, app, people = live
    document = shared_document(url, people["ann"], "bob", "Big")
    socket = document_socket(url, document)
    async with YClient(socket, headers=people["ann"]) as ann, YClient(socket, headers=people["bob"]) as bob:
        await asyncio.wait_for(ann.synced.wait(), 10)
        await asyncio.wait_for(bob.synced.wait(), 10)
        ann.text.insert(0, "x" * 1_500_000)  # one paste of 1.5 MB: an ordinary update
        await ann.wait_saved(within_s=30)
        await bob.wait_for(lambda c: len(str(c.text)) == 1_500_000, within_s=30)
        entries, state = stored_entries(app, document), bob.doc.get_state()
        bomb = deletions(ann.client_id, range(1, 1_500_000, 2))  # every other character
        assert 3 << 20 > len(bomb) > 2_900_000

        done = asyncio.Event()
        sampling = asyncio.create_task(healthz_latencies(url, done))
        await ann.send_raw(create_update_message(bomb))
        await ann.wait_for(lambda c: c.closed is not None, within_s=30)
        done.set()
        latencies = await sampling
        megabytes, worst_ms = len(bomb) / 1e6, max(latencies) * 1000
        print(f"\n/healthz while a {megabytes:.1f} MB delete set was refused: max {worst_ms:.0f} ms")

        assert ann.closed == 4413
        assert stored_entries(app, document) == entries
        # the others carry on as before
        bob.text.insert(0, "still here ")
        await bob.wait_saved()
        assert bob.closed is None and bob.doc.get_state() != state
        assert str(app.state.services.rooms.get(document).text).startswith("still here " + "x" * 1000)
    app.state.services.rooms._rooms.pop(document, None)  # the next client loads the log again
    async with YClient(socket, headers=people["bob"]) as reader:
        await asyncio.wait_for(reader.synced.wait(), 30)
        assert len(str(reader.text)) == len("still here ") + 1_500_000


async def test_a_large_ordinary_update_goes_through_in_pieces(live: Any) -> None:
    """Deleting every other character of a 40,000-character text, in one update: 20,000 delete
    ranges, under the cap, applied in several pieces, stored and relayed like any other."""
    url, app, people = live
    document = shared_document(url, people["ann"], "bob", "Big")
    socket = document_socket(url, document)
    async with YClient(socket, headers=people["ann"]) as ann, YClient(socket, headers=people["bob"]) as bob:
        await asyncio.wait_for(ann.synced.wait(), 10)
        await asyncio.wait_for(bob.synced.wait(), 10)
        ann.text.insert(0, "ab" * 20_000)
        await ann.wait_saved()
        await ann.send_raw(create_update_message(deletions(ann.client_id, range(1, 40_000, 2))))
        await bob.wait_for(lambda c: str(c.text) == "a" * 20_000, within_s=30)
        assert ann.closed is None and str(app.state.services.rooms.get(document).text) == "a" * 20_000


async def test_a_document_cannot_grow_past_its_limit(tight: Any) -> None:
    url, app, people = tight
    document = shared_document(url, people["ann"], "bob", "Big")
    socket = document_socket(url, document)
    half = "y" * (TIGHT_LIMIT_MB << 19)
    async with YClient(socket, headers=people["ann"]) as ann, YClient(socket, headers=people["bob"]) as bob:
        await asyncio.wait_for(ann.synced.wait(), 10)
        await asyncio.wait_for(bob.synced.wait(), 10)
        ann.text.insert(0, half)
        await ann.wait_saved(within_s=30)
        entries = stored_entries(app, document)
        ann.text.insert(0, half)  # the second half and a bit would pass the limit
        await ann.wait_for(lambda c: c.closed is not None, within_s=30)
        assert ann.closed == 4413 and "limit" in ann.close_reason
        assert stored_entries(app, document) == entries
        await bob.wait_for(lambda c: len(str(c.text)) == len(half))
        assert bob.closed is None
        assert decode_state_vector(bob.doc.get_state()).get(ann.client_id) == len(half)
    async with httpx.AsyncClient(base_url=url, headers=people["ann"]) as http:
        response = await http.patch(f"/api/documents/{document}", json={"text": half + half})
        assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
        assert (await http.get(f"/api/documents/{document}")).json()["text"] == half


async def test_an_update_that_takes_too_long_is_undone_by_reloading_the_room(
    live: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past its time limit an update is refused part way: the room is reloaded from its log (so
    nothing of it stays), its sender told 4413 and everyone else to reconnect (1013)."""
    url, app, people = live
    document = shared_document(url, people["ann"], "bob", "Big")
    socket = document_socket(url, document)
    async with YClient(socket, headers=people["ann"]) as ann, YClient(socket, headers=people["bob"]) as bob:
        await asyncio.wait_for(ann.synced.wait(), 10)
        await asyncio.wait_for(bob.synced.wait(), 10)
        ann.text.insert(0, "ab" * 20_000)
        await ann.wait_saved()
        await bob.wait_for(lambda c: len(str(c.text)) == 40_000)
        entries = stored_entries(app, document)
        monkeypatch.setattr("server.collab.room.UPDATE_TIME_LIMIT_S", 0.0)  # out of time after one piece
        await ann.send_raw(create_update_message(deletions(ann.client_id, range(1, 40_000, 2))))
        await ann.wait_for(lambda c: c.closed is not None)
        await bob.wait_for(lambda c: c.closed is not None)
        assert (ann.closed, bob.closed) == (4413, 1013)
        assert stored_entries(app, document) == entries
    monkeypatch.undo()
    async with YClient(socket, headers=people["bob"]) as reader:
        await asyncio.wait_for(reader.synced.wait(), 10)
        assert str(reader.text) == "ab" * 20_000
