"""The engine's observer on the real model: told of every step, each first token and every end."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from streaming.engine import Engine, EngineLimits
from streaming.loader import LoadedModel
from streaming.observer import EngineObserver
from streaming.params import Completion, GenerationRequest, Status
from streaming.runner import ModelRunner
from tests.streaming.conftest import prose

pytestmark = pytest.mark.timeout(240)


class RecordingObserver:
    """An `EngineObserver` that keeps what it is told."""

    def __init__(self) -> None:
        self.steps: list[tuple[float, int]] = []
        self.first_tokens: list[float] = []
        self.ends: list[tuple[Status, int]] = []

    def step(self, seconds: float, rows: int) -> None:
        self.steps.append((seconds, rows))

    def first_token(self, seconds: float) -> None:
        self.first_tokens.append(seconds)

    def ended(self, status: Status, tokens: int) -> None:
        self.ends.append((status, tokens))


def observed_engine(loaded: LoadedModel, observer: EngineObserver, **limits: int) -> Engine:
    return Engine(ModelRunner(loaded.model), loaded.tokenizer, EngineLimits(**limits), observer=observer)


def generated(completion: Completion) -> int:
    return sum(len(a.tokens) for a in completion.alternatives)


async def test_every_step_first_token_and_end_is_observed(loaded_model: LoadedModel) -> None:
    observer = RecordingObserver()
    requests = [
        GenerationRequest(prose(0, 300), "one", max_new_tokens=6),
        GenerationRequest(prose(800, 200), "two", max_new_tokens=5, n=2, temperature=0.8, seed=3),
    ]
    async with observed_engine(loaded_model, observer) as engine:
        generations = await asyncio.gather(*(engine.submit(r) for r in requests))
        completions = await asyncio.gather(*(g.result() for g in generations))
        await engine.wait_idle()
        steps = engine.steps

    assert len(observer.steps) == steps > 0
    assert all(seconds > 0 and rows >= 1 for seconds, rows in observer.steps)
    assert max(rows for _, rows in observer.steps) == 3, "one row for `one`, two for `two`'s alternatives"
    ttfts = [c.ttft_s for c in completions]
    assert None not in ttfts and sorted(observer.first_tokens) == pytest.approx(sorted(filter(None, ttfts)))
    assert Counter(observer.ends) == Counter((c.status, generated(c)) for c in completions)
    assert all(generated(c) > 0 for c in completions)


async def test_refused_superseded_and_cancelled_requests_are_observed(loaded_model: LoadedModel) -> None:
    observer = RecordingObserver()
    async with observed_engine(loaded_model, observer, owner_requests=1) as engine:
        old = await engine.submit(GenerationRequest(prose(0, 200), "s", max_new_tokens=200, owner="ann"))
        refused = await engine.submit(GenerationRequest(prose(300, 200), "t", owner="ann"))
        assert refused.completion is not None and refused.completion.status is Status.LIMITED
        async for _ in old:  # its first token: it is decoding
            break
        newer = await engine.submit(GenerationRequest(prose(0, 210), "s", max_new_tokens=200))
        async for _ in newer:
            break
        newer.cancel()
        completions = [await g.result() for g in (old, refused, newer)]
        await engine.wait_idle()

    assert [c.status for c in completions] == [Status.SUPERSEDED, Status.LIMITED, Status.CANCELLED]
    assert Counter(observer.ends) == Counter((c.status, generated(c)) for c in completions)
    assert (Status.LIMITED, 0) in observer.ends
    assert len(observer.first_tokens) == 2, "the refused request never reached the model"
