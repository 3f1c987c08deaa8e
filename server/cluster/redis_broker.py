"""`RedisBroker`: replicas tell each other of updates, awareness and control messages through Redis
pub/sub (a channel per document), and share leases and counters (`server.cluster.redis_limits`) there.

One connection listens, one sends. A lost listening connection is reopened with backoff and every
channel is told `RESYNC`, since pub/sub does not keep what it could not deliver; an envelope that
could not be published is followed by a `RESYNC` on its channel once Redis answers again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, cast

import anyio
from anyio.abc import TaskGroup
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from server.cluster.broker import (
    RESYNC,
    Envelope,
    Handler,
    Subscriptions,
    new_replica_id,
    owned_group,
    sleep_before_retry,
    wall_clock,
)
from server.lifecycle import Lifecycle

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2.0
COMMAND_TIMEOUT_S = 5.0
SUBSCRIBE_TIMEOUT_S = 1.0  # then a late confirmation brings a RESYNC instead
RESYNC_RETRY_S = 1.0
LEASE_PREFIX = "cowrite:lease:"

# hold the lease if it is free or already ours (and extend it); 1 when held
TAKE_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def close_pubsub(pubsub: PubSub) -> Awaitable[None]:
    """`pubsub.aclose()`, typed here: redis-py's releases annotate it differently (some not at all),
    and strict mypy would otherwise need an ignore that breaks with the next release."""
    close = cast(Callable[[], Awaitable[None]], pubsub.aclose)
    return close()


class BrokerUnavailable(RuntimeError):
    """Redis could not be reached at start-up; the message says where it was looked for."""


class RedisBroker(Lifecycle):
    """An async context manager: its task group runs the listener and the resync retries."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.replica = new_replica_id()
        self.redis: Redis = Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=COMMAND_TIMEOUT_S
        )
        self._listening: Redis = Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S)
        self._subscriptions = Subscriptions()
        self._pubsub: PubSub | None = None
        self._confirmed: dict[str, anyio.Event] = {}
        self._resync_due: set[str] = set()
        self._unconfirmed: set[str] = set()  # subscribed without waiting for the confirmation
        self._group: TaskGroup | None = None
        self._take_lease: Any = self.redis.register_script(TAKE_LEASE)
        self._release_lease: Any = self.redis.register_script(RELEASE_LEASE)

    @property
    def shared(self) -> bool:
        return True

    @property
    def own_channel(self) -> str:
        return f"cowrite:replica:{self.replica}"  # so the listener always has a channel

    async def _start(self, stack: AsyncExitStack) -> None:
        try:
            await self.redis.ping()
            self._pubsub = await self._open()
        except (RedisError, OSError) as exc:
            await self._close_clients()
            raise BrokerUnavailable(
                f"cannot reach Redis at COWRITE_REDIS_URL ({safe_url(self.url)}): {exc}"
            ) from exc
        # on the way out, last in first out: the listener and the resync retries are cancelled and
        # waited for, subscribing is refused from then on, and the clients close
        stack.push_async_callback(self._close_clients)
        stack.callback(setattr, self, "_group", None)
        group = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(group.cancel_scope.cancel)
        group.start_soon(self._listen)
        group.start_soon(self._retry_resyncs)
        self._group = group

    async def _close_clients(self) -> None:
        if self._pubsub is not None:
            with anyio.CancelScope(shield=True):
                await close_pubsub(self._pubsub)
        await self._listening.aclose()
        await self.redis.aclose()

    # publishing

    async def publish(self, channel: str, kind: int, payload: bytes) -> None:
        envelope = Envelope(self.replica, kind, wall_clock(), payload)
        try:
            await self.redis.publish(channel, envelope.encode())
        except (RedisError, OSError) as exc:
            # stored already (documents) or checked again by a sweep (sessions): the others catch up
            # from the database once Redis answers, on the RESYNC sent then
            log.warning(
                "could not publish on %s (%s); its subscribers resync when Redis is back", channel, exc
            )
            self._resync_due.add(channel)

    async def _retry_resyncs(self) -> None:
        while True:
            await anyio.sleep(RESYNC_RETRY_S)
            for channel in list(self._resync_due):
                envelope = Envelope(self.replica, RESYNC, wall_clock(), b"")
                try:
                    await self.redis.publish(channel, envelope.encode())
                except (RedisError, OSError):
                    break  # still down
                self._resync_due.discard(channel)

    # subscribing

    async def subscribe(self, channel: str, handler: Handler) -> Callable[[], None]:
        group = owned_group(self._group)
        if self._subscriptions.add(channel, handler):
            confirmed = self._confirmed.setdefault(channel, anyio.Event())
            pubsub = self._pubsub
            if pubsub is not None:
                try:
                    await pubsub.subscribe(channel)
                except (RedisError, OSError) as exc:
                    # the listener reconnects and subscribes every channel again, then says RESYNC
                    log.warning("could not subscribe to %s now (%s); the listener will", channel, exc)
                else:
                    with anyio.move_on_after(SUBSCRIBE_TIMEOUT_S):
                        await confirmed.wait()
                    if not confirmed.is_set():  # what is published before it is confirmed may be missed
                        self._unconfirmed.add(channel)

        def unsubscribe() -> None:
            if self._subscriptions.remove(channel, handler):
                self._confirmed.pop(channel, None)
                group.start_soon(self._unsubscribe, channel)

        return unsubscribe

    async def _unsubscribe(self, channel: str) -> None:
        pubsub = self._pubsub
        if pubsub is None or channel in self._subscriptions.handlers:
            return  # subscribed again meanwhile
        try:
            await pubsub.unsubscribe(channel)
        except (RedisError, OSError):
            pass  # the connection is gone, and with it the subscription

    async def _open(self) -> PubSub:
        pubsub = self._listening.pubsub()
        self._confirmed = {channel: anyio.Event() for channel in self._subscriptions.handlers}
        await pubsub.subscribe(self.own_channel, *self._subscriptions.handlers)
        return pubsub

    async def _listen(self) -> None:
        attempt = 0
        while True:
            pubsub = self._pubsub
            try:
                if pubsub is None:
                    pubsub = self._pubsub = await self._open()
                    log.info(
                        "reconnected to Redis; resynchronising %d channels", len(self._subscriptions.handlers)
                    )
                    for channel in list(self._subscriptions.handlers):
                        self._subscriptions.deliver(
                            channel, Envelope(self.replica, RESYNC, wall_clock(), b"")
                        )
                attempt = 0
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
                    if message is not None:
                        self._dispatch(message)
            except (RedisError, OSError) as exc:
                log.warning("lost the Redis listener (%s); reconnecting", exc)
                if self._pubsub is not None:
                    with anyio.CancelScope(shield=True):
                        try:
                            await close_pubsub(self._pubsub)
                        except (RedisError, OSError):
                            pass
                self._pubsub = None
                await sleep_before_retry(attempt)
                attempt += 1

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = _text(message.get("channel"))
        if message.get("type") == "subscribe":
            event = self._confirmed.get(channel)
            if event is not None:
                event.set()
            if channel in self._unconfirmed:
                self._unconfirmed.discard(channel)
                self._subscriptions.deliver(channel, Envelope(self.replica, RESYNC, wall_clock(), b""))
            return
        if message.get("type") != "message":
            return
        data = message.get("data")
        if not isinstance(data, bytes):
            return
        try:
            envelope = Envelope.decode(data)
        except ValueError as exc:
            log.warning("dropped a malformed envelope on %s: %s", channel, exc)
            return
        if envelope.sender != self.replica:
            self._subscriptions.deliver(channel, envelope)

    async def problem(self) -> str | None:
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            return f"Redis does not answer: {exc}"
        return None

    # leases

    async def take_lease(self, name: str, ttl_s: float) -> bool:
        try:
            held = await self._take_lease(keys=[LEASE_PREFIX + name], args=[self.replica, int(ttl_s * 1000)])
        except (RedisError, OSError) as exc:
            log.warning("could not take the lease %s (%s)", name, exc)
            return False
        return bool(held)

    async def release_lease(self, name: str) -> None:
        try:
            await self._release_lease(keys=[LEASE_PREFIX + name], args=[self.replica])
        except (RedisError, OSError) as exc:
            log.warning("could not release the lease %s (%s); it expires by itself", name, exc)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def safe_url(url: str) -> str:
    """The URL without a password."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://…@{rest.rpartition('@')[2]}"
