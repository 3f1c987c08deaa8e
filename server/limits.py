"""Abuse limits: sign-in attempts, suggestions per minute, open sockets per user (and the session
each was opened under), idle sockets, request size.

The classes here count in this process's memory (one replica; they reset on restart). With
`COWRITE_REDIS_URL` the same interfaces count in Redis across replicas (`server.shared_limits`), and
role changes and ended sessions reach every replica's sockets through the broker.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from server.broker import CONTROL, CONTROL_CHANNEL, Broker, Envelope, LocalBroker
from server.errors import WS_4401_UNAUTHENTICATED, WS_4408_IDLE, RequestTooLarge, api_error
from storage.models import Role

Clock = Callable[[], float]
log = logging.getLogger(__name__)
RELEASE_BACKLOG = 4096
SOCKET_RENEW_S = 20  # well inside the shared count's lease (`server.shared_limits.SOCKET_LEASE_S`)

# how a socket closes when the session it was opened under ends (`LiveSockets.end_session`)
SESSION_ENDED = (WS_4401_UNAUTHENTICATED, "your session ended; sign in again")


class Attempts(Protocol):
    """A sliding-window limit on attempts per key (`AttemptLimiter` here, or counted in Redis)."""

    async def retry_after(self, *keys: str) -> int: ...

    async def reserve(self, *keys: str) -> float | str | None: ...

    async def release(self, at: float | str, *keys: str) -> None: ...

    async def forget(self, key: str) -> None: ...


class Rate(Protocol):
    """A per-key rate (`RateLimiter` here, or counted in Redis)."""

    per_minute: int

    async def take(self, key: str) -> float: ...


class AttemptLimiter:
    """At most `limit` recorded attempts (failed sign-ins, sign-ups) per key in a sliding
    `window_s`; beyond that, wait."""

    def __init__(self, limits: dict[str, int], window_s: float, clock: Clock = time.monotonic) -> None:
        self.limits = limits  # key prefix ("account", "address") -> failures allowed
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    async def retry_after(self, *keys: str) -> int:
        """Seconds until an attempt under all these keys is allowed again; 0 when it is now."""
        return self._retry_after(keys)

    def _retry_after(self, keys: tuple[str, ...]) -> int:
        now = self.clock()
        wait = 0.0
        for key in keys:
            failures = self._recent(key, now)
            limit = self.limits[key.split(":", 1)[0]]
            if len(failures) >= limit:
                wait = max(wait, failures[-limit] + self.window_s - now)
        return math.ceil(wait)

    def _record(self, *keys: str) -> float:
        """Count an attempt under every key; returns its time (for `release`)."""
        now = self.clock()
        for key in keys:
            self._recent(key, now)
            self._failures.setdefault(key, deque()).append(now)
        return now

    async def reserve(self, *keys: str) -> float | None:
        """Count an attempt under every key before it is made (the check and the count are one
        step, so simultaneous attempts cannot all pass one check while the first is still being
        hashed). Its time, for `release`; None when a key is over its limit (see `retry_after`),
        and then nothing is counted."""
        if self._retry_after(keys) > 0:
            return None
        return self._record(*keys)

    async def release(self, at: float | str, *keys: str) -> None:
        """Un-count an attempt reserved at `at`: it turned out not to be a failure."""
        assert isinstance(at, float), "a reservation of this limiter is the time it was made"
        for key in keys:
            failures = self._failures.get(key)
            if failures is not None and at in failures:
                failures.remove(at)
                if not failures:
                    del self._failures[key]

    async def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[key]  # the table does not grow with every address that once failed
        return failures


class RateLimiter:
    """A token bucket per key: `per_minute` a minute on average, bursts up to `per_minute`."""

    def __init__(self, per_minute: int, clock: Clock = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)

    async def take(self, key: str) -> float:
        """Take one; returns 0 when allowed, else the seconds until one is available."""
        now = self.clock()
        rate = self.per_minute / 60.0
        tokens, when = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - when) * rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate if rate > 0 else math.inf


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
    """Open sockets per user counted across replicas (`server.shared_limits.RedisSocketCount`)."""

    async def claim(self, user: str, socket_id: str, limit: int) -> bool: ...

    async def release(self, user: str, socket_id: str) -> None: ...

    async def renew(self, open_sockets: dict[str, list[str]]) -> None: ...


class LiveSockets:
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
        self._group: TaskGroup | None = None
        self._unsubscribe: Callable[[], None] | None = None

    async def __aenter__(self) -> LiveSockets:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._unsubscribe = await self.broker.subscribe(CONTROL_CHANNEL, self._on_control)
        if self.shared is not None:
            self._released, to_release = anyio.create_memory_object_stream[tuple[str, str]](RELEASE_BACKLOG)
            self._group.start_soon(self._keep_count, self.shared, to_release)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._group is not None
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._released is not None:
            self._released.close()
        self._group.cancel_scope.cancel()
        await self._group.__aexit__(None, None, None)
        self._group = None

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
        await self._announce({"op": "end_session", "session": session})

    async def end_sessions_of(self, user: str) -> None:
        """Every session of the user ended (a password change): close all their sockets."""
        await self._announce({"op": "end_sessions_of", "user": user})

    async def role_changed(self, document_id: str, user: str, role: Role | None) -> None:
        await self._announce(
            {"op": "role", "document": document_id, "user": user, "role": role and str(role)}
        )

    async def comments_changed(self, document_id: str) -> None:
        await self._announce({"op": "comments", "document": document_id})

    async def document_gone(self, document_id: str) -> None:
        await self._announce({"op": "document_gone", "document": document_id})

    async def _announce(self, event: dict[str, str | None]) -> None:
        self.apply(event)
        await self.broker.publish(CONTROL_CHANNEL, CONTROL, json.dumps(event).encode())

    def _on_control(self, envelope: Envelope) -> None:
        if envelope.kind != CONTROL:
            return  # RESYNC: a sign-out missed meanwhile is found by the session sweep
        try:
            event = json.loads(envelope.payload)
        except ValueError:
            log.warning("dropped a malformed control message from replica %s", envelope.sender)
            return
        if isinstance(event, dict):
            self.apply(event)

    def apply(self, event: dict[str, Any]) -> None:
        """Carry out a control event on this replica's sockets; anything unknown is ignored."""
        op = event.get("op")
        if op == "end_session" and isinstance(event.get("session"), str):
            for socket in list(self._by_session.get(event["session"], ())):
                socket.session_ended()
        elif op == "end_sessions_of" and isinstance(event.get("user"), str):
            for socket in list(self._by_user.get(event["user"], {})):
                socket.session_ended()
        elif op == "role" and isinstance(event.get("document"), str) and isinstance(event.get("user"), str):
            known, role = _role(event.get("role"))
            if known:
                for socket, where in list(self._by_user.get(event["user"], {}).items()):
                    if where == event["document"]:
                        socket.role_changed(role)
        elif op == "comments" and isinstance(event.get("document"), str):
            for sockets in list(self._by_user.values()):
                for socket, where in list(sockets.items()):
                    if where == event["document"] and isinstance(socket, CommentWatcher):
                        socket.comments_changed()
        elif op == "document_gone" and isinstance(event.get("document"), str):
            for sockets in list(self._by_user.values()):
                for socket, where in list(sockets.items()):
                    if where == event["document"]:
                        socket.role_changed(None)

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


