"""A live document: a `Room` is one open document, its connections and their awareness (the
socket that feeds it is `server.collab.socket`).

Every change to the document runs on the room's worker, one at a time: an update from a client is
measured (one too costly to apply, or that would make the document too large, is refused), applied
on a worker thread, appended to the document's update log in the database, and only then broadcast
to the others and acknowledged to its sender (message type 100, carrying the server's state
vector), so every acknowledged edit survives a crash and a client that disconnects meanwhile cannot
cut that step short. If the log cannot be written, the room is dropped and its clients reconnect
(1013) and resend. The plain text is kept in step beside the log, and the log is compacted into a
snapshot on a schedule and when the room empties (`server.collab.rooms`). Among replicas, a stored update
is also published on the document's channel, other replicas' updates are applied and passed on but
not stored again, and the lease holder alone saves and folds (docs/cluster.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread
from pycrdt import (
    Doc,
    Text,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    merge_updates,
)
from sqlalchemy.exc import SQLAlchemyError
from starlette import status

from server.cluster.broker import (
    AWARENESS,
    UPDATE,
    Broker,
    Envelope,
    LocalBroker,
    document_channel,
    wall_clock,
)
from server.collab.authors import RecentAuthors
from server.collab.awareness import AwarenessLimits, RoomPresence
from server.collab.connection import Connection
from server.collab.serial import SerialWorker, WorkerClosed
from server.collab.yupdates import (
    PartlyApplied,
    UpdateShape,
    UpdateTooCostly,
    apply_in_pieces,
    read_update,
)
from server.collab.ywire import (
    EMPTY_UPDATE,
    rejected_message,
    saved_message,
)
from server.errors import (
    WS_1013_TRY_AGAIN_LATER,
    WS_4413_DOCUMENT_TOO_LARGE,
)
from storage import collab, versions
from storage.database import Store

log = logging.getLogger(__name__)
audit = logging.getLogger("cowrite.audit")

TEXT_NAME = "content"
# what one update may cost: structs and delete ranges together, and time to apply (it is applied
# in pieces; past the time the room is reloaded from its log and the update refused)
UPDATE_OPS_LIMIT = 100_000
UPDATE_TIME_LIMIT_S = 2.0
# updates up to this size are read and applied on the event loop (a typed word is ~30 bytes)
INLINE_UPDATE_BYTES = 2048
# how much one struct or delete range may add to the encoded document (a split block), and an
# edit of the server's own beyond its text, for the document's running size estimate
GROWTH_PER_OP = 32
EDIT_OVERHEAD = 64
# a failed write of the log is retried after these pauses before the room gives up (1013)
STORE_RETRY_DELAYS_S = (0.1, 0.4, 1.0)
# among replicas, the one holding a document's lease saves its text and folds its log (renewed by
# its upkeep every second); a replica that dies lets it lapse
LEASE_S = 15.0
TRY_AGAIN = (WS_1013_TRY_AGAIN_LATER, "the document could not be saved; reconnect to send your changes again")
T = TypeVar("T")


class RoomMetrics(Protocol):
    """What a room reports (`server.metrics.Metrics`)."""

    def update_stored(self) -> None: ...

    def fanout(self, seconds: float, path: str) -> None: ...


class RoomClosed(Exception):
    """The room takes no more changes: it was closed, or dropped because its log could not be
    written (its clients reconnect to a fresh one)."""


class DocumentTooLarge(Exception):
    """The change would make the document larger than `COWRITE_DOCUMENT_LIMIT_MB`."""


class Room:
    """One document while anyone has it open. Its worker makes every change to `doc`, in order;
    nothing else touches `doc` (pycrdt's calls run on worker threads, one at a time)."""

    def __init__(
        self,
        document_id: str,
        store: Store,
        update_limit: int,
        idle_timeout_s: float,
        size_limit: int = 16 << 20,
        on_broken: Callable[[Room], None] | None = None,
        awareness_limits: AwarenessLimits | None = None,
        broker: Broker | None = None,
        metrics: RoomMetrics | None = None,
    ) -> None:
        self.document_id = document_id
        self.store = store
        self.broker: Broker = broker or LocalBroker()
        self.channel = document_channel(document_id)
        self.lease = f"doc:{document_id}"  # who saves the text and folds the log, among replicas
        self.metrics = metrics
        self._unsubscribe: Callable[[], None] | None = None
        self.update_limit = update_limit
        self.idle_timeout_s = idle_timeout_s
        self.size_limit = size_limit
        self.on_broken = on_broken
        self.doc: Doc[Text] = Doc()
        self.text = self.doc.get(TEXT_NAME, type=Text)
        self.presence = RoomPresence(document_id, awareness_limits or AwarenessLimits())
        self.connections: set[Connection] = set()
        self.worker = SerialWorker()
        self.broken = False
        self.text_dirty = False
        self.log_entries = 0
        self.compacted = False  # the log is one snapshot, taken after the text was saved
        self.size = 0  # the encoded document's size in bytes, as last measured plus an estimate since
        self.size_measured = True  # no change since `size` was measured
        self.empty_since: float | None = None
        self.authors = RecentAuthors()  # named by the revision that saves their edits

    async def listen(self) -> None:
        """Hear the other replicas' updates and awareness for this document; called before
        `load()`, so nothing stored meanwhile falls between the log and the channel (an update
        heard twice changes nothing)."""
        self._unsubscribe = await self.broker.subscribe(self.channel, self._on_envelope)

    def stop_listening(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def load(self) -> None:
        """Replay the log (before the worker starts); a document from before co-editing is seeded
        from its stored text, and a stored text that lags the log (after a crash) is saved."""
        stored = await self.store.run(collab.load_updates, self.document_id)

        def replay() -> tuple[str, int]:
            for update in stored.updates:
                self.doc.apply_update(update)
            return str(self.text), len(self.doc.get_update())

        text, self.size = await anyio.to_thread.run_sync(replay)
        self.log_entries = len(stored.updates)
        self.compacted = stored.compacted
        if not stored.updates and stored.text:
            await self._replace(stored.text, within_limit=False)  # what it held already
        elif text != stored.text:
            log.info("document %s: its stored text lagged its log; saving it", self.document_id)
            self.text_dirty = True
            await self._save_text()

    async def _serially(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` on the room's worker, after every change queued before it; a caller that is
        cancelled meanwhile does not cancel it. RoomClosed once the room takes no more changes."""

        async def guarded() -> T:
            if self.broken:
                raise RoomClosed(self.document_id)
            return await work()

        try:
            return await self.worker.call(guarded)
        except WorkerClosed:
            raise RoomClosed(self.document_id) from None

    # clients

    async def join(self, connection: Connection) -> None:
        """Take a client in: it gets the document and everyone's presence. RoomClosed once the room
        takes no more changes."""
        self.connections.add(connection)
        self.empty_since = None
        await self._serially(lambda: self._greet(connection))
        states = self.presence.snapshot(anyio.current_time())
        if states is not None:
            connection.send(create_awareness_message(states))

    async def leave(self, connection: Connection) -> None:
        """A client left: its presence goes, here and on the other replicas."""
        self.connections.discard(connection)
        with anyio.CancelScope(shield=True):
            await self._forget_awareness(connection)
        if not self.connections:
            self.empty_since = anyio.current_time()

    async def _greet(self, connection: Connection) -> None:
        connection.send(create_sync_message(self.doc))

    async def missing_from(self, state: bytes) -> bytes:
        """What a client with state vector `state` lacks, after every change queued before (encoded
        on a worker thread). RoomClosed once the room takes no more changes."""
        return await self._serially(lambda: anyio.to_thread.run_sync(self.doc.get_update, state))

    async def relay_awareness(self, message: bytes, connection: Connection) -> None:
        """A client's awareness update: what it may set, to everyone here and on other replicas.
        AwarenessRefused past a cap; ValueError when malformed."""
        update = self.presence.accept(message, connection)
        if update is None:
            return
        self._broadcast(create_awareness_message(update))
        await self.broker.publish(self.channel, AWARENESS, update)

    async def receive_update(self, update: bytes, sender: Connection | None) -> None:
        """Measure, apply, store, then broadcast and acknowledge one update, as one step on the
        room's worker. Raises UpdateTooCostly or DocumentTooLarge (refused: nothing applied or
        stored), ValueError (malformed: nothing applied), RoomClosed (not stored: the room is
        dropped and its clients told to reconnect)."""
        await self._serially(lambda: self._integrate(update, sender))

    async def _integrate(self, update: bytes, sender: Connection | None) -> None:
        started = time.perf_counter()
        if update != EMPTY_UPDATE:
            shape = await on_thread_if_large(update, read_update, update, UPDATE_OPS_LIMIT)
            cost = len(update) + GROWTH_PER_OP * shape.ops
            await self._make_room_for(cost)
            await self._apply(update, shape, sender)
            self.size += cost
            self.size_measured = False
            await self._append(update, sender)
            await self.broker.publish(self.channel, UPDATE, update)
            self._broadcast(create_update_message(update), but=sender)
            if self.metrics is not None:
                self.metrics.fanout(time.perf_counter() - started, "local")
        if sender is not None:
            sender.updates_received += 1
            sender.send(saved_message(self.doc.get_state(), sender.updates_received))

    async def _make_room_for(self, cost: int) -> None:
        """DocumentTooLarge unless the document stays within its limit after growing by `cost`
        bytes. The running estimate overcounts (a deletion sent again costs nothing), so it is
        measured again before anything is refused."""
        if self.size + cost > self.size_limit and not self.size_measured:
            self.size = len(await anyio.to_thread.run_sync(self.doc.get_update))
            self.size_measured = True
        if self.size + cost > self.size_limit:
            limit_mb = self.size_limit / (1 << 20)
            raise DocumentTooLarge(f"the document would grow past its limit of {limit_mb:g} MiB")

    async def _apply(self, update: bytes, shape: UpdateShape, sender: Connection | None) -> None:
        deadline = time.monotonic() + UPDATE_TIME_LIMIT_S
        try:
            await on_thread_if_large(update, apply_in_pieces, self.doc, update, shape, deadline)
        except UpdateTooCostly as exc:
            if exc.partly_applied:
                self._break(sender, (WS_4413_DOCUMENT_TOO_LARGE, str(exc)))
            raise
        except PartlyApplied:
            self._break(sender, (status.WS_1007_INVALID_FRAME_PAYLOAD_DATA, "malformed message"))
            raise

    async def _append(self, update: bytes, sender: Connection | None) -> None:
        """Append an applied update to the log, retrying a failed write briefly; if it still fails,
        the room is dropped (RoomClosed): its document holds what the log does not."""
        for delay in (*STORE_RETRY_DELAYS_S, None):
            try:
                await self.store.run(collab.append_update, self.document_id, update)
            except SQLAlchemyError as exc:
                if delay is None:
                    log.error("could not store an update of document %s: %s", self.document_id, exc)
                    self._break(sender, None)
                    raise RoomClosed(self.document_id) from exc
                log.warning("could not store an update of document %s (%s); retrying", self.document_id, exc)
                await anyio.sleep(delay)
            else:
                self.log_entries += 1  # this replica's own count: enough to decide when to fold
                if sender is not None:  # version history: a stored edit names its writer
                    self.authors.wrote(sender.username)
                self.text_dirty = True
                self.compacted = False
                if self.metrics is not None:
                    self.metrics.update_stored()
                return

    def _break(self, sender: Connection | None, sender_close: tuple[int, str] | None) -> None:
        """The document in memory holds what its log does not (a write failed, or an update went
        in only in part): drop the room, so that the next client reloads it from the log, and
        close every connection; clients reconnect (1013) and their sync resends what the log lacks.
        What was queued for them before (stored updates, acknowledgements) is still sent."""
        self.broken = True
        self.stop_listening()
        self.worker.close()
        if self.on_broken is not None:
            self.on_broken(self)
        for connection in list(self.connections):
            if connection is sender and sender_close is not None:
                connection.closing = sender_close
            else:
                connection.closing = connection.closing or TRY_AGAIN
            connection.outbox.close()

    def reject(self, connection: Connection, size: int) -> None:
        """A viewer's update: nothing of it is applied, stored or passed on."""
        connection.updates_rejected += 1
        if connection.updates_rejected == 1 or connection.updates_rejected % 100 == 0:
            audit.warning(
                "dropped a document update from viewer %s on document %s (%d bytes; %d so far)",
                connection.username,
                self.document_id,
                size,
                connection.updates_rejected,
            )
        connection.send(rejected_message("read-only: you are a viewer here"))

    def _broadcast(self, message: bytes, but: Connection | None = None) -> None:
        """Queue `message` for every client here but `but` (its sender, who has it already)."""
        for connection in self.connections:
            if connection is not but:
                connection.send(message)

    async def _forget_awareness(self, connection: Connection) -> None:
        removed = self.presence.forget(connection)
        if removed is None:
            return
        self._broadcast(create_awareness_message(removed))
        await self.broker.publish(self.channel, AWARENESS, removed)

    # the other replicas

    def _on_envelope(self, envelope: Envelope) -> None:
        """What another replica sent on this document's channel (on the broker's task: it only
        queues work on the room's worker, or relays presence)."""
        if envelope.kind == UPDATE:
            queued = self.worker.submit(lambda: self._integrate_remote(envelope))
        elif envelope.kind == AWARENESS:
            try:
                update = self.presence.accept_remote(envelope.payload, anyio.current_time())
            except (ValueError, IndexError, RuntimeError) as exc:
                log.warning("dropped malformed awareness from replica %s: %s", envelope.sender, exc)
                return
            if update is not None:
                self._broadcast(create_awareness_message(update))
            return
        else:
            queued = self.worker.submit(self._resync)
        if not queued and not self.broken:
            log.warning("document %s: its worker is full; reloading it from the log", self.document_id)
            self._break(None, None)

    async def _integrate_remote(self, envelope: Envelope) -> None:
        """An update another replica stored: applied and passed on here, not stored again."""
        if self.broken:
            return
        update = envelope.payload
        try:
            await on_thread_if_large(update, self.doc.apply_update, update)
        except (ValueError, RuntimeError) as exc:
            log.warning(
                "document %s: an update from replica %s did not apply (%s); resyncing",
                self.document_id,
                envelope.sender,
                exc,
            )
            await self._resync()
            return
        self.size += len(update) + GROWTH_PER_OP
        self.size_measured = False
        self.text_dirty = True
        self.compacted = False
        self._broadcast(create_update_message(update))
        if self.metrics is not None:
            self.metrics.fanout(max(0.0, wall_clock() - envelope.sent_at), "broker")

    async def _resync(self) -> None:
        """Envelopes may have been missed: apply the log again (what the document holds already
        changes nothing) and pass on what was new."""
        if self.broken:
            return
        stored = await self.store.run(collab.load_updates, self.document_id)

        def catch_up() -> bytes:
            before = self.doc.get_state()
            for update in stored.updates:
                self.doc.apply_update(update)
            return self.doc.get_update(before)

        missed = await anyio.to_thread.run_sync(catch_up)
        if missed != EMPTY_UPDATE:
            self.text_dirty = True
            self.compacted = False
            self._broadcast(create_update_message(missed))

    # the server's own edits (API clients, restores) and upkeep

    async def replace_text(self, new: str, author: str | None = None) -> None:
        """Change the text to `new` as one edit (only the part that differs), stored and broadcast,
        written by `author`. DocumentTooLarge (nothing changed) past the document's limit;
        RoomClosed if not stored."""
        await self._serially(lambda: self._replace(new, author=author))

    async def _replace(self, new: str, within_limit: bool = True, author: str | None = None) -> None:
        old = await anyio.to_thread.run_sync(str, self.text)
        if old == new:
            return
        start, end_old, end_new = await anyio.to_thread.run_sync(changed_span, old, new)
        if within_limit:
            await self._make_room_for(len(new[start:end_new].encode()) + EDIT_OVERHEAD)

        def edit() -> bytes:
            # pycrdt counts positions in UTF-8 bytes
            at, old_end = len(old[:start].encode()), len(old[:end_old].encode())
            before = self.doc.get_state()
            with self.doc.transaction(origin="server"):
                if old_end > at:
                    del self.text[at:old_end]
                if end_new > start:
                    self.text.insert(at, new[start:end_new])
            return self.doc.get_update(before)

        update = await anyio.to_thread.run_sync(edit)
        self.size += len(update) + EDIT_OVERHEAD
        self.size_measured = False
        await self._append(update, None)
        if author is not None:
            self.authors.wrote(author)
        await self.broker.publish(self.channel, UPDATE, update)
        self._broadcast(create_update_message(update))

    async def hand_over_authors(self, older_than_s: float) -> None:
        """Among replicas, on one that does not save this document's text: add those who wrote
        through it, longer than `older_than_s` ago (so the lease holder has saved their edits), to
        the newest revision. RoomClosed once the room takes no more changes."""

        async def add(ready: list[str]) -> None:
            await self.store.run(versions.add_authors, self.document_id, ready)

        await self._serially(lambda: self.authors.hand_over(older_than_s, add))

    async def save_text(self) -> None:
        """Store the plain text, if it changed since it was last stored."""
        await self._serially(self._save_text)

    async def _save_text(self) -> None:
        if self.text_dirty and self.broker.shared and not await self.broker.take_lease(self.lease, LEASE_S):
            await self._save_merged_text()
        elif self.text_dirty:
            text = await anyio.to_thread.run_sync(str, self.text)
            self.text_dirty = False
            authors = self.authors.take()
            try:
                await self.store.run(collab.save_text, self.document_id, text, "autosave", authors)
            except BaseException:
                self.text_dirty = True  # saved on the next try
                self.authors.keep(authors)
                raise

    async def _save_merged_text(self) -> None:
        """The text of what this replica holds merged with the log as stored, saved in one
        transaction that holds the document's row: a replica without the lease (an API edit or
        read made through it) never stores a text older than one stored before."""
        own = await anyio.to_thread.run_sync(self.doc.get_update)

        def merge(stored: list[bytes]) -> str:
            merged: Doc[Text] = Doc()
            for update in (own, *stored):
                merged.apply_update(update)
            return str(merged.get(TEXT_NAME, type=Text))

        self.text_dirty = False
        authors = self.authors.take()
        try:
            await self.store.run(collab.save_merged_text, self.document_id, merge, authors)
        except BaseException:
            self.text_dirty = True
            self.authors.keep(authors)
            raise

    async def compact(self) -> None:
        """Save the text, then fold the log into one snapshot of the current state."""
        await self._serially(self._compact)

    async def _compact(self) -> None:
        if self.broker.shared:
            await self._fold()
            return
        await self._save_text()  # first, so a snapshot never stands for edits the text lacks
        if self.compacted or self.log_entries == 0:
            return
        snapshot = await anyio.to_thread.run_sync(self.doc.get_update)
        upto = await self.store.run(collab.last_update_id, self.document_id)
        await self.store.run(collab.compact, self.document_id, snapshot, upto)
        self.log_entries, self.compacted = 1, True
        self.size, self.size_measured = len(snapshot), True

    async def _fold(self) -> None:
        """Compaction among replicas: the log as stored (with what other replicas stored that has not
        reached this one yet) merged with this document, its text saved from the merge, in one
        transaction (`storage.collab.fold`)."""
        if self.compacted:
            await self._save_text()
            return
        own = await anyio.to_thread.run_sync(self.doc.get_update)

        def merge(stored: list[bytes]) -> tuple[bytes, str]:
            snapshot = merge_updates(own, *stored)
            merged: Doc[Text] = Doc()
            merged.apply_update(snapshot)
            return snapshot, str(merged.get(TEXT_NAME, type=Text))

        authors = self.authors.take()
        try:
            await self.store.run(collab.fold, self.document_id, merge, authors)
        except BaseException:
            self.authors.keep(authors)
            raise
        self.log_entries, self.compacted, self.text_dirty = 1, True, False

    async def close(self) -> None:
        """Save the text and fold the log, then stop the worker (once what is queued is done)."""
        try:
            await self._serially(self._compact)
        finally:
            self.stop_listening()
            self.worker.close()


async def on_thread_if_large(update: bytes, work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` on a worker thread when `update` is large; a keystroke's update (a few dozen
    bytes, microseconds to read or apply) runs here, sparing the hop to a thread and back."""
    if len(update) <= INLINE_UPDATE_BYTES:
        return work(*args)
    return await anyio.to_thread.run_sync(work, *args)


def changed_span(old: str, new: str) -> tuple[int, int, int]:
    """(start, end in old, end in new) of the part of `old` that `new` replaces."""
    start = 0
    limit = min(len(old), len(new))
    while start < limit and old[start] == new[start]:
        start += 1
    end_old, end_new = len(old), len(new)
    while end_old > start and end_new > start and old[end_old - 1] == new[end_new - 1]:
        end_old, end_new = end_old - 1, end_new - 1
    return start, end_old, end_new
