"""Live documents: `WS /ws/doc/{doc_id}` speaks the y-websocket sync and awareness protocol.

Each open document is a `Room` holding the pycrdt document, its connections and their awareness.
An update from a client is applied, appended to the document's update log in the database, and
only then broadcast to the others and acknowledged to its sender (message type 100, carrying the
server's state vector), so every acknowledged edit survives a crash. The plain text is kept in
step beside the log, and the log is compacted into a snapshot on a schedule and when the room
empties.
"""

from __future__ import annotations

import logging
from types import TracebackType

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pycrdt import (
    Doc,
    Text,
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    read_message,
    write_message,
)
from sqlalchemy.exc import SQLAlchemyError
from starlette import status
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.access import admit_socket, close_quietly, too_many_sockets
from server.awareness import AwarenessLimits, AwarenessRefused, RoomPresence, write_var_uint
from server.errors import WS_4403_FORBIDDEN, WS_4404_DOCUMENT_NOT_FOUND
from server.limits import SESSION_ENDED, IdleTimer, LiveSockets, idle_close
from server.settings import Settings
from storage import collab
from storage.database import Store
from storage.documents import DocumentNotFound
from storage.models import Role

log = logging.getLogger(__name__)
audit = logging.getLogger("cowrite.audit")

# ours: "every update you sent so far is stored"; payload: the server's state vector (a byte
# array), then how many updates this connection has sent (a varuint; it also covers deletions,
# which leave the state vector as it was)
MESSAGE_SAVED = 100
# ours: "your update was refused and nothing of it kept" (a viewer's); payload: a reason string
MESSAGE_REJECTED = 101
# ours: "the owner changed your role"; payload: the new role as a string
MESSAGE_ROLE_CHANGED = 102
OUTBOX_SIZE = 1024
TEXT_NAME = "content"
EMPTY_UPDATE = b"\x00\x00"


class Connection:
    """One client of a room: a bounded outbox drained by its own writer task, and the role its
    user has in the document (checked on every update it sends)."""

    def __init__(
        self, websocket: WebSocket, outbox: MemoryObjectSendStream[bytes], username: str, role: Role
    ) -> None:
        self.websocket = websocket
        self.outbox = outbox
        self.username = username
        self.role = role
        self.awareness_ids: set[int] = set()
        self.updates_received = 0
        self.updates_rejected = 0
        self.closing: tuple[int, str] | None = None  # set when the server ends the connection

    def role_changed(self, role: Role | None) -> None:
        if role is None:
            self.closing = (WS_4403_FORBIDDEN, "your access to this document was removed")
            self.outbox.close()  # the writer stops, and with it the connection
        elif role is not self.role:
            self.role = role
            self.send(bytes([MESSAGE_ROLE_CHANGED]) + write_message(str(role).encode()))

    def session_ended(self) -> None:
        """The user signed out (or was signed out): nothing more of this connection is read."""
        self.closing = SESSION_ENDED
        self.outbox.close()

    def send(self, message: bytes) -> None:
        """Queue a message; a client too slow to keep up is disconnected rather than waited for."""
        try:
            self.outbox.send_nowait(message)
        except anyio.WouldBlock:
            log.warning("closing a document socket that fell %d messages behind", OUTBOX_SIZE)
            self.outbox.close()
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass


