"""A y-websocket client in Python (pycrdt over `websockets`), for tests and benchmarks.

It keeps a pycrdt document in sync with a Cowrite document socket, sends its local edits as they
happen, and tracks the server's save acknowledgements (message type 100).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from types import TracebackType
from typing import Any

import websockets
from pycrdt import (
    Decoder,
    Doc,
    Subscription,
    Text,
    TransactionEvent,
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    read_message,
    write_message,
)

from server.collab.yupdates import write_var_uint
from server.collab.ywire import MESSAGE_COMMENTS, MESSAGE_REJECTED, MESSAGE_ROLE_CHANGED, MESSAGE_SAVED


def document_socket(url: str, document_id: str) -> str:
    """The document socket's address on the server at `url` (http or https)."""
    return url.replace("http", "ws", 1) + f"/ws/doc/{document_id}"


def decode_state_vector(state: bytes) -> dict[int, int]:
    decoder = Decoder(state)
    return {decoder.read_var_uint(): decoder.read_var_uint() for _ in range(decoder.read_var_uint())}


class YClient:
    """One collaborator: `text` is its view of the document; edit it inside `edit()`.

    Pass the `doc` of an earlier, closed client to reconnect with its copy of the document, as a
    browser tab does: the sync then sends the server whatever it lacks.
    """

    def __init__(
        self,
        url: str,
        on_update: Callable[[YClient], None] | None = None,
        headers: dict[str, str] | None = None,
        doc: Doc[Text] | None = None,
    ) -> None:
        self.url = url
        self.headers = headers or {}
        self.doc: Doc[Text] = doc if doc is not None else Doc()
        self.text = self.doc.get("content", type=Text)
        self.server_state: dict[int, int] = {}
        self.awareness: dict[int, Any] = {}
        self.synced = asyncio.Event()
        self.changed = asyncio.Event()
        self.on_update = on_update
        self.closed: int | None = None
        self.close_reason = ""
        self._applying = False
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.updates_sent = 0
        self.answers = 0  # sync step 2 messages received: answers to our step 1s
        self.rejected: list[str] = []  # reasons the server gave for refusing our updates
        self.role: str | None = None  # the role the server last said we were changed to
        self.comment_changes = 0  # "the comments changed" messages (103) heard
        self.updates_acknowledged = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._socket: Any = None
        self._subscription: Subscription | None = None

    async def __aenter__(self) -> YClient:
        self._socket = await websockets.connect(self.url, max_size=2**24, additional_headers=self.headers)
        self._subscription = self.doc.observe(self._local_update)
        try:
            await self._socket.send(create_sync_message(self.doc))
        except websockets.ConnectionClosed:
            pass  # the server closed first (4404, 4401, ...): the reader reports the code
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._write())]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._subscription is not None:
            self.doc.unobserve(self._subscription)
            self._subscription = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._socket.close()

    @property
    def client_id(self) -> int:
        return int(self.doc.client_id)

    def saved(self) -> bool:
        """Whether the server acknowledged storing every update this client sent."""
        return self.updates_acknowledged >= self.updates_sent

    async def wait_saved(self, within_s: float = 10.0) -> None:
        async with asyncio.timeout(within_s):
            while not self.saved():
                self.changed.clear()
                await self.changed.wait()

    async def wait_for(self, condition: Callable[[YClient], bool], within_s: float = 10.0) -> None:
        async with asyncio.timeout(within_s):
            while not condition(self):
                self.changed.clear()
                await self.changed.wait()

    async def set_awareness(self, state: dict[str, Any] | None, clock: int) -> None:
        payload = json.dumps(state) if state is not None else "null"
        update = write_var_uint(1) + write_var_uint(self.client_id) + write_var_uint(clock)
        update += write_message(payload.encode())
        await self._socket.send(create_awareness_message(update))

    async def send_raw(self, message: bytes) -> None:
        await self._socket.send(message)

    def _local_update(self, event: TransactionEvent) -> None:
        if not self._applying:
            self._send_update(create_update_message(event.update))

    def _send_update(self, message: bytes) -> None:
        self.updates_sent += 1  # counted when queued, so `saved()` never runs ahead of the queue
        self._outbox.put_nowait(message)

    async def _write(self) -> None:
        try:
            while True:
                await self._socket.send(await self._outbox.get())
        except websockets.ConnectionClosed:
            pass  # the reader records how it closed

    async def _read(self) -> None:
        try:
            async for message in self._socket:
                self._handle(bytes(message))
                self.changed.set()
                if self.on_update is not None:
                    self.on_update(self)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = self._socket.close_code or 1006
            self.close_reason = self._socket.close_reason or ""
            self.changed.set()

    def _handle(self, message: bytes) -> None:
        kind = message[0]
        if kind == YMessageType.SYNC:
            payload = read_message(message[2:])
            if message[1] == YSyncMessageType.SYNC_STEP1:
                reply = bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2]) + write_message(
                    self.doc.get_update(payload)
                )
                self._send_update(reply)
            else:
                self._applying = True
                try:
                    self.doc.apply_update(payload)
                finally:
                    self._applying = False
                if message[1] == YSyncMessageType.SYNC_STEP2:
                    self.answers += 1
                    self.synced.set()
        elif kind == YMessageType.AWARENESS:
            decoder = Decoder(read_message(message[1:]))
            for _ in range(decoder.read_var_uint()):
                client, _clock, state = (
                    decoder.read_var_uint(),
                    decoder.read_var_uint(),
                    decoder.read_var_string(),
                )
                parsed = json.loads(state) if state else None
                if parsed is None:
                    self.awareness.pop(client, None)
                else:
                    self.awareness[client] = parsed
        elif kind == MESSAGE_ROLE_CHANGED:
            self.role = Decoder(message[1:]).read_var_string()
        elif kind == MESSAGE_COMMENTS:
            self.comment_changes += 1
        elif kind == MESSAGE_REJECTED:
            self.rejected.append(Decoder(message[1:]).read_var_string())
        elif kind == MESSAGE_SAVED:
            decoder = Decoder(message[1:])
            vector = decoder.read_message()
            assert vector is not None
            self.server_state = decode_state_vector(vector)
            self.updates_acknowledged = decoder.read_var_uint()
