"""The open sockets of every user (`LiveSockets`), and the control messages by which replicas tell
each other's sockets that a session ended, a role changed, comments changed or a document went.

A control message travels as JSON on the broker's control channel (`{"op": ...}`, as in
docs/cluster.md); here it is a typed value (`Control`), checked field by field when it arrives.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections import defaultdict
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from redis.exceptions import RedisError

from server.cluster.broker import CONTROL, CONTROL_CHANNEL, Broker, Envelope, LocalBroker
from server.errors import WS_4401_UNAUTHENTICATED
from server.lifecycle import Lifecycle
from storage.models import Role

log = logging.getLogger(__name__)
RELEASE_BACKLOG = 4096
SOCKET_RENEW_S = 20  # well inside the shared count's lease (`server.cluster.redis_limits.SOCKET_LEASE_S`)

# how a socket closes when the session it was opened under ends (`LiveSockets.end_session`)
SESSION_ENDED = (WS_4401_UNAUTHENTICATED, "your session ended; sign in again")


@dataclass(frozen=True)
class SessionEnded:
    """A session ended (signed out, replaced, expired, reset): its sockets close with 4401."""

    session: str  # the session id's hash


@dataclass(frozen=True)
class UserSessionsEnded:
    """Every session of a user ended (a password change)."""

    user: str


@dataclass(frozen=True)
class RoleChanged:
    """A user's role in a document changed; None: they were removed from it."""

    document: str
    user: str
    role: Role | None


@dataclass(frozen=True)
class CommentsChanged:
    """A document's comments changed: its document sockets refetch them."""

    document: str


@dataclass(frozen=True)
class DocumentGone:
    """A document was deleted or trashed: every socket on it loses its access."""

    document: str


Control = SessionEnded | UserSessionsEnded | RoleChanged | CommentsChanged | DocumentGone

# each control's name on the wire and its fields, all strings but a role's
OPS: dict[str, type[Control]] = {
    "end_session": SessionEnded,
    "end_sessions_of": UserSessionsEnded,
    "role": RoleChanged,
    "comments": CommentsChanged,
    "document_gone": DocumentGone,
}
OP_OF = {kind: op for op, kind in OPS.items()}
ROLES = {str(role): role for role in Role}


def encode_control(control: Control) -> bytes:
    fields: dict[str, str | None] = {"op": OP_OF[type(control)]}
    match control:
        case SessionEnded(session):
            fields["session"] = session
        case UserSessionsEnded(user):
            fields["user"] = user
        case RoleChanged(document, user, role):
            fields |= {"document": document, "user": user, "role": None if role is None else str(role)}
        case CommentsChanged(document) | DocumentGone(document):
            fields["document"] = document
    return json.dumps(fields).encode()


def decode_control(payload: bytes) -> Control | None:
    """The control message another replica sent; None when it is not one (malformed, unknown op,
    a field missing or of the wrong type, a role that does not exist). A role change whose role is
    null or left out removes the user from the document: access errs on the side of less."""
    try:
        fields = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None

    def text(name: str) -> str | None:
        value = fields.get(name)
        return value if isinstance(value, str) else None

    match fields.get("op"):
        case "end_session" if (session := text("session")) is not None:
            return SessionEnded(session)
        case "end_sessions_of" if (user := text("user")) is not None:
            return UserSessionsEnded(user)
        case "role" if (document := text("document")) is not None and (user := text("user")) is not None:
            role = fields.get("role")
            if role is None:
                return RoleChanged(document, user, None)
            if isinstance(role, str) and role in ROLES:
                return RoleChanged(document, user, ROLES[role])
            return None
        case "comments" if (document := text("document")) is not None:
            return CommentsChanged(document)
        case "document_gone" if (document := text("document")) is not None:
            return DocumentGone(document)
    return None


class Revocable(Protocol):
    """An open socket that learns when its user's role in its document changes, and when the
    session it was opened under ends (it then closes with 4401)."""

    def role_changed(self, role: Role | None) -> None: ...

    def session_ended(self) -> None: ...


@runtime_checkable
class CommentWatcher(Protocol):
    """A document socket, told when its document's comments change (suggestion sockets are not)."""

    def comments_changed(self) -> None: ...


class SocketCount(Protocol):
    """Open sockets per user counted across replicas (`server.cluster.redis_limits.RedisSocketCount`)."""

    async def claim(self, user: str, socket_id: str, limit: int) -> bool: ...

    async def release(self, user: str, socket_id: str) -> None: ...

    async def renew(self, open_sockets: dict[str, list[str]]) -> None: ...


