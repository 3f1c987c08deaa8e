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
from anyio.streams.memory import MemoryObjectSendStream
from pycrdt import (
    Awareness,
    Decoder,
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

from server.origin import same_origin
from server.users import current_user
from storage import collab
from storage.database import Store
from storage.documents import DocumentNotFound

log = logging.getLogger(__name__)

# ours: "every update you sent so far is stored"; payload: the server's state vector (a byte
# array), then how many updates this connection has sent (a varuint; it also covers deletions,
# which leave the state vector as it was)
MESSAGE_SAVED = 100
WS_4404_DOCUMENT_NOT_FOUND = 4404
OUTBOX_SIZE = 1024
TEXT_NAME = "content"
EMPTY_UPDATE = b"\x00\x00"


class Connection:
    """One client of a room: a bounded outbox drained by its own writer task."""

    def __init__(self, websocket: WebSocket, outbox: MemoryObjectSendStream[bytes]) -> None:
        self.websocket = websocket
        self.outbox = outbox
        self.awareness_ids: set[int] = set()
        self.updates_received = 0

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

    def __init__(self, document_id: str, owner: str, store: Store) -> None:
        self.document_id = document_id
        self.owner = owner
        self.store = store
        self.doc: Doc[Text] = Doc()
        self.text = self.doc.get(TEXT_NAME, type=Text)
        self.awareness = Awareness(self.doc)
        self.connections: set[Connection] = set()
        self.lock = anyio.Lock()
        self.text_dirty = False
        self.log_entries = 0
        self.empty_since: float | None = None

    async def load(self) -> None:
        """Replay the log; a document from before co-editing is seeded from its stored text."""
        updates, stored_text = await self.store.run(collab.load_updates, self.document_id, self.owner)
        for update in updates:
            self.doc.apply_update(update)
        self.log_entries = len(updates)
        if not updates and stored_text:
            await self.replace_text(stored_text)

    # clients

    async def serve(self, websocket: WebSocket) -> None:
        send, receive = anyio.create_memory_object_stream[bytes](OUTBOX_SIZE)
        connection = Connection(websocket, send)
        async with send, anyio.create_task_group() as group:

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
                if self.awareness.states:
                    states = self.awareness.encode_awareness_update(list(self.awareness.states))
                    connection.send(create_awareness_message(states))
                await self._read(websocket, connection)
            finally:
                self.connections.discard(connection)
                self._forget_awareness(connection)
                if not self.connections:
                    self.empty_since = anyio.current_time()
                group.cancel_scope.cancel()

    async def _read(self, websocket: WebSocket, connection: Connection) -> None:
        while True:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                return
            message = frame.get("bytes")
            if message is None:
                await websocket.close(status.WS_1003_UNSUPPORTED_DATA, "document sockets carry binary frames")
                return
            try:
                await self._handle(message, connection)
            except (ValueError, IndexError, AssertionError) as exc:
                log.warning("malformed message on document %s: %s", self.document_id, exc)
                await websocket.close(status.WS_1007_INVALID_FRAME_PAYLOAD_DATA, "malformed message")
                return

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
                await self.receive_update(payload, connection)
            else:
                raise ValueError(f"unknown sync step {step}")
        elif kind == YMessageType.AWARENESS:
            update = read_message(message[1:])
            for client_id, present in awareness_clients(update):
                (connection.awareness_ids.add if present else connection.awareness_ids.discard)(client_id)
            self.awareness.apply_awareness_update(update, connection)
            for other in self.connections:
                other.send(message)
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

    def _forget_awareness(self, connection: Connection) -> None:
        gone = [c for c in connection.awareness_ids if c in self.awareness.states]
        if not gone:
            return
        self.awareness.remove_awareness_states(gone, connection)
        message = create_awareness_message(self.awareness.encode_awareness_update(gone))
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


def write_var_uint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def awareness_clients(update: bytes) -> list[tuple[int, bool]]:
    """(client id, has a state) for each entry of an encoded awareness update."""
    decoder = Decoder(update)
    out = []
    for _ in range(decoder.read_var_uint()):
        client_id = decoder.read_var_uint()
        decoder.read_var_uint()  # clock
        state = decoder.read_var_string()
        out.append((client_id, state not in ("", "null")))
    return out


class Rooms:
    """The open rooms; an async context manager whose task keeps texts saved and logs compact."""

    def __init__(
        self,
        store: Store,
        save_every_s: float = 1.0,
        compact_after_entries: int = 500,
        close_after_idle_s: float = 10.0,
    ) -> None:
        self.store = store
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

    async def open(self, document_id: str, owner: str) -> Room:
        """The room for a document, loading it first if nobody has it open."""
        if self._group is None:
            raise RuntimeError("rooms not started; enter `async with rooms:` first")
        async with self._opening:
            room = self._rooms.get(document_id)
            if room is None or room.owner != owner:
                room = Room(document_id, owner, self.store)
                await room.load()
                self._rooms[document_id] = room
            return room

    def get(self, document_id: str) -> Room | None:
        return self._rooms.get(document_id)

    async def set_text(self, document_id: str, owner: str, text: str) -> None:
        """An edit from outside any client (the HTTP API, a restore), made through the CRDT."""
        room = await self.open(document_id, owner)
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
    if not same_origin(websocket):
        log.warning("refused a document socket from origin %s", websocket.headers.get("origin"))
        await websocket.close(status.WS_1008_POLICY_VIOLATION, "cross-origin connection refused")
        return
    rooms: Rooms = websocket.app.state.rooms
    document_id = websocket.path_params["doc_id"]
    await websocket.accept()
    try:
        room = await rooms.open(document_id, current_user(websocket))
    except DocumentNotFound:
        await websocket.close(WS_4404_DOCUMENT_NOT_FOUND, "document not found")
        return
    await room.serve(websocket)


routes = [WebSocketRoute("/ws/doc/{doc_id}", document_socket)]
