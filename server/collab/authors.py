"""`RecentAuthors`: who wrote in a room since its text was last saved, for version history (each
saved revision names the writers whose edits it holds; docs/history.md)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable


class RecentAuthors:
    """Each writer since the last save, with when they last wrote (on `clock`, monotonic seconds)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[str, float] = {}

    def wrote(self, name: str) -> None:
        """`name`'s edit was stored just now."""
        self._last[name] = self._clock()

    def take(self) -> list[str]:
        """Everyone, in the order they last wrote, forgotten here: the save that names them puts
        them back (`keep`) should it fail."""
        taken = sorted(self._last, key=self._last.__getitem__)
        self._last = {}
        return taken

    def keep(self, taken: list[str]) -> None:
        """Writers a failed save took: named by the next one (with a later time if they wrote
        again meanwhile)."""
        now = self._clock()
        for name in taken:
            self._last.setdefault(name, now)

    async def hand_over(self, older_than_s: float, record: Callable[[list[str]], Awaitable[object]]) -> None:
        """`record` those who last wrote longer than `older_than_s` ago (on a replica that does not
        save the text: the one that does has saved their edits by then), then forget them unless
        they wrote again meanwhile. Raises what `record` raises, and forgets no one then."""
        cutoff = self._clock() - older_than_s
        ready = [name for name, at in self._last.items() if at <= cutoff]
        if not ready:
            return
        await record(ready)
        for name in ready:
            if self._last.get(name, cutoff + 1) <= cutoff:
                del self._last[name]
