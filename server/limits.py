"""Abuse limits: sign-in attempts, suggestions per minute, idle sockets.

The classes here count in this process's memory (one replica; they reset on restart). With
`COWRITE_REDIS_URL` the same interfaces count in Redis across replicas (`server.cluster.redis_limits`).
Open sockets per user are counted by `server.sockets.LiveSockets`, request bodies are bounded by
`server.middleware.body_limit.BodyLimit`.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import anyio
from starlette.types import Message
from starlette.websockets import WebSocket

from server.errors import WS_4408_IDLE

Clock = Callable[[], float]


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