class LiveSockets(Lifecycle):
    """The open sockets of every user: capped per user (across replicas, given a shared count),
    told when a role changes, and closed when the session they were opened under ends. Changes
    announced here reach every replica's sockets through the broker.

    An async context manager: its task renews the shared count's leases and releases counts."""

    def __init__(
        self, per_user: int, broker: Broker | None = None, shared: SocketCount | None = None
    ) -> None:
        self.per_user = per_user
        self.broker: Broker = broker or LocalBroker()
        self.shared = shared
        self._by_user: defaultdict[str, dict[Revocable, str]] = defaultdict(dict)  # socket -> document
        self._by_session: dict[str, set[Revocable]] = {}  # session id hash -> its sockets
        self._session_of: dict[Revocable, str] = {}
        self._ids: dict[Revocable, str] = {}  # socket -> its id in the shared count
        self._serial = itertools.count()
        self._released: MemoryObjectSendStream[tuple[str, str]] | None = None

    async def _start(self, stack: AsyncExitStack) -> None:
        group = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(group.cancel_scope.cancel)
        stack.callback(await self.broker.subscribe(CONTROL_CHANNEL, self._on_control))
        if self.shared is not None:
            self._released, to_release = anyio.create_memory_object_stream[tuple[str, str]](
                RELEASE_BACKLOG
            )
            stack.callback(self._released.close)
            group.start_soon(self._keep_count, self.shared, to_release)

    async def add(self, user: str, document_id: str, socket: Revocable, session: str) -> bool:
        """Count a new socket opened under `session` (the session id's hash); False (and not
        counted) when the user has `per_user` open already, on this replica or all together."""
        sockets = self._by_user[user]
        if len(sockets) >= self.per_user:
            return False
        if self.shared is not None:
            socket_id = f"{next(self._serial)}"
            try:
                claimed = await self.shared.claim(user, socket_id, self.per_user)
            except RedisError:
                log.warning("could not count a socket of %s across replicas; counting it here only", user)
                claimed = True
            if not claimed:
                return False
            self._ids[socket] = socket_id
            sockets = self._by_user[user]  # another socket of theirs may have come and gone meanwhile
        sockets[socket] = document_id
        self._by_session.setdefault(session, set()).add(socket)
        self._session_of[socket] = session
        return True

    def remove(self, user: str, socket: Revocable) -> None:
        sockets = self._by_user.get(user)
        if sockets is not None:
            sockets.pop(socket, None)
            if not sockets:
                del self._by_user[user]
        session = self._session_of.pop(socket, None)
        if session is not None:
            same = self._by_session[session]
            same.discard(socket)
            if not same:
                del self._by_session[session]
        socket_id = self._ids.pop(socket, None)
        if socket_id is not None and self._released is not None:
            try:
                self._released.send_nowait((user, socket_id))
            except (anyio.WouldBlock, anyio.ClosedResourceError):
                pass  # its lease runs out by itself

    def sessions(self) -> set[str]:
        """The sessions (id hashes) that have sockets open here."""
        return set(self._by_session)

    def memberships(self) -> set[tuple[str, str]]:
        """(document id, username) of every socket open here."""
        return {
            (document_id, user) for user, sockets in self._by_user.items() for document_id in sockets.values()
        }

    # what every replica hears

    async def end_session(self, session: str) -> None:
        """The session ended (signed out, replaced, expired, reset elsewhere): close its sockets."""
        await self._announce(SessionEnded(session))

    async def end_sessions_of(self, user: str) -> None:
        """Every session of the user ended (a password change): close all their sockets."""
        await self._announce(UserSessionsEnded(user))

    async def role_changed(self, document_id: str, user: str, role: Role | None) -> None:
        await self._announce(RoleChanged(document_id, user, role))

    async def comments_changed(self, document_id: str) -> None:
        await self._announce(CommentsChanged(document_id))

    async def document_gone(self, document_id: str) -> None:
        await self._announce(DocumentGone(document_id))

    async def _announce(self, control: Control) -> None:
        self.apply(control)
        await self.broker.publish(CONTROL_CHANNEL, CONTROL, encode_control(control))

    def _on_control(self, envelope: Envelope) -> None:
        if envelope.kind != CONTROL:
            return  # RESYNC: a sign-out missed meanwhile is found by the session sweep
        control = decode_control(envelope.payload)
        if control is None:
            log.warning("dropped a malformed control message from replica %s", envelope.sender)
            return
        self.apply(control)

    def apply(self, control: Control) -> None:
        """Carry out a control message on this replica's sockets."""
        match control:
            case SessionEnded(session):
                for socket in list(self._by_session.get(session, ())):
                    socket.session_ended()
            case UserSessionsEnded(user):
                for socket in list(self._by_user.get(user, {})):
                    socket.session_ended()
            case RoleChanged(document_id, user, role):
                for socket, where in list(self._by_user.get(user, {}).items()):
                    if where == document_id:
                        socket.role_changed(role)
            case CommentsChanged(document_id):
                for socket in self._on_document(document_id):
                    if isinstance(socket, CommentWatcher):
                        socket.comments_changed()
            case DocumentGone(document_id):
                for socket in self._on_document(document_id):
                    socket.role_changed(None)

    def _on_document(self, document_id: str) -> list[Revocable]:
        return [
            socket
            for sockets in list(self._by_user.values())
            for socket, where in list(sockets.items())
            if where == document_id
        ]

    async def _keep_count(
        self, shared: SocketCount, to_release: MemoryObjectReceiveStream[tuple[str, str]]
    ) -> None:
        async def release() -> None:
            async for user, socket_id in to_release:
                try:
                    await shared.release(user, socket_id)
                except RedisError as exc:
                    log.warning("could not release a socket count (%s); its lease runs out", exc)

        async def renew() -> None:
            while True:
                await anyio.sleep(SOCKET_RENEW_S)
                open_sockets: dict[str, list[str]] = {}
                for user, sockets in list(self._by_user.items()):
                    ids = [self._ids[s] for s in sockets if s in self._ids]
                    if ids:
                        open_sockets[user] = ids
                try:
                    await shared.renew(open_sockets)
                except RedisError as exc:
                    log.warning("could not renew the socket counts (%s); will retry", exc)

        with to_release:
            async with anyio.create_task_group() as group:
                group.start_soon(release)
                group.start_soon(renew)