class Room:
    """One document while anyone has it open."""

    def __init__(
        self,
        document_id: str,
        store: Store,
        update_limit: int,
        idle_timeout_s: float,
        awareness_limits: AwarenessLimits | None = None,
    ) -> None:
        self.document_id = document_id
        self.store = store
        self.update_limit = update_limit
        self.idle_timeout_s = idle_timeout_s
        self.doc: Doc[Text] = Doc()
        self.text = self.doc.get(TEXT_NAME, type=Text)
        self.presence = RoomPresence(document_id, awareness_limits or AwarenessLimits())
        self.connections: set[Connection] = set()
        self.lock = anyio.Lock()
        self.text_dirty = False
        self.log_entries = 0
        self.empty_since: float | None = None

    async def load(self) -> None:
        """Replay the log; a document from before co-editing is seeded from its stored text."""
        updates, stored_text = await self.store.run(collab.load_updates, self.document_id)
        for update in updates:
            self.doc.apply_update(update)
        self.log_entries = len(updates)
        if not updates and stored_text:
            await self.replace_text(stored_text)

    # clients

    async def serve(self, connection: Connection, receive: MemoryObjectReceiveStream[bytes]) -> None:
        websocket = connection.websocket
        async with connection.outbox, anyio.create_task_group() as group:

            async def write() -> None:
                try:
                    async with receive:
                        async for message in receive:
                            await websocket.send_bytes(message)
                except (OSError, RuntimeError, WebSocketDisconnect):
                    pass  # the client went away; the reader sees the disconnect
                group.cancel_scope.cancel()  # the outbox was closed or the client left

            group.start_soon(write)
            self.connections.add(connection)
            self.empty_since = None
            try:
                connection.send(create_sync_message(self.doc))
                states = self.presence.snapshot()
                if states is not None:
                    connection.send(create_awareness_message(states))
                await self._read(websocket, connection)
            finally:
                self.connections.discard(connection)
                self._forget_awareness(connection)
                if not self.connections:
                    self.empty_since = anyio.current_time()
                group.cancel_scope.cancel()

    async def _read(self, websocket: WebSocket, connection: Connection) -> None:
        idle = IdleTimer(self.idle_timeout_s)
        while True:
            frame = await idle.receive(websocket)
            if frame is None:
                connection.closing = idle_close(self.idle_timeout_s)
                return
            if frame["type"] == "websocket.disconnect" or connection.closing is not None:
                return  # closing: the server is ending this connection, so the frame is not read
            message = frame.get("bytes")
            if message is None:
                connection.closing = (status.WS_1003_UNSUPPORTED_DATA, "document sockets carry binary frames")
                return
            if len(message) > self.update_limit:
                connection.closing = (
                    status.WS_1009_MESSAGE_TOO_BIG,
                    f"message larger than {self.update_limit} bytes",
                )
                return
            try:
                await self._handle(message, connection)
            except AwarenessRefused as exc:
                audit.warning(
                    "closed a document socket of %s on %s: %s", connection.username, self.document_id, exc
                )
                connection.closing = (status.WS_1008_POLICY_VIOLATION, str(exc))
                return
            except (ValueError, IndexError, AssertionError, RuntimeError) as exc:
                # pycrdt's decoder raises RuntimeError("Y protocol error") on a truncated message
                log.warning("malformed message on document %s: %s", self.document_id, exc)
                connection.closing = (status.WS_1007_INVALID_FRAME_PAYLOAD_DATA, "malformed message")
                return
            if message[0] == YMessageType.SYNC and message[1] != YSyncMessageType.SYNC_STEP1:
                idle.touch()  # an edit (sync step 2 or update); awareness alone is not activity

    async def _handle(self, message: bytes, connection: Connection) -> None:
        kind = message[0]
        if kind == YMessageType.SYNC:
            step = message[1]
            payload = read_message(message[2:])
            if step == YSyncMessageType.SYNC_STEP1:
                reply = self.doc.get_update(payload)
                connection.send(
                    bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2]) + write_message(reply)
                )
            elif step in (YSyncMessageType.SYNC_STEP2, YSyncMessageType.SYNC_UPDATE):
                if connection.role.allows(Role.EDITOR):
                    await self.receive_update(payload, connection)
                elif payload != EMPTY_UPDATE:
                    self._reject(connection, len(payload))
            else:
                raise ValueError(f"unknown sync step {step}")
        elif kind == YMessageType.AWARENESS:
            update = self.presence.accept(read_message(message[1:]), connection)
            if update is None:
                return
            relayed = create_awareness_message(update)
            for other in self.connections:
                other.send(relayed)
        else:
            raise ValueError(f"unknown message type {kind}")

    async def receive_update(self, update: bytes, sender: Connection | None) -> None:
        """Apply, store, then broadcast and acknowledge one update."""
        if update != EMPTY_UPDATE:
            async with self.lock:
                self.doc.apply_update(update)  # raises on a malformed update: nothing is stored
                self.log_entries = await self.store.run(collab.append_update, self.document_id, update)
                self.text_dirty = True
            message = create_update_message(update)
            for other in self.connections:
                if other is not sender:
                    other.send(message)
        if sender is not None:
            sender.updates_received += 1
            ack = bytes([MESSAGE_SAVED]) + write_message(self.doc.get_state())
            sender.send(ack + write_var_uint(sender.updates_received))

    def _reject(self, connection: Connection, size: int) -> None:
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
        connection.send(bytes([MESSAGE_REJECTED]) + write_message(b"read-only: you are a viewer here"))

    def _forget_awareness(self, connection: Connection) -> None:
        removed = self.presence.forget(connection)
        if removed is None:
            return
        message = create_awareness_message(removed)
        for other in self.connections:
            other.send(message)

    # the server's own edits (API clients, restores) and upkeep

    async def replace_text(self, new: str) -> None:
        """Change the text to `new` as one edit (only the part that differs), stored and broadcast."""
        old = str(self.text)
        if old == new:
            return
        start = 0
        while start < min(len(old), len(new)) and old[start] == new[start]:
            start += 1
        end_old, end_new = len(old), len(new)
        while end_old > start and end_new > start and old[end_old - 1] == new[end_new - 1]:
            end_old, end_new = end_old - 1, end_new - 1
        # pycrdt counts positions in UTF-8 bytes
        at, old_end = len(old[:start].encode()), len(old[:end_old].encode())
        before = self.doc.get_state()
        with self.doc.transaction(origin="server"):
            if old_end > at:
                del self.text[at:old_end]
            if end_new > start:
                self.text.insert(at, new[start:end_new])
        update = self.doc.get_update(before)
        async with self.lock:
            self.log_entries = await self.store.run(collab.append_update, self.document_id, update)
            self.text_dirty = True
        message = create_update_message(update)
        for connection in self.connections:
            connection.send(message)

    async def save_text(self) -> None:
        if self.text_dirty:
            self.text_dirty = False
            await self.store.run(collab.save_text, self.document_id, str(self.text))

    async def compact(self) -> None:
        """Fold the log into one snapshot of the current state."""
        async with self.lock:
            if self.log_entries <= 1:
                return
            upto = await self.store.run(collab.last_update_id, self.document_id)
            await self.store.run(collab.compact, self.document_id, self.doc.get_update(), upto)
            self.log_entries = 1


