"""A live document whose database misbehaves, through a real uvicorn: a store that blocks until
its sender has gone, one that fails once, one that fails for a while, and a session lookup that
fails during a handshake. No acknowledged edit is lost, and every client converges."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import anyio
import httpx
import pytest
import websockets
from pycrdt import Doc, Text
from sqlalchemy.exc import OperationalError

from harness.accounts import account, shared_document
from harness.yclient import YClient, document_socket
from server.app import create_app
from server.settings import Settings
from storage import accounts, collab
from streaming.loader import LoadedModel
from tests.conftest import serve

pytestmark = pytest.mark.timeout(120)


class FaultyStore:
    """Makes the app's store fail (or wait) on chosen queries, from inside the server's loop."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.real_run = store.run
        self.failing: dict[Callable[..., Any], float] = {}  # query -> how many more calls fail
        self.failed = 0
        store.run = self.run  # the instance's attribute shadows the method for every caller

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.failing.get(fn, 0) > 0:
            self.failing[fn] -= 1
            self.failed += 1
            raise OperationalError("injected", {}, ConnectionError("the database went away"))
        return await self.real_run(fn, *args)

    def restore(self) -> None:
        self.store.run = self.real_run


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, settings: Settings, loaded_model: LoadedModel
) -> Iterator[tuple[str, Any, dict[str, dict[str, str]]]]:
    app = create_app(
        replace(settings, data_dir=tmp_path_factory.mktemp("store"), database_url=None), loaded_model
    )
    with serve(app) as url, httpx.Client(base_url=url) as http:
        yield url, app, {name: account(http, name) for name in ("ann", "bob")}


@pytest.fixture
def faults(live: Any) -> Iterator[FaultyStore]:
    faulty = FaultyStore(live[1].state.services.store)
    yield faulty
    faulty.restore()


def append_at_end(client: YClient, words: str) -> None:
    client.text.insert(len(str(client.text).encode()), words)


async def reloaded_text(app: Any, url: str, document_id: str, headers: dict[str, str]) -> str:
    """The document as the database holds it: the (idle) room is dropped, so that the next client
    loads it again from its log."""
    app.state.services.rooms._rooms.pop(document_id, None)
    async with YClient(document_socket(url, document_id), headers=headers) as reader:
        await asyncio.wait_for(reader.synced.wait(), 10)
        return str(reader.text)


async def test_an_update_reaches_the_others_when_its_sender_leaves_while_it_is_stored(
    live: Any, faults: FaultyStore
) -> None:
    url, app, people = live
    document = shared_document(url, people["ann"], "bob", "Shared")
    socket = document_socket(url, document)
    storing = threading.Event()

    async def store_once_the_sender_is_gone(fn: Callable[..., Any], *args: Any) -> Any:
        if fn is collab.append_update and not storing.is_set():
            room = app.state.services.rooms.get(document)
            sender = next(c for c in room.connections if c.username == "ann")
            storing.set()
            with anyio.fail_after(10):
                # the sender's writer stops when its socket is found closed; nothing announces it
                while sender.outbox.statistics().open_receive_streams:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
        return await faults.real_run(fn, *args)

    faults.store.run = store_once_the_sender_is_gone
    async with YClient(socket, headers=people["bob"]) as bob:
        await asyncio.wait_for(bob.synced.wait(), 10)
        async with YClient(socket, headers=people["ann"]) as ann:
            await asyncio.wait_for(ann.synced.wait(), 10)
            append_at_end(ann, "first keystroke")
            assert await asyncio.to_thread(storing.wait, 10), "the update never reached the store"
        # ann has gone; bob's next message is relayed to her socket, which finds it closed
        await bob.set_awareness({"user": {"name": "bob", "color": "#3366cc"}}, clock=1)
        await bob.wait_for(lambda c: "first keystroke" in str(c.text))
        assert bob.closed is None
    assert "first keystroke" in await reloaded_text(app, url, document, people["bob"])


async def test_a_store_that_fails_once_is_retried_and_nobody_notices(live: Any, faults: FaultyStore) -> None:
    url, app, people = live
    document = shared_document(url, people["ann"], "bob", "Shared")
    socket = document_socket(url, document)
    async with YClient(socket, headers=people["ann"]) as ann, YClient(socket, headers=people["bob"]) as bob:
        await asyncio.wait_for(ann.synced.wait(), 10)
        await asyncio.wait_for(bob.synced.wait(), 10)
        faults.failing[collab.append_update] = 1
        append_at_end(ann, "through a blip")
        await ann.wait_saved()
        await bob.wait_for(lambda c: str(c.text) == "through a blip")
        assert faults.failed == 1 and ann.closed is None and bob.closed is None
    assert await reloaded_text(app, url, document, people["ann"]) == "through a blip"


async def test_no_acknowledged_edit_is_lost_to_a_longer_outage(live: Any, faults: FaultyStore) -> None:
    url, app, people = live
    document = shared_document(url, people["ann"], "bob", "Shared")
    socket = document_socket(url, document)
    ann_doc: Doc[Text] = Doc()
    bob_doc: Doc[Text] = Doc()
    async with YClient(socket, headers=people["ann"], doc=ann_doc) as ann:
        async with YClient(socket, headers=people["bob"], doc=bob_doc) as bob:
            await asyncio.wait_for(ann.synced.wait(), 10)
            await asyncio.wait_for(bob.synced.wait(), 10)
            append_at_end(ann, "saved before. ")
            await ann.wait_saved()
            await bob.wait_for(lambda c: "saved before." in str(c.text))
            faults.failing[collab.append_update] = math.inf  # down until the test says otherwise
            append_at_end(ann, "typed during the outage. ")
            await ann.wait_for(lambda c: c.closed is not None)
            await bob.wait_for(lambda c: c.closed is not None)
            # told to come back later, and the edit that could not be stored was never acknowledged
            assert (ann.closed, bob.closed) == (1013, 1013)
            assert not ann.saved()
            append_at_end(bob, "bob, offline meanwhile. ")
    faults.failing.clear()
    # both reconnect with their copies; their sync sends the server what it lacks
    async with YClient(socket, headers=people["ann"], doc=ann_doc) as ann:
        async with YClient(socket, headers=people["bob"], doc=bob_doc) as bob:
            await asyncio.wait_for(ann.synced.wait(), 10)
            await asyncio.wait_for(bob.synced.wait(), 10)
            append_at_end(ann, "after. ")
            await ann.wait_saved()
            await bob.wait_saved()
            await bob.wait_for(lambda c: str(c.text) == str(ann.text))
            final = str(ann.text)
    for words in ("saved before.", "typed during the outage.", "bob, offline meanwhile.", "after."):
        assert words in final
    assert await reloaded_text(app, url, document, people["ann"]) == final


async def test_a_handshake_during_an_outage_is_answered_503(live: Any, faults: FaultyStore) -> None:
    url, _, people = live
    document = shared_document(url, people["ann"], "bob", "Shared")
    faults.failing[accounts.session_user] = math.inf
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(document_socket(url, document), additional_headers=people["ann"]):
            pass
    assert refused.value.response.status_code == 503
    async with httpx.AsyncClient(base_url=url, headers=people["ann"]) as http:
        response = await http.get(f"/api/documents/{document}")
    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
    faults.failing.clear()
    async with YClient(document_socket(url, document), headers=people["ann"]) as ann:
        await asyncio.wait_for(ann.synced.wait(), 10)
