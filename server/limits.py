"""Abuse limits: sign-in attempts, suggestions per minute, open sockets per user (and the session
each was opened under), idle sockets, request size.

All counters live in this process's memory: they reset on restart and are per replica.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Protocol

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from server.errors import WS_4401_UNAUTHENTICATED, WS_4408_IDLE, RequestTooLarge, api_error
from storage.models import Role

Clock = Callable[[], float]

# how a socket closes when the session it was opened under ends (`LiveSockets.end_session`)
SESSION_ENDED = (WS_4401_UNAUTHENTICATED, "your session ended; sign in again")


class AttemptLimiter:
    """At most `limit` recorded attempts (failed sign-ins, sign-ups) per key in a sliding
    `window_s`; beyond that, wait."""

    def __init__(self, limits: dict[str, int], window_s: float, clock: Clock = time.monotonic) -> None:
        self.limits = limits  # key prefix ("account", "address") -> failures allowed
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, *keys: str) -> int:
        """Seconds until an attempt under all these keys is allowed again; 0 when it is now."""
        now = self.clock()
        wait = 0.0
        for key in keys:
            failures = self._recent(key, now)
            limit = self.limits[key.split(":", 1)[0]]
            if len(failures) >= limit:
                wait = max(wait, failures[-limit] + self.window_s - now)
        return math.ceil(wait)

    def record(self, *keys: str) -> float:
        """Count an attempt under every key; returns its time (for `release`)."""
        now = self.clock()
        for key in keys:
            self._recent(key, now)
            self._failures.setdefault(key, deque()).append(now)
        return now

    def reserve(self, *keys: str) -> float | None:
        """Count an attempt under every key before it is made (the check and the count are one
        step, so simultaneous attempts cannot all pass one check while the first is still being
        hashed). Its time, for `release`; None when a key is over its limit (see `retry_after`),
        and then nothing is counted."""
        if self.retry_after(*keys) > 0:
            return None
        return self.record(*keys)

    def release(self, at: float, *keys: str) -> None:
        """Un-count an attempt reserved at `at`: it turned out not to be a failure."""
        for key in keys:
            failures = self._failures.get(key)
            if failures is not None and at in failures:
                failures.remove(at)
                if not failures:
                    del self._failures[key]

    def forget(self, key: str) -> None:
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

    def take(self, key: str) -> float:
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


class LiveSockets:
    """The open sockets of every user: capped per user, told when a role changes, and closed when
    the session they were opened under ends."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._by_user: defaultdict[str, dict[Revocable, str]] = defaultdict(dict)  # socket -> document
        self._by_session: dict[str, set[Revocable]] = {}  # session id hash -> its sockets
        self._session_of: dict[Revocable, str] = {}

    def add(self, user: str, document_id: str, socket: Revocable, session: str) -> bool:
        """Count a new socket opened under `session` (the session id's hash); False (and not
        counted) when the user has `per_user` open already."""
        sockets = self._by_user[user]
        if len(sockets) >= self.per_user:
            return False
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

    def sessions(self) -> set[str]:
        """The sessions (id hashes) that have sockets open."""
        return set(self._by_session)

    def end_session(self, session: str) -> None:
        """The session ended (signed out, replaced, expired, reset elsewhere): close its sockets."""
        for socket in list(self._by_session.get(session, ())):
            socket.session_ended()

    def end_sessions_of(self, user: str) -> None:
        """Every session of the user ended (a password change): close all their sockets."""
        for socket in list(self._by_user.get(user, {})):
            socket.session_ended()

    def role_changed(self, document_id: str, user: str, role: Role | None) -> None:
        for socket, where in list(self._by_user.get(user, {}).items()):
            if where == document_id:
                socket.role_changed(role)

    def document_gone(self, document_id: str) -> None:
        for user in list(self._by_user):
            self.role_changed(document_id, user, None)


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
