"""What replicas share, chosen by the settings: the broker (in-process, or Redis with
`COWRITE_REDIS_URL`) and the counters behind the abuse limits (in memory, or in Redis)."""

from __future__ import annotations

from dataclasses import dataclass

from server.broker import Broker, LocalBroker
from server.limits import AttemptLimiter, Attempts, LiveSockets, Rate, RateLimiter
from server.redis_broker import RedisBroker
from server.settings import Settings
from server.shared_limits import RedisAttemptLimiter, RedisRateLimiter, RedisSocketCount

SIGNIN_WINDOW_S = 15 * 60
SIGNUP_WINDOW_S = 60 * 60


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
        redis = broker.redis
        return Counters(
            sockets=LiveSockets(settings.sockets_per_user, broker, RedisSocketCount(redis, broker.replica)),
            signin=RedisAttemptLimiter(redis, "signin", signin_limits, SIGNIN_WINDOW_S),
            signup=RedisAttemptLimiter(redis, "signup", signup_limits, SIGNUP_WINDOW_S),
            suggestions=RedisRateLimiter(redis, "suggestions", settings.suggestions_per_minute),
        )
    return Counters(
        sockets=LiveSockets(settings.sockets_per_user, broker),
        signin=AttemptLimiter(signin_limits, window_s=SIGNIN_WINDOW_S),
        signup=AttemptLimiter(signup_limits, window_s=SIGNUP_WINDOW_S),
        suggestions=RateLimiter(settings.suggestions_per_minute),
    )
