"""Sessions: the KV a writer's last request left behind, kept for the next one's prefix reuse.

Idle sessions are evicted least-recently-used, by count and by the engine's KV byte budget.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from streaming.kv import RowCache

if TYPE_CHECKING:
    from streaming.engine import Job


@dataclass(eq=False)
class Session:
    """One session key's cached row and the job currently using it, if any."""

    key: str
    row: RowCache | None = None
    job: Job | None = None


class SessionTable:
    """Sessions by key, in least-recently-used order."""

    def __init__(self, max_sessions: int) -> None:
        assert max_sessions >= 1
        self._max = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(self._sessions.values())

    def get(self, key: str) -> Session | None:
        return self._sessions.get(key)

    def touch(self, key: str) -> Session:
        """The session for `key`, created if new, marked most recently used."""
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = Session(key)
            self._trim_count(keep=session)
        self._sessions.move_to_end(key)
        return session

    def drop(self, key: str) -> None:
        session = self._sessions.pop(key, None)
        if session is not None and session.row is not None:
            session.row.release()

    def evict_one(self, keep: Session | None = None) -> bool:
        """Free the least recently used idle session's KV; False when none can go."""
        for session in self._sessions.values():
            if session.job is None and session is not keep:
                self.drop(session.key)
                return True
        return False

    def cached_bytes(self) -> int:
        return sum(s.row.nbytes for s in self._sessions.values() if s.row is not None)

    def _trim_count(self, keep: Session) -> None:
        while len(self._sessions) > self._max and self.evict_one(keep):
            pass
