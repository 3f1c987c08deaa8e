"""Folding a document's log among replicas: the replica that folds merges what the others stored
(even what never reached it), and the lease keeps a second replica from saving or folding at once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest
from pycrdt import Doc, Text

from server.cluster.broker import Handler
from server.collab.room import TEXT_NAME
from server.collab.rooms import Rooms
from storage import accounts, collab
from storage.database import Store, sqlite_url
from storage.documents import create_document
from storage.models import DocumentCreate

pytestmark = pytest.mark.timeout(60)


class DeafBroker:
    """A broker among replicas that delivers nothing (the worst case pub/sub allows) and grants
    each lease to whoever asks first."""

    holders: dict[str, str] = {}

    def __init__(self, replica: str) -> None:
        self.replica = replica
        self.asked = 0  # leases asked for: each round of its upkeep asks once per open room
        self.asking = anyio.Event()

    @property
    def shared(self) -> bool:
        return True

    async def publish(self, channel: str, kind: int, payload: bytes) -> None:
        pass

    async def subscribe(self, channel: str, handler: Handler) -> Callable[[], None]:
        return lambda: None

    async def take_lease(self, name: str, ttl_s: float) -> bool:
        self.asked += 1
        self.asking.set()
        return self.holders.setdefault(name, self.replica) == self.replica

    async def problem(self) -> str | None:
        return None

    async def release_lease(self, name: str) -> None:
        if self.holders.get(name) == self.replica:
            del self.holders[name]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store(sqlite_url(tmp_path / "cowrite.db")) as opened:
        await opened.run(accounts.create_user, "ann", "not a real hash")
        yield opened


async def test_the_fold_keeps_what_another_replica_stored(store: Store) -> None:
    DeafBroker.holders.clear()
    document = (await store.run(create_document, DocumentCreate(title="Folded"), "ann")).id
    async with (
        Rooms(store, save_every_s=3600, broker=DeafBroker("a")) as a,
        Rooms(store, save_every_s=3600, broker=DeafBroker("b")) as b,
    ):
        await a.open(document)
        await b.open(document)  # both loaded the empty document; neither hears of the other's edit
        await a.set_text(document, "from a")
        await b.set_text(document, "from b")
        room_a = a.get(document)
        assert room_a is not None and str(room_a.text) == "from a"
        await room_a.compact()
        stored = await store.run(collab.load_updates, document)
    assert len(stored.updates) == 1 and stored.compacted
    merged: Doc[Text] = Doc()
    merged.apply_update(stored.updates[0])
    text = str(merged.get(TEXT_NAME, type=Text))
    assert "from a" in text and "from b" in text
    assert stored.text == text  # the text is saved from the merge, not from a's own copy


async def test_only_the_lease_holder_saves_on_upkeep_and_others_save_the_merge(store: Store) -> None:
    DeafBroker.holders.clear()
    document = (await store.run(create_document, DocumentCreate(title="Leased"), "ann")).id
    async with (
        Rooms(store, save_every_s=0.05, broker=DeafBroker("a")) as a,
        Rooms(store, save_every_s=0.05, broker=DeafBroker("b")) as b,
    ):
        room_b = await b.open(document)  # loaded empty; deaf to a's edits from here on
        await a.set_text(document, "holder")
        assert DeafBroker.holders[f"doc:{document}"] == "a"  # a saved first, so a holds it
        await room_b.replace_text("other ")  # stored in the log; b's view lacks a's edit
        deaf_b = b.broker
        assert isinstance(deaf_b, DeafBroker)
        rounds = deaf_b.asked + 3
        with anyio.fail_after(10):
            while deaf_b.asked < rounds:  # three rounds of b's upkeep, each refused the lease
                deaf_b.asking = anyio.Event()
                await deaf_b.asking.wait()
        assert room_b.text_dirty  # b left its text for the holder to save
        assert "other" not in (await store.run(collab.load_updates, document)).text
        await b.flush_text(document)  # a read through b: b saves its view merged with the log
        stored = (await store.run(collab.load_updates, document)).text
        assert "other" in stored and "holder" in stored and not room_b.text_dirty