def _role(value: object) -> tuple[bool, Role | None]:
    """(whether it is a role, the role) a control event names; None: removed from the document."""
    if value is None:
        return True, None
    if isinstance(value, str) and value in {str(role) for role in Role}:
        return True, Role(value)
    return False, None


class IdleTimer:
    """When a socket counts as idle: `timeout_s` after its last real activity (a document edit, a
    suggestion request), whatever else it sends meanwhile. An open tab's awareness (cursor and
    presence, renewed every few seconds) is not activity, so it cannot keep a socket open."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.deadline = anyio.current_time() + timeout_s

    def touch(self) -> None:
        """Real activity: the socket is not idle for another `timeout_s`."""
        self.deadline = anyio.current_time() + self.timeout_s

    async def receive(self, websocket: WebSocket) -> Message | None:
        """The socket's next message; None once the deadline has passed (see `idle_close`)."""
        with anyio.CancelScope(deadline=self.deadline):
            return await websocket.receive()
        return None


def idle_close(idle_timeout_s: float) -> tuple[int, str]:
    """The close code and reason for a socket that has been idle too long."""
    return WS_4408_IDLE, f"no edits or suggestion requests for {idle_timeout_s:g} s"


class BodyLimit:
    """413 for a request body over `limit` bytes, whether it says its length or streams it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self.too_large()(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise RequestTooLarge()
            return message

        await self.app(scope, counted, send)

    def too_large(self) -> ASGIApp:
        return api_error(413, "too_large", f"the request body is over {self.limit} bytes")
