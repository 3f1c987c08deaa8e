"""Each token's text, for constraining a continuation to begin with a given prefix.

Used for token healing: the writer's half-typed word is cut from the prompt, and the first
tokens sampled must spell it out again, so the model reads whole tokens and completes the word.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

import torch


class Decoder(Protocol):
    def decode(self, ids: list[int], skip_special_tokens: bool = ...) -> str: ...


class Vocabulary:
    """Token texts, indexed by first character; built on first use (about a second)."""

    def __init__(self, decoder: Decoder, size: int) -> None:
        self._decoder = decoder
        self._size = size
        self._texts: list[str] = []
        self._by_first: dict[str, list[int]] = {}

    def _build(self) -> None:
        texts = [self._decoder.decode([i], skip_special_tokens=True) for i in range(self._size)]
        by_first: dict[str, list[int]] = defaultdict(list)
        for token, text in enumerate(texts):
            if text and "\ufffd" not in text:
                by_first[text[0]].append(token)
        self._texts, self._by_first = texts, dict(by_first)

    def allowed(self, prefix: str) -> list[int]:
        """Tokens that are a start of `prefix` or begin with all of it."""
        assert prefix
        if not self._texts:
            self._build()
        return [
            token
            for token in self._by_first.get(prefix[0], [])
            if prefix.startswith(self._texts[token]) or self._texts[token].startswith(prefix)
        ]

    def restrict(self, logits: torch.Tensor, prefix: str) -> torch.Tensor:
        """Logits with every token that cannot continue `prefix` masked out (unchanged if none can)."""
        allowed = self.allowed(prefix)
        if not allowed:
            return logits
        masked = torch.full_like(logits, float("-inf"))
        index = torch.tensor(allowed)
        masked[index] = logits[index]
        return masked

    def consume(self, prefix: str, token: int) -> str:
        """What is left of `prefix` after `token`."""
        text = self._texts[token] if self._texts else self._decoder.decode([token])
        return prefix[len(text) :] if prefix.startswith(text) else ""
