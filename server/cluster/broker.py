"""The seam between replicas: what one replica's rooms and sockets tell the others.

A `Broker` carries envelopes on named channels (a room's updates and awareness on one channel per
document, role changes and sign-outs on a control channel) and grants leases (who compacts a
document). `LocalBroker` is one process: nothing leaves it, and every lease is its own.
`RedisBroker` (`COWRITE_REDIS_URL`) carries them through Redis pub/sub between any number of
replicas. Pub/sub forgets what it could not deliver, so after a lost connection every subscriber is
told to resynchronise (`RESYNC`) from the database, where every acknowledged update already is.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol

import anyio
from anyio.abc import TaskGroup

log = logging.getLogger(__name__)

# envelope kinds
UPDATE = 1  # a stored CRDT update of a document
AWARENESS = 2  # a checked awareness update of a document
RESYNC = 3  # "you may have missed envelopes on this channel": reload from the database
CONTROL = 4  # a JSON control message (role changes, sign-outs) on the control channel

CONTROL_CHANNEL = "cowrite:control"
HEADER = struct.Struct("!16sBd")  # sender replica, kind, sent at (Unix time, for fan-out latency)
MAX_ENVELOPE = 64 << 20  # a document update is at most COWRITE_UPDATE_LIMIT_MB; this is a backstop
RECONNECT_DELAYS_S = (0.1, 0.5, 1.0, 2.0, 5.0)


def document_channel(document_id: str) -> str:
    return f"cowrite:doc:{document_id}"


@dataclass(frozen=True)
class Envelope:
    """One message between replicas."""

    sender: str  # the replica that sent it
    kind: int
    sent_at: float  # the sender's wall clock when it sent it
    payload: bytes

    def encode(self) -> bytes:
        return HEADER.pack(self.sender.encode(), self.kind, self.sent_at) + self.payload

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        """ValueError for anything that is not an envelope."""
        if not HEADER.size <= len(data) <= MAX_ENVELOPE:
            raise ValueError(f"an envelope is {HEADER.size} to {MAX_ENVELOPE} bytes, not {len(data)}")
        sender, kind, sent_at = HEADER.unpack_from(data)
        if kind not in (UPDATE, AWARENESS, RESYNC, CONTROL):
            raise ValueError(f"unknown envelope kind {kind}")
        return cls(sender.decode("ascii"), kind, sent_at, data[HEADER.size :])


Handler = Callable[[Envelope], None]


class Broker(Protocol):
    """What rooms and sockets need of the other replicas."""

    replica: str  # this replica's id

    @property
    def shared(self) -> bool:
        """Whether other replicas may exist (a lease must then be taken, not assumed)."""
        ...

    async def publish(self, channel: str, kind: int, payload: bytes) -> None:
        """Send to every other replica subscribed to `channel` (never back to this one)."""
        ...

    async def subscribe(self, channel: str, handler: Handler) -> Callable[[], None]:
        """Call `handler` (on the broker's task; it must not block) with each envelope another
        replica sends on `channel`, from the moment this returns; returns the unsubscribe call."""
        ...

    async def take_lease(self, name: str, ttl_s: float) -> bool:
        """Hold (or keep holding) the lease `name` for `ttl_s`; False while another replica holds it."""
        ...

    async def release_lease(self, name: str) -> None: ...

    async def problem(self) -> str | None:
        """Why the other replicas cannot be reached now, in one line; None when they can."""
        ...


def new_replica_id() -> str:
    return os.urandom(8).hex()


class LocalBroker:
    """One process: no other replica hears anything, and every lease is ours."""

    def __init__(self) -> None:
        self.replica = new_replica_id()

    @property
    def shared(self) -> bool:
        return False

    async def __aenter__(self) -> LocalBroker:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass

    async def publish(self, channel: str, kind: int, payload: bytes) -> None:
        pass

    async def subscribe(self, channel: str, handler: Handler) -> Callable[[], None]:
        return lambda: None

    async def take_lease(self, name: str, ttl_s: float) -> bool:
        return True

    async def release_lease(self, name: str) -> None:
        pass

    async def problem(self) -> str | None:
        return None


class Subscriptions:
    """Handlers by channel, shared by the broker's reader and its callers."""

    def __init__(self) -> None:
        self.handlers: dict[str, set[Handler]] = {}

    def add(self, channel: str, handler: Handler) -> bool:
        """True when the channel is new (the broker must subscribe to it)."""
        handlers = self.handlers.setdefault(channel, set())
        handlers.add(handler)
        return len(handlers) == 1

    def remove(self, channel: str, handler: Handler) -> bool:
        """True when the channel has no handlers left (the broker may unsubscribe)."""
        handlers = self.handlers.get(channel)
        if handlers is None:
            return False
        handlers.discard(handler)
        if handlers:
            return False
        del self.handlers[channel]
        return True

    def deliver(self, channel: str, envelope: Envelope) -> None:
        for handler in list(self.handlers.get(channel, ())):
            try:
                handler(envelope)
            except Exception:  # one room's failure must not stop the others' messages
                log.exception("a handler on %s failed", channel)


def wall_clock() -> float:
    return time.time()


async def sleep_before_retry(attempt: int) -> None:
    await anyio.sleep(RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)])


def owned_group(group: TaskGroup | None) -> TaskGroup:
    if group is None:
        raise RuntimeError("the broker is not running; enter `async with broker:` first")
    return group
