"""The open rooms: loading a document into a room, edits from outside any client, and upkeep.

`Rooms` is entered in the app's lifespan. Its task group runs each room's worker and one upkeep
task that keeps texts saved and logs compact, and closes rooms nobody has had open for a while.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

import anyio
from anyio.abc import TaskGroup
from sqlalchemy.exc import SQLAlchemyError

from server.cluster.broker import Broker, LocalBroker
from server.collab.awareness import AwarenessLimits
from server.collab.room import LEASE_S, Room, RoomClosed, RoomMetrics
from server.errors import DatabaseUnavailable
from server.lifecycle import Lifecycle
from server.settings import Settings
from storage import collab
from storage.database import Store
from storage.documents import DocumentNotFound

log = logging.getLogger(__name__)

ATTEMPTS = 2  # a room closed under a caller (idle, or dropped) is opened again once
HAND_OVER_AFTER_SAVES = 3  # upkeep rounds the lease holder gets to save an edit before its writer is named


class Rooms(Lifecycle):
    """The open rooms; an async context manager whose tasks run them."""

    def __init__(
        self,
        store: Store,
        save_every_s: float = 1.0,
        compact_after_entries: int = 500,
        close_after_idle_s: float = 10.0,
        update_limit: int = 4 << 20,
        idle_timeout_s: float = 600.0,
        document_limit: int = 16 << 20,
        awareness_limits: AwarenessLimits | None = None,
        broker: Broker | None = None,
        metrics: RoomMetrics | None = None,
    ) -> None:
        self.store = store
        self.broker: Broker = broker or LocalBroker()
        self.metrics = metrics
        self.awareness_limits = awareness_limits or AwarenessLimits()
        self.update_limit = update_limit
        self.idle_timeout_s = idle_timeout_s
        self.document_limit = document_limit
        self.save_every_s = save_every_s
        self.compact_after_entries = compact_after_entries
        self.close_after_idle_s = close_after_idle_s
        self._rooms: dict[str, Room] = {}
        self._opening = anyio.Lock()
        self._group: TaskGroup | None = None
        self._upkeep_scope = anyio.CancelScope()

    async def _start(self, stack: AsyncExitStack) -> None:
        # on the way out, last in first out: the upkeep stops, every room saves and closes, a worker
        # still running (a room dropped meanwhile) is cancelled, and then rooms can no longer open
        stack.callback(setattr, self, "_group", None)
        group = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(group.cancel_scope.cancel)
        stack.push_async_callback(self._close_all)
        stack.callback(self._upkeep_scope.cancel)
        group.start_soon(self._upkeep)
        self._group = group

    async def _close_all(self) -> None:
        for room in list(self._rooms.values()):
            await self._close(room, force=True)

    async def open(self, document_id: str) -> Room:
        """The room for a document, loading it first if nobody has it open. Who may join it is
        checked before (`server.auth.access`), per connection."""
        if self._group is None:
            raise RuntimeError("rooms not started; enter `async with rooms:` first")
        async with self._opening:
            room = self._rooms.get(document_id)
            if room is None:
                room = Room(
                    document_id,
                    self.store,
                    self.update_limit,
                    self.idle_timeout_s,
                    self.document_limit,
                    on_broken=self._drop,
                    awareness_limits=self.awareness_limits,
                    broker=self.broker,
                    metrics=self.metrics,
                )
                await room.listen()
                try:
                    await room.load()
                except RoomClosed as exc:  # seeding it from its text could not be stored
                    room.stop_listening()
                    raise DatabaseUnavailable("the document could not be loaded") from exc
                except BaseException:
                    room.stop_listening()
                    raise
                self._rooms[document_id] = room
                self._group.start_soon(room.worker.run)
            if not room.connections:  # its caller joins it now: not idle for a while yet
                room.empty_since = anyio.current_time()
            return room

    def get(self, document_id: str) -> Room | None:
        return self._rooms.get(document_id)

    async def set_text(self, document_id: str, text: str, author: str | None = None) -> None:
        """An edit from outside any client (the HTTP API, a restore) by `author`, made through the
        CRDT. DocumentTooLarge past the document's limit; DatabaseUnavailable if it was not stored."""
        for attempt in range(ATTEMPTS):
            room = await self.open(document_id)
            try:
                await room.replace_text(text, author)
                await room.save_text()
                return
            except RoomClosed as exc:
                if room.broken or attempt + 1 == ATTEMPTS:
                    raise DatabaseUnavailable("the document could not be saved") from exc

    async def flush_text(self, document_id: str) -> None:
        """Make the stored text what the document holds: save an open room's text, or load a
        document whose log has edits its stored text may lack (after a crash), which saves it."""
        for attempt in range(ATTEMPTS):
            room = self._rooms.get(document_id)
            if room is None:
                if not await self.store.run(collab.text_may_be_stale, document_id):
                    return
                room = await self.open(document_id)
            try:
                await room.save_text()
                return
            except RoomClosed as exc:
                if room.broken or attempt + 1 == ATTEMPTS:
                    raise DatabaseUnavailable("the document could not be read") from exc

    async def forget(self, document_id: str) -> None:
        """Drop a deleted document's room, disconnecting its clients."""
        room = self._rooms.pop(document_id, None)
        if room is not None:
            room.stop_listening()
            room.worker.close()
            for connection in list(room.connections):
                connection.outbox.close()

    def _drop(self, room: Room) -> None:
        """A room that broke: the next client loads the document afresh from its log."""
        if self._rooms.get(room.document_id) is room:
            del self._rooms[room.document_id]

    async def _upkeep(self) -> None:
        with self._upkeep_scope:
            while True:
                await anyio.sleep(self.save_every_s)
                now = anyio.current_time()
                for room in list(self._rooms.values()):
                    try:
                        if not await self.broker.take_lease(room.lease, LEASE_S):
                            # another replica keeps this document's text and log; version history:
                            # once it has saved their edits, name who wrote through this one
                            await room.hand_over_authors(HAND_OVER_AFTER_SAVES * self.save_every_s)
                            continue
                        if room.log_entries > self.compact_after_entries:
                            await room.compact()
                        else:
                            await room.save_text()
                        idle = (
                            room.empty_since is not None and now - room.empty_since >= self.close_after_idle_s
                        )
                        if idle and not room.connections:
                            await self._close(room)
                    except DocumentNotFound:
                        await self.forget(room.document_id)
                    except RoomClosed:
                        pass  # dropped meanwhile
                    except SQLAlchemyError:
                        # the database is unavailable for now: the log and the text catch up next time
                        log.exception("could not save document %s; will retry", room.document_id)

    async def _close(self, room: Room, force: bool = False) -> None:
        """Close a room nobody has open (or any, with `force`): it leaves the table first, so a
        client arriving now gets a fresh room loaded from the log, while this one saves its text
        and folds its log."""
        if room.connections and not force:
            return
        self._drop(room)
        leased = await self.broker.take_lease(room.lease, LEASE_S)
        try:
            if leased:
                await room.close()
            else:  # the replica that holds the lease saves and folds it
                room.stop_listening()
                room.worker.close()
        except RoomClosed:
            pass
        except SQLAlchemyError:
            log.exception("could not save document %s on closing it", room.document_id)
        finally:
            if leased and self.broker.shared:
                await self.broker.release_lease(room.lease)


def rooms_for(settings: Settings, store: Store, broker: Broker, metrics: RoomMetrics | None = None) -> Rooms:
    return Rooms(
        store,
        broker=broker,
        metrics=metrics,
        update_limit=settings.update_limit_mb << 20,
        idle_timeout_s=settings.idle_timeout_s,
        document_limit=settings.document_limit_mb << 20,
        awareness_limits=AwarenessLimits(
            ids_per_connection=settings.awareness_ids_per_connection,
            state_bytes=settings.awareness_state_limit_kb << 10,
            room_bytes=settings.awareness_room_limit_kb << 10,
        ),
    )
