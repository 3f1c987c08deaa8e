"""llama-server under the knobs a client can apply: its `/completion` request for a variant, its
tokens read with their probabilities, and Cowrite's stop rules applied on the client's side."""

from __future__ import annotations

import asyncio
import codecs
import json
import math
import time
from collections.abc import Iterable
from typing import Any

import httpx

from bench.quality.recorder import Recorder
from bench.quality.variant import Variant
from bench.writers import Attempt, PeerSuggester
from streaming.stopping import StopRules


def peer_body(variant: Variant, prompt: str, stream: bool, seed: int | None = None) -> dict[str, Any]:
    """llama-server's native `/completion` request for `variant`, as Cowrite's `to_request` samples."""
    warm = variant.temperature > 0
    body: dict[str, Any] = {
        "prompt": prompt,
        "n_predict": variant.max_tokens,
        "temperature": variant.temperature,
        "top_p": 0.95 if warm else 1.0,
        "top_k": 50 if warm else 0,
        "repeat_penalty": variant.policy.repetition_penalty,
        "stop": ["\n\n"],
        "cache_prompt": True,
        "stream": stream,
    }
    if variant.policy.confidence or variant.policy.run_confidence:
        body["n_probs"] = 1  # the sampled token's probability, the model's own (temperature 1)
    return body | ({"seed": seed} if seed is not None else {})


def pieces_of(data: dict[str, Any]) -> list[tuple[str, float]]:
    """The text of a `/completion` answer (or streamed chunk), token by token with each token's
    probability, as far as the answer's `content` goes (a stop string is not part of it)."""
    content = str(data.get("content", ""))
    probs = data.get("completion_probabilities") or []
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may span tokens
    pieces = [(decoder.decode(bytes(p["bytes"])), math.exp(p["logprob"])) for p in probs]
    if probs and "".join(piece for piece, _ in pieces).startswith(content):
        out, length = [], 0
        for piece, prob in pieces:
            if length >= len(content):
                break
            out.append((piece[: len(content) - length], prob))
            length += len(piece)
        return out
    # no probabilities asked for, or text held back a while (a stop string that was not): one piece
    return [(content, math.prod(prob for _, prob in pieces))] if content else []


class ClientCut:
    """A client's own stop rules over llama-server's tokens: streaming/stopping.py's, as Cowrite
    applies them in its engine (confidence, run confidence, sentence or clause end)."""

    def __init__(self, variant: Variant) -> None:
        policy = variant.policy
        self.rules = StopRules(policy.confidence, policy.run_confidence, policy.span)
        self.text = ""
        self.reason: str | None = None

    def add(self, pieces: Iterable[tuple[str, float]]) -> bool:
        """Take the pieces in turn until a rule ends the text; True once it has."""
        for piece, prob in pieces:
            if self.reason is not None:
                break
            status = self.rules.before(self.text, piece, prob)
            if status is not None:
                self.reason = str(status)
            else:
                self.text += piece
        return self.reason is not None


async def peer_complete(http: httpx.AsyncClient, variant: Variant, before: str, seed: int) -> tuple[str, str]:
    """llama-server's whole suggestion at `before`, cut as a client would: (text, how it ended)."""
    response = await http.post("/completion", json=peer_body(variant, before, stream=False, seed=seed))
    response.raise_for_status()
    data = response.json()
    cut = ClientCut(variant)
    cut.add(pieces_of(data))
    return cut.text, cut.reason or str(data.get("stop_type", ""))


class PolicyPeerSuggester(PeerSuggester):
    """llama-server's streamed `/completion` under a variant's knobs; a client cut closes the stream."""

    def __init__(self, http: httpx.AsyncClient, variant: Variant, recorder: Recorder) -> None:
        super().__init__(http, variant.max_tokens, variant.temperature)
        self.variant = variant
        self.recorder = recorder

    async def suggest(self, before: str) -> Attempt:
        attempt = Attempt(time.perf_counter())
        body = peer_body(self.variant, before, stream=True)
        self.task = asyncio.create_task(self._cut_stream(body, attempt))
        return attempt

    async def _cut_stream(self, body: dict[str, Any], attempt: Attempt) -> None:
        cut, stop_type = ClientCut(self.variant), ""
        async with self.http.stream("POST", "/completion", json=body) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = json.loads(line.removeprefix("data: "))
                shown = len(cut.text)
                ended = cut.add(pieces_of(data))
                if len(cut.text) > shown:
                    attempt.chunks.append((time.perf_counter(), cut.text[shown:]))
                stop_type = str(data.get("stop_type", ""))
                if ended or data.get("stop"):
                    break  # a cut leaves the stream: closing it stops the server
        attempt.ended = time.perf_counter()
        self.recorder.ended(attempt, cut.text, cut.reason or stop_type)
