"""Engine fixtures over the real model, and the `generate()` reference that pins its output."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from server.settings import Settings
from streaming.engine import Engine, EngineLimits
from streaming.loader import LoadedModel, load_model
from streaming.params import Completion, GenerationRequest
from streaming.runner import ModelRunner

PROSE = (Path(__file__).resolve().parent.parent / "data" / "prose.txt").read_text(encoding="utf-8")
PROSE = PROSE.split("\n\n", 1)[1]


def prose(start: int, length: int) -> str:
    """A slice of real prose, starting at a word."""
    begin = PROSE.index(" ", start) + 1
    return PROSE[begin : begin + length]


@pytest.fixture(scope="session")
def loaded_model(settings: Settings) -> LoadedModel:
    """The model for the engine's tests: fp32 unless COWRITE_DTYPE names a dtype.

    They compare with transformers' `generate` token for token, across batches, prefill chunks
    and reused prefixes. Only fp32 keeps that exact: in bf16 every rounding lands in the residual
    stream, so reading a prompt in other chunks moves the logits by up to ~0.5 and can flip a
    near-tie. test_bf16.py holds bf16 to references that read the prompt the same way.
    """
    dtype = settings.dtype if settings.dtype != "auto" else "float32"
    return load_model(settings.model, settings.device, dtype, settings.model_cache_dir)


@pytest.fixture
def reference(loaded_model: LoadedModel) -> Callable[[list[int], int], list[int]]:
    """Greedy tokens from transformers' own `generate`, the engine's ground truth."""

    def run(prompt_ids: list[int], max_new_tokens: int) -> list[int]:
        ids = torch.tensor([prompt_ids], device=loaded_model.device)
        with torch.inference_mode():
            out = loaded_model.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=loaded_model.tokenizer.eos_token_id,
            )
        tokens: list[int] = out[0, len(prompt_ids) :].tolist()
        eos = loaded_model.tokenizer.eos_token_id
        return tokens[: tokens.index(eos)] if eos in tokens else tokens

    return run


def make_engine(loaded: LoadedModel, runner: ModelRunner | None = None, **limits: Any) -> Engine:
    return Engine(runner or ModelRunner(loaded.model), loaded.tokenizer, EngineLimits(**limits))


async def complete(engine: Engine, request: GenerationRequest) -> Completion:
    """Submit a request and wait for its outcome."""
    return await (await engine.submit(request)).result()


@pytest.fixture
async def engine(loaded_model: LoadedModel) -> AsyncIterator[Engine]:
    async with make_engine(loaded_model) as running:
        yield running
