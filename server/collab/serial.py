"""A task that runs submitted jobs one at a time, in the order they came.

A job belongs to the worker, not to whoever submitted it: a caller that is cancelled while it
waits (a client that disconnects) leaves its job to finish. A room uses one for every change to
its document, so that apply → store → broadcast is one step nothing outside can cut short.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio

log = logging.getLogger(__name__)
T = TypeVar("T")


class WorkerClosed(Exception):
    """The worker takes no more jobs (it was closed or has stopped)."""


class _Job(Generic[T]):
    def __init__(self, work: Callable[[], Awaitable[T]]) -> None:
        self.work = work
        self.done = anyio.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        self.waited_for = True

    async def run(self) -> None:
        finished = False
        try:
            self.result = await self.work()
            finished = True
        except Exception as exc:  # handed to the caller, who raises it
            self.error = exc
            finished = True
            if not self.waited_for:
                log.error("a job failed after its caller left", exc_info=exc)
        finally:
            if not finished:  # cancelled: the worker is stopping
                self.error = WorkerClosed("the worker stopped during this job")
            self.done.set()

    def fail(self) -> None:
        self.error = WorkerClosed("the worker stopped before this job")
        self.done.set()


class SerialWorker:
    """Start `run()` in a task group; `call(work)` from anywhere; `close()` to finish."""

    def __init__(self, backlog: int = 1024) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[_Job[object]](backlog)

    async def run(self) -> None:
        """Run jobs until `close()` (the ones already queued still run) or cancellation."""
        try:
            async for job in self._receive:
                await job.run()
        finally:
            self._send.close()
            while True:  # whatever is still queued will not run: tell its callers
                try:
                    self._receive.receive_nowait().fail()
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            self._receive.close()

    async def call(self, work: Callable[[], Awaitable[T]]) -> T:
        """Queue `work`, wait for it, and return its result (or raise its exception).
        Cancelling the caller does not cancel the work. WorkerClosed if the worker has stopped."""
        job = _Job(work)
        try:
            await self._send.send(job)  # type: ignore[arg-type]
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise WorkerClosed("the worker takes no more jobs") from None
        try:
            await job.done.wait()
        except BaseException:
            job.waited_for = False
            raise
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def submit(self, work: Callable[[], Awaitable[object]]) -> bool:
        """Queue `work` without waiting for it (its failure is logged); False when the worker is
        closed or its backlog is full."""
        job: _Job[object] = _Job(work)
        job.waited_for = False
        try:
            self._send.send_nowait(job)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        return True

    def close(self) -> None:
        """Take no more jobs; `run()` returns once the queued ones are done."""
        self._send.close()
