"""One client of a live document: its outbox, its role in the document, and how it is closed."""

from __future__ import annotations

import logging

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.websockets import WebSocket

from server.collab.ywire import comments_message, role_changed_message
from server.errors import WS_4403_FORBIDDEN
from server.sockets import SESSION_ENDED
from storage.models import Role

log = logging.getLogger(__name__)
OUTBOX_SIZE = 1024


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
            self.send(role_changed_message(str(role)))

    def comments_changed(self) -> None:
        """Someone commented, replied, resolved or deleted: the page fetches the comments again."""
        self.send(comments_message())

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
