"""Prompts to token ids on a worker thread, never on the event loop, and the special tokens (a BOS,
the end of a text) that a tokenizer and its model put around a text.

Prompts that arrive together are tokenized together, in one call to the thread, so requests
submitted at once are queued at once (and share their first step).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from streaming.params import GenerationRequest

Waiting = tuple[GenerationRequest, asyncio.Future[list[int]]]


class Tokenizer(Protocol):
    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...
    def decode(self, ids: list[int], skip_special_tokens: bool = ...) -> str: ...


def leading_special(tokenizer: Tokenizer) -> list[int]:
    """The tokens (a BOS) that the tokenizer puts before every text, kept through left cuts."""
    plain = tokenizer.encode("a", add_special_tokens=False)
    full = tokenizer.encode("a", add_special_tokens=True)
    return full[: len(full) - len(plain)] if full[len(full) - len(plain) :] == plain else []


def end_ids(model: object, tokenizer: Tokenizer) -> frozenset[int]:
    """The tokens that end a text: the model's generation config's and the tokenizer's."""
    ids: set[int] = set()
    config = getattr(model, "generation_config", None)
    for source in (getattr(config, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, (list, tuple)):
            ids.update(int(i) for i in source)
    return frozenset(ids)


class PromptTokenizer:
    """Runs `encode(request)` for each request on one thread (a tokenizer must not be used by two at
    once); `run()` is its loop, run by the engine's supervisor."""

    def __init__(self, encode: Callable[[GenerationRequest], list[int]]) -> None:
        self._encode = encode
        self._waiting: list[Waiting] = []
        self._in_thread: list[Waiting] = []
        self._wake = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cowrite-tokenizer")

    def stop(self) -> None:
        assert self._executor is not None, "call start() first"
        self._executor.shutdown(wait=True)
        self._executor = None

    async def tokens(self, request: GenerationRequest) -> list[int]:
        """The request's prompt ids; raises what `encode` raised (InvalidRequest for a bad prompt)."""
        tokenized: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, tokenized))
        self._wake.set()
        return await tokenized

    def abandon(self) -> None:
        """The engine ended every request: whoever still waits for tokens gets none."""
        for _, waiter in self._waiting + self._in_thread:
            if not waiter.done():
                waiter.set_result([])
        self._waiting, self._in_thread = [], []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch = self._in_thread = self._waiting
            self._waiting = []
            requests = [request for request, _ in batch]
            try:
                outcomes = await loop.run_in_executor(self._executor, self._encode_all, requests)
            except Exception as exc:  # the thread could not run them: each caller hears why
                outcomes = [exc] * len(batch)
            self._in_thread = []
            for (_, waiter), outcome in zip(batch, outcomes):
                if waiter.done():
                    continue  # its caller has gone
                if isinstance(outcome, Exception):
                    waiter.set_exception(outcome)
                else:
                    waiter.set_result(outcome)

    def _encode_all(self, requests: list[GenerationRequest]) -> list[list[int] | Exception]:
        outcomes: list[list[int] | Exception] = []
        for request in requests:
            try:
                outcomes.append(self._encode(request))
            except Exception as exc:  # InvalidRequest, or a tokenizer fault: that request's alone
                outcomes.append(exc)
        return outcomes
