"""Gemma 3 270M in the packed-row runner: greedy tokens equal transformers' `generate`, token for
token in fp32, across the sliding window (the real one of 512 and a shrunk one of 16), in batches
and in prefill chunks; the engine keeps its BOS; in bf16 a row's bits do not depend on the batch.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest
import torch

from server.settings import Settings
from streaming.engine import Engine, EngineLimits
from streaming.loader import BUNDLED_MODELS, LoadedModel, convert_bundled, cpu_runs_bf16, load_model
from streaming.params import GenerationRequest
from streaming.runner import ModelRunner, RowInput
from streaming.tokenizing import leading_special
from tests.streaming.conftest import complete, prose

GEMMA = BUNDLED_MODELS["gemma3-270m"]


def _installed() -> bool:
    try:
        for package in GEMMA.packages:
            importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


pytestmark = [
    pytest.mark.timeout(600),  # the first run converts the GGUF (1-2 minutes on 2 cores)
    pytest.mark.skipif(not _installed(), reason=f"Gemma 3 270M is not installed ({GEMMA.install_command})"),
]
SMALL_WINDOW = 16


@pytest.fixture(scope="module")
def gemma(settings: Settings) -> LoadedModel:
    return load_model(GEMMA.key, "cpu", "float32", settings.model_cache_dir)


@pytest.fixture(scope="module")
def narrow_gemma(settings: Settings) -> Any:
    """The same weights with a sliding window of 16, so that short prompts cross it many times."""
    from transformers import AutoModelForCausalLM

    folder = convert_bundled(settings.model_cache_dir, GEMMA)
    model: Any = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, sliding_window=SMALL_WINDOW
    )
    assert model.config.sliding_window == SMALL_WINDOW
    return model.eval()


def reference(model: Any, prompt: list[int], new_tokens: int) -> list[int]:
    """transformers' own greedy continuation: the ground truth."""
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, do_sample=False
        )
    tokens: list[int] = out[0, len(prompt) :].tolist()
    return tokens


def greedy(runner: ModelRunner, prompts: list[list[int]], new_tokens: int, chunk: int = 0) -> list[list[int]]:
    """Every prompt read beside the others (in pieces of `chunk` tokens, if set), then decoded
    together in one batch, greedily."""
    rows = [runner.new_row() for _ in prompts]
    chunk = chunk or max(len(p) for p in prompts)
    logits: dict[int, torch.Tensor] = {}
    for begin in range(0, max(len(p) for p in prompts), chunk):
        reading = [i for i, p in enumerate(prompts) if begin < len(p)]
        inputs = [RowInput(rows[i], prompts[i][begin : begin + chunk]) for i in reading]
        for i, row_logits in zip(reading, runner.forward(inputs)):
            logits[i] = row_logits
    tokens = [[int(logits[i].argmax())] for i in range(len(prompts))]
    for _ in range(new_tokens - 1):
        step = runner.forward([RowInput(row, [out[-1]]) for row, out in zip(rows, tokens)])
        for out, row_logits in zip(tokens, step):
            out.append(int(row_logits.argmax()))
    return tokens


def test_greedy_tokens_equal_generate_across_the_sliding_window(gemma: LoadedModel) -> None:
    runner = ModelRunner(gemma.model)
    assert gemma.model.config.sliding_window == 512
    encode = gemma.tokenizer.encode
    prompts = [encode(prose(0, 120)), encode(prose(900, 2160))[:505], encode(prose(2000, 3300))[:700]]
    assert [p[0] for p in prompts] == [gemma.tokenizer.bos_token_id] * 3
    # the second prompt's decode crosses position 512; the third is read past the window in one go
    new_tokens = 12
    assert len(prompts[1]) < 512 < len(prompts[1]) + new_tokens and len(prompts[2]) > 512
    got = greedy(runner, prompts, new_tokens)
    for prompt, tokens in zip(prompts, got):
        assert tokens == reference(gemma.model, prompt, new_tokens)


def test_a_prompt_read_in_chunks_across_the_window_equals_generate(gemma: LoadedModel) -> None:
    runner = ModelRunner(gemma.model)
    prompt = gemma.tokenizer.encode(prose(300, 3000))[:620]
    # chunks of 200 tokens: the fourth starts past the window and reads only its last 512 positions
    assert greedy(runner, [prompt], 12, chunk=200)[0] == reference(gemma.model, prompt, 12)


def test_a_shrunk_window_is_kept_exactly_in_batches_and_chunks(gemma: LoadedModel, narrow_gemma: Any) -> None:
    runner = ModelRunner(narrow_gemma)
    encode = gemma.tokenizer.encode
    prompts = [encode(prose(100 * i, 60 + 60 * i)) for i in range(3)]
    got = greedy(runner, prompts, 12, chunk=7)
    expected = [reference(narrow_gemma, prompt, 12) for prompt in prompts]
    assert got == expected
    # the window matters: with all 512 positions in view the longest prompt goes on otherwise
    assert reference(gemma.model, prompts[-1], 12) != expected[-1]


async def test_the_engine_keeps_gemmas_bos_and_matches_generate(gemma: LoadedModel) -> None:
    assert leading_special(gemma.tokenizer) == [gemma.tokenizer.bos_token_id]
    # a small context: the prompt is cut from the left, and the BOS stays in front
    limits = EngineLimits(context_tokens=256)
    request = GenerationRequest(prose(0, 3000) + ".", "gemma-writer", max_new_tokens=20)
    async with Engine(ModelRunner(gemma.model), gemma.tokenizer, limits) as engine:
        prompt = engine.prompt_tokens(request)
        completion = await complete(engine, request)
    assert prompt[0] == gemma.tokenizer.bos_token_id and prompt.count(gemma.tokenizer.bos_token_id) == 1
    assert len(prompt) < 256 < len(gemma.tokenizer.encode(request.prompt))
    assert completion.alternatives[0].tokens == reference(gemma.model, prompt, 20)


@pytest.mark.skipif(not cpu_runs_bf16(), reason="this CPU has no native bf16 matmuls (AVX512-BF16/AMX)")
def test_in_bf16_a_row_in_a_batch_gets_the_same_bits_as_alone(settings: Settings) -> None:
    loaded = load_model(GEMMA.key, "cpu", "bfloat16", settings.model_cache_dir)
    runner = ModelRunner(loaded.model)
    assert runner.packed and runner.cache_shape.dtype == torch.bfloat16
    ids = loaded.tokenizer.encode(prose(0, 3000))
    alone = runner.new_row()
    runner.forward([RowInput(alone, ids[:530])])
    expected = [runner.forward([RowInput(alone, [token])])[0] for token in ids[530:533]]

    row, others = runner.new_row(), [runner.new_row() for _ in range(3)]
    runner.forward([RowInput(others[0], ids[3:90]), RowInput(row, ids[:530]), RowInput(others[1], ids[7:40])])
    runner.forward([RowInput(others[2], ids[1:20])])
    for step, token in enumerate(ids[530:533]):
        batch = [RowInput(other, [ids[600 + step]]) for other in others]
        batch.insert(step % len(batch), RowInput(row, [token]))
        logits = runner.forward(batch)
        assert torch.equal(logits[step % len(batch)], expected[step]), f"decode step {step} differs"
