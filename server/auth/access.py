"""Who may do what to a document: every route and socket asks here before it acts.

A non-member is told the document does not exist (404 / close 4404), the same answer as for a
missing one; a member whose role falls short is told so (403 / close 4403). A socket let in is
registered (`registered`) for as long as it is open, so that losing that access closes it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Protocol

from starlette import status
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.auth.sessions import Account, signed_in
from server.errors import (
    WS_4401_UNAUTHENTICATED,
    WS_4403_FORBIDDEN,
    WS_4404_DOCUMENT_NOT_FOUND,
    WS_4429_TOO_MANY_SOCKETS,
    Forbidden,
    Unauthenticated,
)
from server.middleware.origin import same_origin
from server.services import services
from server.sockets import Revocable
from storage import documents
from storage.documents import DocumentNotFound
from storage.models import Role

audit = logging.getLogger("cowrite.audit")

NEEDS = {
    Role.VIEWER: "read this document",
    Role.COMMENTER: "comment on this document (you can only read it)",
    Role.EDITOR: "change this document",
    Role.OWNER: "do this (only the document's owner can)",
}


async def authorize(conn: HTTPConnection, document_id: str, needed: Role) -> tuple[Account, Role]:
    """The signed-in account and its role in the document, if that role allows `needed`.

    Raises Unauthenticated, DocumentNotFound (not a member, or no such document) or Forbidden.
    """
    account = signed_in(conn)
    store = services(conn).store
    role = await store.run(documents.role_of, document_id, account.username)
    if role is None:
        raise DocumentNotFound(document_id)
    if not role.allows(needed):
        raise Forbidden(f"you are a {role} here and cannot {NEEDS[needed]}")
    return account, role


async def admit_socket(websocket: WebSocket, needed: Role) -> tuple[Account, Role] | None:
    """Check a socket's handshake: its Origin, its session, the user's role in the document.

    A cross-origin handshake is refused outright (1008). Otherwise the socket is accepted, and
    if the user may not be here it is closed at once with a code the page can act on: 4401 (sign
    in), 4404 (no such document, or not a member), 4403 (the role falls short). None then.
    """
    if not same_origin(websocket):
        audit.warning(
            "refused a socket to %s from origin %s", websocket.url.path, websocket.headers.get("origin")
        )
        await websocket.close(status.WS_1008_POLICY_VIOLATION, "cross-origin connection refused")
        return None
    await websocket.accept()
    try:
        return await authorize(websocket, websocket.path_params["doc_id"], needed)
    except Unauthenticated:
        await close_quietly(websocket, WS_4401_UNAUTHENTICATED, "sign in first")
    except DocumentNotFound:
        await close_quietly(websocket, WS_4404_DOCUMENT_NOT_FOUND, "document not found")
    except Forbidden as exc:
        await close_quietly(websocket, WS_4403_FORBIDDEN, exc.message)
    return None


class LiveSocket(Revocable, Protocol):
    """An admitted socket's own state: told of role changes and ended sessions while it is
    registered, and `closing` (code, reason) once the server decides to end it."""

    closing: tuple[int, str] | None


@contextlib.asynccontextmanager
async def registered(
    websocket: WebSocket, account: Account, document_id: str, socket: LiveSocket, kind: str
) -> AsyncIterator[bool]:
    """Register an admitted socket among its user's open ones (`server.sockets.LiveSockets`) for
    the block's length, counted in the metrics as a socket of `kind`. Only a registered socket
    hears that its user's role changed or session ended, and the count caps the user's sockets, so
    it is removed however the block ends: it returns, raises or is cancelled.

    Yields False when the user has as many open as they may: the socket is closed with 4429 then,
    and the block must not serve it. Once the block returns, the socket is closed with its
    `closing` (code, reason), if set. Raises what the block raises.
    """
    found = services(websocket)
    if not await found.sockets.add(account.username, document_id, socket, account.session_hash):
        await _too_many_sockets(websocket, account.username, found.sockets.per_user)
        yield False
        return
    try:
        with found.metrics.socket_open(kind):
            yield True
    finally:
        found.sockets.remove(account.username, socket)
    if socket.closing is not None:
        await close_quietly(websocket, *socket.closing)


async def _too_many_sockets(websocket: WebSocket, username: str, limit: int) -> None:
    services(websocket).metrics.refused("sockets")
    audit.warning("refused a socket to %s: %s has %d open", websocket.url.path, username, limit)
    await close_quietly(websocket, WS_4429_TOO_MANY_SOCKETS, f"at most {limit} open connections per user")


async def close_quietly(websocket: WebSocket, code: int, reason: str) -> None:
    """Close with a code; a client that has gone already needs no closing."""
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await websocket.close(code, reason)
