"""What replicas share, chosen by the settings: the broker (in-process, or Redis with
`COWRITE_REDIS_URL`) and the counters behind the abuse limits (in memory, or in Redis; while Redis
does not answer, in memory again, so that an outage loosens the limits to one per replica instead
of refusing every sign-in)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from server.cluster.broker import Broker, LocalBroker
from server.cluster.redis_broker import RedisBroker
from server.cluster.redis_limits import RedisAttemptLimiter, RedisRateLimiter, RedisSocketCount
from server.limits import AttemptLimiter, Attempts, Rate, RateLimiter
from server.settings import Settings
from server.sockets import LiveSockets

SIGNIN_WINDOW_S = 15 * 60
SIGNUP_WINDOW_S = 60 * 60
WARN_EVERY_S = 60.0
log = logging.getLogger(__name__)


class Outage:
    """Says, at most once a minute, that Redis is not answering and limits are counted here."""

    def __init__(self) -> None:
        self.warned_at = -WARN_EVERY_S

    def note(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self.warned_at >= WARN_EVERY_S:
            self.warned_at = now
            log.warning("Redis does not answer (%s): counting the limits on this replica meanwhile", exc)


class FallbackAttempts:
    """Attempts counted in Redis, or in this replica's memory while Redis does not answer."""

    def __init__(self, shared: RedisAttemptLimiter, local: AttemptLimiter, outage: Outage) -> None:
        self.shared, self.local, self.outage = shared, local, outage

    async def retry_after(self, *keys: str) -> int:
        try:
            return await self.shared.retry_after(*keys)
        except RedisError as exc:
            self.outage.note(exc)
            return await self.local.retry_after(*keys)

    async def reserve(self, *keys: str) -> float | str | None:
        try:
            return await self.shared.reserve(*keys)
        except RedisError as exc:
            self.outage.note(exc)
            return await self.local.reserve(*keys)

    async def release(self, at: float | str, *keys: str) -> None:
        if isinstance(at, float):
            await self.local.release(at, *keys)
            return
        try:
            await self.shared.release(at, *keys)
        except RedisError as exc:
            self.outage.note(exc)  # it falls out of the window by itself

    async def forget(self, key: str) -> None:
        await self.local.forget(key)
        try:
            await self.shared.forget(key)
        except RedisError as exc:
            self.outage.note(exc)


class FallbackRate:
    """A rate counted in Redis, or in this replica's memory while Redis does not answer."""

    def __init__(self, shared: RedisRateLimiter, local: RateLimiter, outage: Outage) -> None:
        self.shared, self.local, self.outage = shared, local, outage
        self.per_minute = shared.per_minute

    async def take(self, key: str) -> float:
        try:
            return await self.shared.take(key)
        except RedisError as exc:
            self.outage.note(exc)
            return await self.local.take(key)


def broker_for(settings: Settings) -> LocalBroker | RedisBroker:
    return RedisBroker(settings.redis_url) if settings.redis_url else LocalBroker()


@dataclass(frozen=True)
class Counters:
    sockets: LiveSockets
    signin: Attempts
    signup: Attempts
    suggestions: Rate


def counters_for(settings: Settings, broker: Broker) -> Counters:
    signin_limits = {"account": settings.signin_attempts, "address": settings.signin_attempts_per_address}
    signup_limits = {"address": settings.signups_per_address}
    if isinstance(broker, RedisBroker):
        redis, outage = broker.redis, Outage()
        return Counters(
            sockets=LiveSockets(settings.sockets_per_user, broker, RedisSocketCount(redis, broker.replica)),
            signin=FallbackAttempts(
                RedisAttemptLimiter(redis, "signin", signin_limits, SIGNIN_WINDOW_S),
                AttemptLimiter(signin_limits, window_s=SIGNIN_WINDOW_S),
                outage,
            ),
            signup=FallbackAttempts(
                RedisAttemptLimiter(redis, "signup", signup_limits, SIGNUP_WINDOW_S),
                AttemptLimiter(signup_limits, window_s=SIGNUP_WINDOW_S),
                outage,
            ),
            suggestions=FallbackRate(
                RedisRateLimiter(redis, "suggestions", settings.suggestions_per_minute),
                RateLimiter(settings.suggestions_per_minute),
                outage,
            ),
        )
    return Counters(
        sockets=LiveSockets(settings.sockets_per_user, broker),
        signin=AttemptLimiter(signin_limits, window_s=SIGNIN_WINDOW_S),
        signup=AttemptLimiter(signup_limits, window_s=SIGNUP_WINDOW_S),
        suggestions=RateLimiter(settings.suggestions_per_minute),
    )
