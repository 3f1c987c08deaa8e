"""Faults in the engine: whatever fails in a step fails only the requests it concerns; a decode
loop that dies anyway is reported, its requests end with the reason, and it starts again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from streaming.engine import Engine
from streaming.params import GenerationRequest, Status
from tests.streaming.conftest import complete, make_engine, prose
from tests.streaming.doubles import PHASES, STOP, inject

Reference = Callable[[list[int], int], list[int]]
pytestmark = pytest.mark.timeout(240)


@pytest.mark.parametrize("phase", PHASES)
async def test_a_fault_in_any_phase_of_a_step_fails_only_its_request(
    engine: Engine, reference: Reference, monkeypatch: pytest.MonkeyPatch, phase: str
) -> None:
    message = inject(engine, monkeypatch, phase, "target")
    target = GenerationRequest(prose(100, 200), "target", max_new_tokens=12, stop=(STOP,))
    bystander = GenerationRequest(prose(900, 200), "bystander", max_new_tokens=12)
    async with asyncio.timeout(120):
        failed, served = await asyncio.gather(complete(engine, target), complete(engine, bystander))
        assert failed.status is Status.ERROR and message in (failed.error or "")
        assert served.alternatives[0].tokens == reference(engine.prompt_tokens(bystander), 12)

        monkeypatch.undo()
        after = GenerationRequest(prose(1700, 200), "target", max_new_tokens=8)
        again = await complete(engine, after)
        assert again.alternatives[0].tokens == reference(engine.prompt_tokens(after), 8)
        await engine.wait_idle()
    assert engine.restarts == 0 and engine.failure is None, "the loop itself never failed"
    stats = engine.stats()
    assert (stats.open_requests, stats.active_rows, stats.queued) == (0, 0, 0)


async def test_a_dead_loop_fails_its_requests_says_why_and_restarts(
    loaded_model: Any, reference: Reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_engine(loaded_model, restart_delay_s=0) as engine:
        running = await engine.submit(GenerationRequest(prose(0, 200), "running", max_new_tokens=200))
        async for _ in running:
            break
        # the loop's own bookkeeping (not one request's part of it) fails once
        original = engine._plan
        broken: list[bool] = []

        def plan() -> Any:
            if not broken:
                broken.append(True)
                raise RuntimeError("injected: the loop's bookkeeping broke")
            return original()

        monkeypatch.setattr(engine, "_plan", plan)
        async with asyncio.timeout(60):
            completion = await running.result()
            assert completion.status is Status.ERROR
            assert "the engine failed" in (completion.error or "")
            assert "bookkeeping broke" in (completion.error or "")
            await engine.serving.wait()
            assert engine.restarts == 1
            assert engine.failure is None and "bookkeeping broke" in (engine.last_failure or "")
            after = GenerationRequest(prose(500, 200), "after", max_new_tokens=8)
            served = await complete(engine, after)
        assert served.alternatives[0].tokens == reference(engine.prompt_tokens(after), 8)


async def test_while_the_loop_restarts_requests_are_answered_busy_with_the_reason(
    loaded_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with make_engine(loaded_model, restart_delay_s=600) as engine:

        def plan() -> Any:
            raise RuntimeError("injected: the loop's bookkeeping broke")

        monkeypatch.setattr(engine, "_plan", plan)
        async with asyncio.timeout(60):
            first = await complete(engine, GenerationRequest(prose(0, 100), "first", max_new_tokens=4))
            assert first.status is Status.ERROR
            assert engine.failure is not None and "bookkeeping broke" in engine.failure
            refused = await complete(engine, GenerationRequest(prose(0, 100), "second", max_new_tokens=4))
        assert refused.status is Status.BUSY and "restarting" in (refused.error or "")
