"""`Periodic`: a job run every few seconds by a task the object owns, entered as an async context
manager in the app's lifespan (the trash sweep, the session watch)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from types import TracebackType

import anyio
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


class Periodic:
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
        self._stack: AsyncExitStack | None = None

    async def __aenter__(self) -> Periodic:
        if self.at_start:
            await self._round()
        async with AsyncExitStack() as stack:
            group = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(group.cancel_scope.cancel)
            group.start_soon(self._repeat)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._stack is None:
            raise RuntimeError(f"{type(self).__name__} was not entered: use `async with`")
        stack, self._stack = self._stack, None
        await stack.aclose()

    async def _repeat(self) -> None:
        while True:
            await anyio.sleep(self.interval_s)
            await self._round()

    async def _round(self) -> None:
        try:
            await self.job()
        except SQLAlchemyError:
            log.exception("could not %s; will retry", self.what)
