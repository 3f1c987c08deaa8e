"""The engine on the real bundled model: exact greedy output, seeds, cancellation, faults, bounds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import torch

from streaming.engine import Engine
from streaming.jobs import Generation
from streaming.loader import LoadedModel
from streaming.params import GenerationRequest, Status
from streaming.runner import ModelRunner, RowInput
from tests.streaming.conftest import complete, make_engine, prose

Reference = Callable[[list[int], int], list[int]]
pytestmark = pytest.mark.timeout(240)


async def first_delta(generation: Generation) -> str:
    async for delta in generation:
        return delta.text
    raise AssertionError("the generation ended before its first delta")


async def test_single_request_matches_generate(engine: Engine, reference: Reference) -> None:
    request = GenerationRequest(prose(0, 300), "writer-1", max_new_tokens=24)
    generation = await engine.submit(request)
    deltas = [d.text async for d in generation]
    completion = await generation.result()

    expected = reference(engine.prompt_tokens(request), 24)
    assert completion.alternatives[0].tokens == expected
    assert "".join(deltas) == completion.alternatives[0].text
    assert completion.status in (Status.LENGTH, Status.FINISHED)
    assert completion.ttft_s is not None and completion.ttft_s <= completion.total_s


async def test_eight_requests_in_one_batch_each_match_generate(engine: Engine, reference: Reference) -> None:
    requests = [GenerationRequest(prose(400 * i, 200 + 20 * i), f"w{i}", max_new_tokens=16) for i in range(8)]
    generations = await asyncio.gather(*(engine.submit(r) for r in requests))
    completions = await asyncio.gather(*(g.result() for g in generations))

    shared_steps = {g.last_step for g in generations}
    assert len(shared_steps) <= 3, "the eight requests should have decoded in one shared batch"
    for request, completion in zip(requests, completions):
        assert completion.alternatives[0].tokens == reference(engine.prompt_tokens(request), 16)


async def test_prefix_reuse_prefills_only_new_tokens_and_stays_exact(
    engine: Engine, reference: Reference
) -> None:
    text = prose(1000, 600)
    first = await complete(engine, GenerationRequest(text, "writer-2", max_new_tokens=8))
    assert first.reused_tokens == 0

    # the writer types a few more characters, ending mid-word: the last token re-tokenizes
    longer = GenerationRequest(text + " and then", "writer-2", max_new_tokens=20)
    second = await complete(engine, longer)

    prompt_ids = engine.prompt_tokens(longer)
    assert second.reused_tokens >= first.prompt_tokens - 2
    assert second.reused_tokens < len(prompt_ids)
    assert second.alternatives[0].tokens == reference(prompt_ids, 20)


async def test_same_seed_gives_same_sample(engine: Engine) -> None:
    def sampled(session: str, seed: int, n: int = 1) -> GenerationRequest:
        return GenerationRequest(
            prose(2000, 200),
            session,
            max_new_tokens=24,
            temperature=1.0,
            top_p=0.95,
            top_k=50,
            seed=seed,
            n=n,
        )

    a, b, c, pair = await asyncio.gather(
        complete(engine, sampled("s-a", 7)),
        complete(engine, sampled("s-b", 7)),
        complete(engine, sampled("s-c", 8)),
        complete(engine, sampled("s-d", 7, n=2)),
    )
    assert a.alternatives[0].tokens == b.alternatives[0].tokens
    assert a.alternatives[0].tokens != c.alternatives[0].tokens
    # alternative i is seeded with seed + i, so alternative 0 replays the single request
    assert pair.alternatives[0].tokens == a.alternatives[0].tokens
    assert pair.alternatives[1].tokens == c.alternatives[0].tokens


async def test_alternatives_decode_as_rows_of_one_request(engine: Engine) -> None:
    request = GenerationRequest(prose(3000, 200), "w-alt", max_new_tokens=12, temperature=0.9, seed=3, n=3)
    generation = await engine.submit(request)
    by_index: dict[int, str] = {}
    async for delta in generation:
        by_index[delta.index] = by_index.get(delta.index, "") + delta.text
    completion = await generation.result()
    assert [a.index for a in completion.alternatives] == [0, 1, 2]
    for alt in completion.alternatives:
        assert by_index.get(alt.index, "") == alt.text


async def test_cancel_stops_within_one_step_and_frees_its_rows(engine: Engine) -> None:
    victim = await engine.submit(GenerationRequest(prose(100, 300), "victim", max_new_tokens=200))
    bystander = await engine.submit(GenerationRequest(prose(500, 300), "bystander", max_new_tokens=40))
    await first_delta(victim)
    victim.cancel()
    completion = await victim.result()
    await bystander.result()
    await engine.wait_idle()

    assert completion.status is Status.CANCELLED
    assert victim.ended_at_step is not None
    assert engine.steps > victim.ended_at_step + 2, "the bystander kept the loop stepping"
    assert victim.last_step <= victim.ended_at_step
    stats = engine.stats()
    assert stats.active_rows == 0 and stats.active_requests == 0 and stats.open_requests == 0


async def test_new_request_in_a_session_supersedes_the_old_one(engine: Engine, reference: Reference) -> None:
    text = prose(1500, 400)
    old = await engine.submit(GenerationRequest(text, "writer-3", max_new_tokens=200))
    await first_delta(old)
    newer_request = GenerationRequest(text + " She", "writer-3", max_new_tokens=12)
    newer = await engine.submit(newer_request)

    assert (await old.result()).status is Status.SUPERSEDED
    result = await newer.result()
    assert old.ended_at_step is not None and old.last_step <= old.ended_at_step
    assert result.reused_tokens > 0
    assert result.alternatives[0].tokens == reference(engine.prompt_tokens(newer_request), 12)


async def test_a_caller_that_goes_away_cancels_its_request(engine: Engine) -> None:
    generation = await engine.submit(GenerationRequest(prose(200, 300), "leaver", max_new_tokens=200))
    started = asyncio.Event()

    async def consume() -> None:
        async with generation:
            async for _ in generation:
                started.set()

    consumer = asyncio.create_task(consume())
    await started.wait()
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    completion = await generation.result()
    await engine.wait_idle()
    assert completion.status is Status.CANCELLED
    assert generation.ended_at_step is not None and generation.last_step <= generation.ended_at_step


class FaultyRunner(ModelRunner):
    """Raises `fault` on the forward call numbered `at_call` (counting from 1), when `when` allows."""

    def __init__(
        self, model: torch.nn.Module, at_call: int, fault: BaseException, when: Callable[[int], bool]
    ) -> None:
        super().__init__(model)
        self.at_call, self.fault, self.when = at_call, fault, when
        self.faults = 0
        self.batch_sizes: list[int] = []

    def forward(self, inputs: list[RowInput]) -> torch.Tensor:
        self.batch_sizes.append(len(inputs))
        if self.calls + 1 >= self.at_call and self.faults == 0 and self.when(len(inputs)):
            self.calls += 1
            self.faults += 1
            raise self.fault
        return super().forward(inputs)


async def test_a_passing_fault_in_a_step_is_retried_and_fails_nobody(
    loaded_model: LoadedModel, reference: Reference
) -> None:
    runner = FaultyRunner(loaded_model.model, at_call=4, fault=RuntimeError("injected"), when=lambda n: n > 1)
    async with make_engine(loaded_model, runner) as engine:
        requests = [GenerationRequest(prose(300 * i, 150), f"f{i}", max_new_tokens=30) for i in range(3)]
        completions = await asyncio.gather(*(complete(engine, r) for r in requests))
    assert runner.faults == 1
    for request, completion in zip(requests, completions):
        assert completion.status in (Status.LENGTH, Status.FINISHED)
        assert completion.alternatives[0].tokens == reference(engine.prompt_tokens(request), 30)


class PoisonedRunner(ModelRunner):
    """Fails every forward pass that includes a row whose tokens begin with `poison`."""

    def __init__(self, model: torch.nn.Module, poison: list[int]) -> None:
        super().__init__(model)
        self.poison = poison

    def forward(self, inputs: list[RowInput]) -> torch.Tensor:
        for item in inputs:
            if (item.row.tokens + item.tokens)[: len(self.poison)] == self.poison:
                raise RuntimeError("injected fault in a poisoned row")
        return super().forward(inputs)


async def test_a_model_fault_fails_only_the_request_whose_rows_cause_it(
    loaded_model: LoadedModel, reference: Reference
) -> None:
    poisoned = GenerationRequest(prose(3000, 150), "poisoned", max_new_tokens=30)
    probe = make_engine(loaded_model)
    runner = PoisonedRunner(loaded_model.model, probe.prompt_tokens(poisoned))
    async with make_engine(loaded_model, runner) as engine:
        healthy = [GenerationRequest(prose(300 * i, 150), f"h{i}", max_new_tokens=30) for i in range(3)]
        bad, *good = await asyncio.gather(*(complete(engine, r) for r in [poisoned, *healthy]))
        assert bad.status is Status.ERROR and "poisoned row" in (bad.error or "")
        for request, completion in zip(healthy, good):
            assert completion.alternatives[0].tokens == reference(engine.prompt_tokens(request), 30)
        await engine.wait_idle()
        assert engine.stats().sessions == len(healthy), "the failed request's session was dropped"


async def test_out_of_memory_retries_the_step_in_halves(
    loaded_model: LoadedModel, reference: Reference
) -> None:
    oom = torch.OutOfMemoryError("injected out of memory")
    runner = FaultyRunner(loaded_model.model, at_call=3, fault=oom, when=lambda n: n == 4)
    async with make_engine(loaded_model, runner) as engine:
        requests = [GenerationRequest(prose(250 * i, 120), f"o{i}", max_new_tokens=10) for i in range(4)]
        completions = await asyncio.gather(*(complete(engine, r) for r in requests))

    assert runner.faults == 1
    failed_at = runner.batch_sizes.index(4, 2)
    assert runner.batch_sizes[failed_at + 1 : failed_at + 3] == [2, 2]
    for request, completion in zip(requests, completions):
        assert completion.status is not Status.ERROR
        assert completion.alternatives[0].tokens == reference(engine.prompt_tokens(request), 10)


async def test_out_of_memory_on_one_row_fails_only_that_request(loaded_model: LoadedModel) -> None:
    oom = torch.OutOfMemoryError("injected out of memory")
    runner = FaultyRunner(loaded_model.model, at_call=2, fault=oom, when=lambda n: n == 1)
    async with make_engine(loaded_model, runner) as engine:
        lone = await complete(engine, GenerationRequest(prose(0, 100), "lone", max_new_tokens=10))
        assert lone.status is Status.ERROR and "out of memory" in (lone.error or "")
        again = await complete(engine, GenerationRequest(prose(0, 100), "lone", max_new_tokens=10))
        assert again.status is not Status.ERROR


async def test_thousand_short_requests_leave_the_engine_idle(loaded_model: LoadedModel) -> None:
    async with make_engine(loaded_model, max_sessions=16, max_queue=64, max_rows=32) as engine:
        tasks_before = len(asyncio.all_tasks())
        statuses: dict[Status, int] = {}
        for wave in range(20):
            generations = [
                await engine.submit(
                    GenerationRequest(
                        prose(37 * (wave * 50 + i) % 4000, 20 + i % 30),
                        f"short-{wave}-{i % 40}",
                        max_new_tokens=1 + i % 3,
                        keep_session=i % 2 == 0,
                    )
                )
                for i in range(50)
            ]
            for generation in generations[::7]:
                generation.cancel()
            for completion in await asyncio.gather(*(g.result() for g in generations)):
                statuses[completion.status] = statuses.get(completion.status, 0) + 1
        await engine.wait_idle()

        assert sum(statuses.values()) == 1000
        assert Status.CANCELLED in statuses and Status.ERROR not in statuses
        stats = engine.stats()
        assert (stats.queued, stats.active_requests, stats.active_rows, stats.open_requests) == (0, 0, 0, 0)
        assert stats.sessions <= 16
        per_token = engine.runner.cache_shape.bytes_per_token
        assert stats.kv_bytes <= 16 * engine.context_tokens * per_token
        assert len(asyncio.all_tasks()) == tasks_before


async def test_a_full_queue_answers_busy_at_once(loaded_model: LoadedModel) -> None:
    async with make_engine(loaded_model, max_queue=2, max_rows=4) as engine:
        requests = [GenerationRequest(prose(0, 200), f"q{i}", max_new_tokens=4) for i in range(6)]
        generations = await asyncio.gather(*(engine.submit(r) for r in requests))
        busy = [g for g in generations if g.completion is not None and g.completion.status is Status.BUSY]
        assert len(busy) == 4
        served = await asyncio.gather(*(g.result() for g in generations if g not in busy))
        assert all(c.status is not Status.BUSY for c in served)


async def test_time_budget_ends_a_long_request(engine: Engine) -> None:
    request = GenerationRequest(prose(0, 200), "slow", max_new_tokens=1000, time_budget_s=0.3)
    completion = await complete(engine, request)
    assert completion.status is Status.TIME
    assert len(completion.alternatives[0].tokens) < 1000


async def test_stop_string_ends_an_alternative_without_including_it(
    engine: Engine, reference: Reference
) -> None:
    request = GenerationRequest(prose(0, 300), "stopper", max_new_tokens=30)
    free = await complete(engine, request)
    text = free.alternatives[0].text
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    assert len(stop) == 3

    stopped = await complete(
        engine, GenerationRequest(prose(0, 300), "stopper-2", max_new_tokens=30, stop=(stop,))
    )
    assert stopped.status is Status.STOP
    assert stopped.alternatives[0].text == text[: text.index(stop)]


async def test_long_prompt_is_cut_from_the_left_in_coarse_steps(engine: Engine) -> None:
    text = " ".join([prose(0, 5000)] * 2)
    first = engine.prompt_tokens(GenerationRequest(text, "cut", max_new_tokens=48))
    later = engine.prompt_tokens(GenerationRequest(text + " and so on", "cut", max_new_tokens=48))
    budget = engine.context_tokens - 48
    assert len(first) <= budget and len(later) <= budget
    assert len(first) > budget * 3 // 4
    # a few more characters leave the cut where it was, so the prefix stays reusable
    assert later[: len(first) - 1] == first[:-1]


async def test_a_prefix_is_spelled_out_first_and_left_out_of_the_text(engine: Engine) -> None:
    # the writer typed "acknowl": the prompt ends before the word, the model must begin with it
    healed = GenerationRequest("It is a truth universally", "heal", max_new_tokens=6, prefix=" acknowl")
    completion = await complete(engine, healed)
    text = completion.alternatives[0].text
    assert text.startswith("edged"), text
    decoded = engine.tokenizer.decode(completion.alternatives[0].tokens)
    assert decoded == " acknowl" + text
