"""Sharing the engine: per-owner caps and turns, bounded and expiring sessions, prompt bounds, and
tokenizing off the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streaming.errors import InvalidRequest
from streaming.loader import LoadedModel
from streaming.params import GenerationRequest, Status
from streaming.runner import ModelRunner, RowInput
from tests.streaming.conftest import complete, make_engine, prose
from tests.streaming.doubles import RecordingTokenizer

pytestmark = pytest.mark.timeout(240)


def request(session: str, owner: str, max_new_tokens: int = 4, n: int = 1, at: int = 0) -> GenerationRequest:
    return GenerationRequest(prose(at, 150), session, max_new_tokens=max_new_tokens, n=n, owner=owner)


async def test_an_owner_over_its_requests_or_rows_is_limited_at_once_and_others_are_not(
    loaded_model: LoadedModel,
) -> None:
    async with make_engine(loaded_model, owner_requests=2, owner_rows=3) as engine:
        first = await engine.submit(request("ann-1", "ann", max_new_tokens=200))
        second = await engine.submit(request("ann-2", "ann", max_new_tokens=200))
        third = await engine.submit(request("ann-3", "ann"))
        bob = await engine.submit(request("bob-1", "bob", n=3))
        assert third.completion is not None and third.completion.status is Status.LIMITED
        assert first.completion is None and second.completion is None and bob.completion is None

        second.cancel()
        await second.result()
        wide = await engine.submit(request("ann-4", "ann", n=3))  # 1 + 3 rows > 3
        assert wide.completion is not None and wide.completion.status is Status.LIMITED
        narrow = await engine.submit(request("ann-5", "ann", n=2))  # 1 + 2 rows
        assert narrow.completion is None
        first.cancel()
        async with asyncio.timeout(120):
            assert (await bob.result()).status in (Status.LENGTH, Status.FINISHED)
            assert (await narrow.result()).status in (Status.LENGTH, Status.FINISHED)
        anonymous = [await engine.submit(request(f"anon-{i}", "")) for i in range(5)]
        assert all(g.completion is None for g in anonymous), "requests without an owner are not capped"


class RecordingRunner(ModelRunner):
    """Notes the rows of every forward pass."""

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.steps: list[list[RowInput]] = []

    def forward(self, inputs: list[RowInput]) -> Any:
        self.steps.append(list(inputs))
        return super().forward(inputs)


async def test_waiting_owners_are_admitted_in_turn(loaded_model: LoadedModel) -> None:
    """One row at a time: ann's three queued requests do not go before bob's one."""
    async with make_engine(loaded_model, max_rows=1, owner_requests=8) as engine:
        requests = [request(f"ann-{i}", "ann", at=100 * i) for i in range(3)] + [request("bob-0", "bob")]
        generations = await asyncio.gather(*(engine.submit(r) for r in requests))
        async with asyncio.timeout(120):
            await asyncio.gather(*(g.result() for g in generations))
    order = sorted(generations, key=lambda g: g.last_step)
    sessions = [next(j for j in engine.recent if j.id == g.id).request.session for g in order]
    assert sessions == ["ann-0", "bob-0", "ann-1", "ann-2"]


async def test_an_owner_keeps_at_most_its_cached_sessions_evicting_its_oldest(
    loaded_model: LoadedModel,
) -> None:
    async with make_engine(loaded_model, owner_sessions=2) as engine:
        await complete(engine, request("bob-0", "bob"))
        for i in range(4):
            await complete(engine, request(f"ann-{i}", "ann", at=100 * i))
        await engine.wait_idle()
        kept = {s.key for s in engine._sessions}
    assert kept == {"bob-0", "ann-2", "ann-3"}


async def test_idle_sessions_expire(loaded_model: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    async with make_engine(loaded_model, session_idle_s=0.2) as engine:
        expired = asyncio.Event()
        expire = engine._sessions.expire

        def noted(unused_since: float) -> int:
            count = expire(unused_since)
            if count:
                expired.set()
            return count

        monkeypatch.setattr(engine._sessions, "expire", noted)
        await complete(engine, request("idle", "ann"))
        await engine.wait_idle()
        assert engine.stats().sessions == 1
        async with asyncio.timeout(30):
            await expired.wait()  # nothing wakes the idle loop but the session falling due
        assert engine.stats().sessions == 0 and engine.stats().kv_bytes == 0


async def test_a_closed_session_frees_its_kv_unless_a_newer_request_uses_it(
    loaded_model: LoadedModel,
) -> None:
    async with make_engine(loaded_model) as engine:
        await complete(engine, request("gone", "ann"))
        running = await engine.submit(request("reconnected", "ann", max_new_tokens=200))
        async with asyncio.timeout(60):
            async for _ in running:
                break
            engine.close_session("gone")
            engine.close_session("reconnected")  # a newer caller's request is running in it
            assert engine._sessions.get("gone") is None
            assert engine._sessions.get("reconnected") is not None and running.completion is None
            running.cancel()
            await running.result()
            await engine.wait_idle()
        assert engine._sessions.get("reconnected") is not None, "its own caller had not said it was gone"


@pytest.mark.parametrize(
    ("limits", "prompt", "words"),
    [
        ({"prompt_limit_chars": 1000}, "x" * 1001, "1001 characters"),
        ({"prompt_limit_tokens": 20}, prose(0, 400), "tokens long"),
    ],
)
async def test_a_prompt_over_its_bounds_is_refused_naming_it(
    loaded_model: LoadedModel, limits: dict[str, int], prompt: str, words: str
) -> None:
    async with make_engine(loaded_model, **limits) as engine:
        with pytest.raises(InvalidRequest) as refused:
            await engine.submit(GenerationRequest(prompt, "big"))
        assert refused.value.field == "prompt" and words in refused.value.message
        assert engine.stats().open_requests == 0


async def test_prompts_are_tokenized_on_a_worker_thread(loaded_model: LoadedModel) -> None:
    engine = make_engine(loaded_model)
    tokenizer = RecordingTokenizer(loaded_model.tokenizer)
    engine.tokenizer = tokenizer
    async with engine:
        requests = [request(f"t{i}", "ann", at=100 * i) for i in range(3)]
        await asyncio.gather(*(complete(engine, r) for r in requests))
    assert len(tokenizer.threads) == 3
    assert all(name.startswith("cowrite-tokenizer") for name in tokenizer.threads), tokenizer.threads


async def test_warm_up_runs_a_few_row_step_and_leaves_nothing_behind(loaded_model: LoadedModel) -> None:
    runner = RecordingRunner(loaded_model.model)
    async with make_engine(loaded_model, runner) as engine:
        await engine.warm_up()
        assert engine.warmed and engine.steps >= 2
        assert max(len(step) for step in runner.steps) >= 3, "the warm-up batched several rows"
        stats = engine.stats()
        assert (stats.sessions, stats.kv_bytes, stats.open_requests) == (0, 0, 0)
        assert not engine.recent
