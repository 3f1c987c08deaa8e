"""The serial worker: jobs run one at a time in order, and a cancelled caller leaves its job to finish."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import pytest

from server.collab.serial import SerialWorker, WorkerClosed

pytestmark = pytest.mark.timeout(30)


async def test_jobs_run_in_order_one_at_a_time() -> None:
    worker = SerialWorker()
    ran: list[str] = []

    def job(name: str) -> Callable[[], Awaitable[str]]:
        async def work() -> str:
            ran.append(f"{name} start")
            await anyio.lowlevel.checkpoint()
            ran.append(f"{name} end")
            return name

        return work

    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        results: list[str] = []

        async def call(name: str) -> None:
            results.append(await worker.call(job(name)))

        with anyio.fail_after(5):
            async with anyio.create_task_group() as callers:
                for name in "abc":
                    callers.start_soon(call, name)
                    await anyio.lowlevel.checkpoint()  # queued in this order
        worker.close()
    assert ran == ["a start", "a end", "b start", "b end", "c start", "c end"]
    assert results == ["a", "b", "c"]


async def test_a_cancelled_caller_does_not_cut_its_job_short() -> None:
    worker = SerialWorker()
    started, release, finished = anyio.Event(), anyio.Event(), anyio.Event()

    async def work() -> None:
        started.set()
        await release.wait()
        finished.set()

    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        with anyio.fail_after(5):
            async with anyio.create_task_group() as callers:
                callers.start_soon(worker.call, work)
                await started.wait()
                callers.cancel_scope.cancel()  # the caller goes away mid-job
            release.set()
            await finished.wait()
        worker.close()


async def test_errors_reach_the_caller_and_closing_refuses_new_jobs() -> None:
    worker = SerialWorker()

    async def fail() -> None:
        raise LookupError("nope")

    async def fine() -> int:
        return 1

    async with anyio.create_task_group() as group:
        group.start_soon(worker.run)
        with anyio.fail_after(5):
            with pytest.raises(LookupError):
                await worker.call(fail)
            assert await worker.call(fine) == 1
        worker.close()
    with pytest.raises(WorkerClosed):
        await worker.call(fine)
