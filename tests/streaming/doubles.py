"""Test doubles for the engine: faults injected into one request's part of a step, and a tokenizer
that notes the threads it runs on."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import torch

from streaming.engine import Engine
from streaming.jobs import Job
from streaming.params import GenerationRequest
from streaming.runner import RowInput
from streaming.text import TextStream

STOP = "@@"  # the stop string only a targeted request asks for
PHASES = ["tokenize", "admit", "plan", "forward", "sample", "extend", "text"]


def inject(engine: Engine, monkeypatch: pytest.MonkeyPatch, phase: str, target: str) -> str:
    """Make one part of a step raise for the request in session `target` (which asks for the stop
    string STOP); returns the fault's message."""
    message = f"injected into {phase}"

    def targeted(method: str) -> None:
        original = getattr(engine, method)

        def faulty(job: Job, *args: Any) -> Any:
            if job.request.session == target:
                raise RuntimeError(message)
            return original(job, *args)

        monkeypatch.setattr(engine, method, faulty)

    if phase == "tokenize":
        original_tokens = engine.prompt_tokens

        def prompt_tokens(request: GenerationRequest) -> list[int]:
            if request.session == target:
                raise RuntimeError(message)
            return original_tokens(request)

        monkeypatch.setattr(engine, "prompt_tokens", prompt_tokens)
    elif phase == "admit":
        targeted("_place")
    elif phase == "plan":
        targeted("_inputs")
    elif phase == "forward":
        original_forward = engine.runner.forward

        def forward(inputs: list[RowInput]) -> torch.Tensor:
            session = engine._sessions.get(target)
            job = session.job if session is not None else None
            if job is not None:
                rows = {id(job.row), *(id(alt.row) for alt in job.alts)}
                if any(id(item.row) in rows for item in inputs):
                    raise RuntimeError(message)
            return original_forward(inputs)

        monkeypatch.setattr(engine.runner, "forward", forward)
    elif phase == "sample":
        targeted("_advance")
    elif phase == "extend":
        targeted("_extend")
    elif phase == "text":
        original_push = TextStream.push

        def push(self: TextStream, ids: list[int], text: str | None = None) -> str:
            if self._stop == (STOP,):
                raise RuntimeError(message)
            return original_push(self, ids, text)

        monkeypatch.setattr(TextStream, "push", push)
    return message


class RecordingTokenizer:
    """A real tokenizer, noting which thread each `encode` ran on."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self.threads: list[str] = []
        self.eos_token_id = tokenizer.eos_token_id

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        self.threads.append(threading.current_thread().name)
        ids: list[int] = self._tokenizer.encode(text, add_special_tokens=add_special_tokens)
        return ids

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        text: str = self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
        return text
