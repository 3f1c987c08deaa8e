"""`Lifecycle`: what `_start` pushes is undone last in first out on leaving, a start that fails
undoes what it had started, and leaving what was never entered says how to enter it."""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio
import pytest

from server.lifecycle import Lifecycle


class Recorder(Lifecycle):
    """Starts a task and three clean-ups, and can fail part way through its start."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.events: list[str] = []
        self.task_ended = anyio.Event()

    async def _start(self, stack: AsyncExitStack) -> None:
        stack.callback(self.events.append, "first pushed")
        group = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(group.cancel_scope.cancel)
        group.start_soon(self._run)
        stack.callback(self.events.append, "last pushed")
        if self.fail:
            raise OSError("could not start")

    async def _run(self) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            self.events.append("task ended")
            self.task_ended.set()


async def test_leaving_undoes_the_start_last_in_first_out() -> None:
    recorder = Recorder()
    async with recorder as entered:
        assert entered is recorder and recorder.events == []
    assert recorder.events == ["last pushed", "task ended", "first pushed"]


async def test_a_failed_start_undoes_what_it_had_started() -> None:
    recorder = Recorder(fail=True)
    # raised inside the task group's scope, the error comes out grouped, as anyio groups it
    with pytest.raises(ExceptionGroup) as raised:
        async with recorder:
            pytest.fail("the body runs only after a whole start")
    assert raised.group_contains(OSError, match="could not start")
    assert recorder.events == ["last pushed", "task ended", "first pushed"]
    with pytest.raises(RuntimeError, match="Recorder is not running"):
        await recorder.__aexit__(None, None, None)


async def test_it_can_run_again_after_it_stopped() -> None:
    recorder = Recorder()
    for _ in range(2):
        async with recorder:
            pass
    assert recorder.events.count("task ended") == 2


async def test_leaving_without_entering_says_how_to_enter() -> None:
    with pytest.raises(RuntimeError, match="enter it with `async with` first"):
        await Recorder().__aexit__(None, None, None)


async def test_a_service_must_say_how_it_starts() -> None:
    with pytest.raises(NotImplementedError, match="Lifecycle must say how it starts"):
        async with Lifecycle():
            pass
