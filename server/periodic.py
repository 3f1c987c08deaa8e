"""`Periodic`: a job run every few seconds by a task the object owns, entered as an async context
manager in the app's lifespan (the trash sweep, the session watch)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import anyio
from sqlalchemy.exc import SQLAlchemyError

from server.lifecycle import Lifecycle

log = logging.getLogger(__name__)


class Periodic(Lifecycle):
    """Runs `job` every `interval_s`; with `at_start`, also once as it is entered, before the app
    serves. A round that fails because the database is unavailable is logged and tried again at
    the next; anything else is a bug and ends the app's task group."""

    def __init__(
        self, job: Callable[[], Awaitable[object]], interval_s: float, *, what: str, at_start: bool = False
    ) -> None:
        self.job = job
        self.interval_s = interval_s
        self.what = what  # for the log: "could not <what>; will retry"
        self.at_start = at_start

    async def _start(self, stack: AsyncExitStack) -> None:
        if self.at_start:
            await self._round()
        group = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(group.cancel_scope.cancel)
        group.start_soon(self._repeat)

    async def _repeat(self) -> None:
        while True:
            await anyio.sleep(self.interval_s)
            await self._round()

    async def _round(self) -> None:
        try:
            await self.job()
        except SQLAlchemyError:
            log.exception("could not %s; will retry", self.what)
