"""The abuse limits counted in Redis, so that every replica sees the same counts: sign-in and
sign-up attempts (a sliding window per key), suggestions per minute (a token bucket per user) and
open sockets per user (a set of leases that a dead replica's sockets fall out of).

Each check-and-count is one Lua script, so replicas racing on one key cannot all pass one check.
Times are Redis's own clock (`TIME`), the same for every replica. The in-process versions with the
same interface are in `server.limits`.
"""

from __future__ import annotations

import math
import os
from typing import Any

from redis.asyncio import Redis

PREFIX = "cowrite:limit:"
SOCKET_LEASE_S = 60  # a socket counts this long unless its replica renews it (a dead one cannot)

# KEYS: the keys; ARGV: window ms, member, then each key's limit. Returns the member when it was
# counted under every key, else the milliseconds until it would be allowed.
RESERVE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local window = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local limit = tonumber(ARGV[2 + i])
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, -limit, -limit, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now)
  end
end
if wait > 0 then return {0, wait} end
if ARGV[2] == '' then return {1, 0} end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2])
  redis.call('PEXPIRE', key, window)
end
return {1, 0}
"""
# KEYS[1]: the bucket; ARGV: per minute. Returns 0 when a token was taken, else ms to wait.
TAKE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local capacity = tonumber(ARGV[1])
local rate = capacity / 60000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + (now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], 120000)
return wait
"""
# KEYS[1]: the user's sockets; ARGV: member, limit, lease ms. 1 when counted, 0 when at the limit.
CLAIM = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""
# KEYS: users' socket sets; ARGV: lease ms, then for each key a space-separated member list
RENEW = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
for i, key in ipairs(KEYS) do
  for member in string.gmatch(ARGV[1 + i], '%S+') do
    redis.call('ZADD', key, 'XX', now + tonumber(ARGV[1]), member)
  end
  redis.call('PEXPIRE', key, tonumber(ARGV[1]))
end
return 1
"""


class RedisAttemptLimiter:
    """`server.limits.AttemptLimiter`, counted in Redis."""

    def __init__(self, redis: Redis, name: str, limits: dict[str, int], window_s: float) -> None:
        self.limits = limits
        self.window_ms = int(window_s * 1000)
        self._prefix = f"{PREFIX}{name}:"
        self._reserve: Any = redis.register_script(RESERVE)
        self._redis = redis

    def _keys(self, keys: tuple[str, ...]) -> tuple[list[str], list[int]]:
        return [self._prefix + key for key in keys], [self.limits[key.split(":", 1)[0]] for key in keys]

    async def retry_after(self, *keys: str) -> int:
        names, limits = self._keys(keys)
        _, wait = await self._reserve(keys=names, args=[self.window_ms, "", *limits])
        return math.ceil(int(wait) / 1000)

    async def reserve(self, *keys: str) -> str | None:
        names, limits = self._keys(keys)
        member = os.urandom(8).hex()
        counted, _ = await self._reserve(keys=names, args=[self.window_ms, member, *limits])
        return member if counted else None

    async def release(self, at: str | float, *keys: str) -> None:
        for name in self._keys(keys)[0]:
            await self._redis.zrem(name, str(at))

    async def forget(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)


class RedisRateLimiter:
    """`server.limits.RateLimiter`, counted in Redis."""

    def __init__(self, redis: Redis, name: str, per_minute: int) -> None:
        self.per_minute = per_minute
        self._prefix = f"{PREFIX}{name}:"
        self._take: Any = redis.register_script(TAKE)

    async def take(self, key: str) -> float:
        if self.per_minute == 0:
            return math.inf
        wait_ms = await self._take(keys=[self._prefix + key], args=[self.per_minute])
        return int(wait_ms) / 1000


class RedisSocketCount:
    """Open sockets per user across replicas: each socket is a member of its user's set, leased
    for `SOCKET_LEASE_S` and renewed by its replica while it is open."""

    def __init__(self, redis: Redis, replica: str) -> None:
        self.replica = replica
        self._redis = redis
        self._claim: Any = redis.register_script(CLAIM)
        self._renew: Any = redis.register_script(RENEW)
        self.lease_ms = SOCKET_LEASE_S * 1000

    def _key(self, user: str) -> str:
        return f"{PREFIX}sockets:{user}"

    async def claim(self, user: str, socket_id: str, limit: int) -> bool:
        member = f"{self.replica}:{socket_id}"
        return bool(await self._claim(keys=[self._key(user)], args=[member, limit, self.lease_ms]))

    async def release(self, user: str, socket_id: str) -> None:
        await self._redis.zrem(self._key(user), f"{self.replica}:{socket_id}")

    async def renew(self, open_sockets: dict[str, list[str]]) -> None:
        """Extend the leases of this replica's open sockets (user -> socket ids)."""
        if not open_sockets:
            return
        users = list(open_sockets)
        members = [" ".join(f"{self.replica}:{s}" for s in open_sockets[u]) for u in users]
        await self._renew(keys=[self._key(u) for u in users], args=[self.lease_ms, *members])