class Rooms:
    """The open rooms; an async context manager whose task keeps texts saved and logs compact."""

    def __init__(
        self,
        store: Store,
        save_every_s: float = 1.0,
        compact_after_entries: int = 500,
        close_after_idle_s: float = 10.0,
        update_limit: int = 4 << 20,
        idle_timeout_s: float = 600.0,
        awareness_limits: AwarenessLimits | None = None,
    ) -> None:
        self.store = store
        self.update_limit = update_limit
        self.awareness_limits = awareness_limits or AwarenessLimits()
        self.idle_timeout_s = idle_timeout_s
        self.save_every_s = save_every_s
        self.compact_after_entries = compact_after_entries
        self.close_after_idle_s = close_after_idle_s
        self._rooms: dict[str, Room] = {}
        self._opening = anyio.Lock()
        self._group: TaskGroup | None = None

    async def __aenter__(self) -> Rooms:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._upkeep)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._group is not None
        self._group.cancel_scope.cancel()
        await self._group.__aexit__(None, None, None)
        self._group = None
        for room in list(self._rooms.values()):
            await self._close(room)

    async def open(self, document_id: str) -> Room:
        """The room for a document, loading it first if nobody has it open. Who may join it is
        checked before (`server.access`), per connection."""
        if self._group is None:
            raise RuntimeError("rooms not started; enter `async with rooms:` first")
        async with self._opening:
            room = self._rooms.get(document_id)
            if room is None:
                room = Room(
                    document_id, self.store, self.update_limit, self.idle_timeout_s, self.awareness_limits
                )
                await room.load()
                self._rooms[document_id] = room
            return room

    def get(self, document_id: str) -> Room | None:
        return self._rooms.get(document_id)

    async def set_text(self, document_id: str, text: str) -> None:
        """An edit from outside any client (the HTTP API, a restore), made through the CRDT."""
        room = await self.open(document_id)
        await room.replace_text(text)
        await room.save_text()
        if not room.connections:
            room.empty_since = room.empty_since or anyio.current_time()

    async def forget(self, document_id: str) -> None:
        """Drop a deleted document's room, disconnecting its clients."""
        room = self._rooms.pop(document_id, None)
        if room is not None:
            for connection in list(room.connections):
                connection.outbox.close()

    async def _upkeep(self) -> None:
        while True:
            await anyio.sleep(self.save_every_s)
            now = anyio.current_time()
            for room in list(self._rooms.values()):
                try:
                    await room.save_text()
                    if room.log_entries > self.compact_after_entries:
                        await room.compact()
                    idle = room.empty_since is not None and now - room.empty_since >= self.close_after_idle_s
                    if idle and not room.connections:
                        await self._close(room)
                except DocumentNotFound:
                    self._rooms.pop(room.document_id, None)
                except SQLAlchemyError:
                    # the database is unavailable for now: the log and the text catch up next time
                    log.exception("could not save document %s; will retry", room.document_id)

    async def _close(self, room: Room) -> None:
        await room.save_text()
        await room.compact()
        if self._rooms.get(room.document_id) is room:
            del self._rooms[room.document_id]


async def document_socket(websocket: WebSocket) -> None:
    """Any member may join; a viewer's connection reads and shows presence but cannot write."""
    admitted = await admit_socket(websocket, Role.VIEWER)
    if admitted is None:
        return
    account, role = admitted
    document_id = websocket.path_params["doc_id"]
    rooms: Rooms = websocket.app.state.rooms
    sockets: LiveSockets = websocket.app.state.sockets
    try:
        room = await rooms.open(document_id)
    except DocumentNotFound:  # deleted in between
        await close_quietly(websocket, WS_4404_DOCUMENT_NOT_FOUND, "document not found")
        return
    send, receive = anyio.create_memory_object_stream[bytes](OUTBOX_SIZE)
    connection = Connection(websocket, send, account.username, role)
    if not sockets.add(account.username, document_id, connection, account.session_hash):
        send.close()
        receive.close()
        await too_many_sockets(websocket, account.username, sockets.per_user)
        return
    try:
        await room.serve(connection, receive)
    finally:
        sockets.remove(account.username, connection)
    if connection.closing is not None:
        await close_quietly(websocket, *connection.closing)


def rooms_for(settings: Settings, store: Store) -> Rooms:
    return Rooms(
        store,
        update_limit=settings.update_limit_mb << 20,
        idle_timeout_s=settings.idle_timeout_s,
        awareness_limits=AwarenessLimits(
            ids_per_connection=settings.awareness_ids_per_connection,
            state_bytes=settings.awareness_state_limit_kb << 10,
            room_bytes=settings.awareness_room_limit_kb << 10,
        ),
    )


routes = [WebSocketRoute("/ws/doc/{doc_id}", document_socket)]
