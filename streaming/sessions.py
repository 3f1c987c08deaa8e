"""Sessions: the KV a writer's last request left behind, kept for the next one's prefix reuse.

Idle sessions are evicted least-recently-used, by count (in all, and per owner) and by the
engine's KV byte budget; they expire after a time unused, and are freed as soon as their caller
says it is gone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from streaming.jobs import Session


class SessionTable:
    """Sessions by key, in least-recently-used order."""

    def __init__(self, max_sessions: int, per_owner: int = 0) -> None:
        assert max_sessions >= 1 and per_owner >= 0
        self._max = max_sessions
        self._per_owner = per_owner  # 0: no per-owner cap
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(self._sessions.values())

    def get(self, key: str) -> Session | None:
        return self._sessions.get(key)

    def touch(self, key: str, owner: str, now: float) -> Session:
        """The session for `key`, created if new, marked most recently used."""
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = Session(key, owner)
            self._trim_count(keep=session)
            self._trim_owner(session)
        self._sessions.move_to_end(key)
        session.last_used = now
        session.closed = False
        return session

    def drop(self, key: str) -> None:
        session = self._sessions.pop(key, None)
        if session is not None and session.row is not None:
            session.row.release()

    def close(self, key: str) -> None:
        """Free the session now if no request uses it, else once its request has ended."""
        session = self._sessions.get(key)
        if session is None:
            return
        if session.job is None:
            self.drop(key)
        elif session.job.done:
            session.closed = True
        # else a newer caller (a reconnected tab) is using it: it stays theirs

    def idle(self) -> list[Session]:
        """The sessions no request is using, least recently used first."""
        return [s for s in self._sessions.values() if s.job is None]

    def evict_one(self, keep: Session | None = None) -> bool:
        """Free the least recently used idle session's KV; False when none can go."""
        for session in self.idle():
            if session is not keep:
                self.drop(session.key)
                return True
        return False

    def expire(self, unused_since: float) -> int:
        """Free every idle session last used before `unused_since`; how many went."""
        stale = [s.key for s in self.idle() if s.last_used < unused_since]
        for key in stale:
            self.drop(key)
        return len(stale)

    def oldest_idle(self) -> float | None:
        """When the least recently used idle session was last used; None if none is idle."""
        return min((s.last_used for s in self.idle()), default=None)

    def cached_bytes(self) -> int:
        return sum(s.row.nbytes for s in self._sessions.values() if s.row is not None)

    def _trim_count(self, keep: Session) -> None:
        while len(self._sessions) > self._max and self.evict_one(keep):
            pass

    def _trim_owner(self, new: Session) -> None:
        """Keep at most `per_owner` sessions of `new`'s owner: evict that owner's oldest idle ones."""
        if not self._per_owner or not new.owner:
            return
        mine = [s for s in self._sessions.values() if s.owner == new.owner]
        excess = len(mine) - self._per_owner
        for session in mine:
            if excess <= 0:
                return
            if session.job is None and session is not new:
                self.drop(session.key)
                excess -= 1
