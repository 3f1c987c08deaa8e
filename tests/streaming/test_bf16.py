"""bf16 on the CPU: prepacked weights, exact against references that read the prompt the same way.

In bf16 a position's numbers depend on how the prompt was split into prefill chunks, and on the
attention kernel (each rounding lands in the residual stream; transformers' own bf16 forward
differs from the runner's by up to ~0.4 in a logit), so the references here are the runner
itself, one row at a time, reading the prompt in the same pieces. Agreement with fp32 and with
transformers is measured over corpus prompts by `python -m bench.agreement`.
"""

from __future__ import annotations

import asyncio

import pytest
import torch
import torch.nn.functional as F

from server.settings import Settings
from streaming.loader import LoadedModel, cpu_runs_bf16, load_model
from streaming.params import GenerationRequest
from streaming.runner import ModelRunner, Projection, RowInput
from tests.streaming.conftest import complete, make_engine, prose

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(not cpu_runs_bf16(), reason="this CPU has no native bf16 matmuls (AVX512-BF16/AMX)"),
]


@pytest.fixture(scope="session")
def bf16_model(settings: Settings) -> LoadedModel:
    return load_model(settings.model, "cpu", "bfloat16", settings.model_cache_dir)


def test_the_runner_packs_bf16_weights_on_this_cpu(bf16_model: LoadedModel) -> None:
    runner = ModelRunner(bf16_model.model)
    assert runner.packed and runner.layers[0].qkv.packed
    assert runner.cache_shape.dtype == torch.bfloat16


@pytest.mark.parametrize("shape", [(576, 960), (576, 3072), (1536, 576), (576, 49152)])
def test_a_packed_projection_gives_each_row_the_same_bits_at_any_batch_size(shape: tuple[int, int]) -> None:
    inputs, outputs = shape
    generator = torch.Generator().manual_seed(0)
    linear = torch.nn.Linear(inputs, outputs, bias=False).to(torch.bfloat16)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(outputs, inputs, generator=generator) * 0.05)
    x = torch.randn(600, inputs, generator=generator).to(torch.bfloat16)
    packed = Projection([linear], packed=True)
    with torch.inference_mode():
        alone = packed(x[:1])
        assert torch.equal(alone, F.linear(x[:1], linear.weight)), "packed and plain bf16 agree"
        each_alone = torch.cat([packed(x[i : i + 1]) for i in range(len(x))])
        for rows in (2, 3, 16, 17, 64, 65, 100, 600):
            together = packed(x[:rows])
            changed = [i for i in range(rows) if not torch.equal(together[i], each_alone[i])]
            assert changed == [], f"rows {changed[:5]} changed in a batch of {rows}"


def test_a_row_in_a_batch_gets_the_same_bits_as_alone(bf16_model: LoadedModel) -> None:
    runner = ModelRunner(bf16_model.model)
    ids = bf16_model.tokenizer.encode(prose(0, 1200))
    alone = runner.new_row()
    runner.forward([RowInput(alone, ids[:150])])
    expected = [runner.forward([RowInput(alone, [token])])[0] for token in ids[150:154]]

    row, others = runner.new_row(), [runner.new_row() for _ in range(5)]
    # the row reads its prompt in one piece beside other rows' prefill and decode
    runner.forward([RowInput(others[0], ids[3:90]), RowInput(row, ids[:150]), RowInput(others[1], ids[7:40])])
    for index, other in enumerate(others[2:]):
        runner.forward([RowInput(other, ids[index : index + 20 + index])])
    for step, token in enumerate(ids[150:154]):
        batch = [RowInput(other, [ids[200 + step]]) for other in others]
        batch.insert(step % len(batch), RowInput(row, [token]))
        logits = runner.forward(batch)
        assert torch.equal(logits[step % len(batch)], expected[step]), f"decode step {step} differs"


def test_a_reused_prefix_gives_the_same_bits_as_reading_it_in_the_same_pieces(
    bf16_model: LoadedModel,
) -> None:
    runner = ModelRunner(bf16_model.model)
    ids = bf16_model.tokenizer.encode(prose(3000, 1200))
    reused = runner.new_row()
    runner.forward([RowInput(reused, ids[:120])])
    runner.forward([RowInput(reused, ids[300:310])])  # what the last request generated
    reused.truncate(120)  # the next request shares the first 120 tokens and goes on differently
    got = runner.forward([RowInput(reused, ids[120:160])])[0]

    fresh = runner.new_row()
    runner.forward([RowInput(fresh, ids[:120])])
    assert torch.equal(runner.forward([RowInput(fresh, ids[120:160])])[0], got)


async def test_bf16_requests_batched_each_match_the_same_request_alone(
    bf16_model: LoadedModel,
) -> None:
    requests = [
        GenerationRequest(prose(700 * i, 150 + 90 * i), f"bf16-{i}", max_new_tokens=16) for i in range(6)
    ]
    # a small prefill chunk: the longer prompts are read over several steps beside the others
    async with make_engine(bf16_model, prefill_chunk=64) as engine:
        generations = await asyncio.gather(*(engine.submit(r) for r in requests))
        batched = await asyncio.gather(*(g.result() for g in generations))
        assert engine.steps < 40, "the requests shared their steps (one at a time would take ~100)"
        assert max(len(engine.prompt_tokens(r)) for r in requests) > engine.limits.prefill_chunk
    for request, together in zip(requests, batched):
        async with make_engine(bf16_model, prefill_chunk=64) as engine:
            alone = await complete(engine, request)
        assert together.alternatives[0].tokens == alone.alternatives[0].tokens
