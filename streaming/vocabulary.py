"""Each token's text, for constraining a continuation to begin with a given prefix.

Used for token healing: the prompt's last token is taken off, and the first token sampled must
begin with its text, so the model is not stuck behind a token boundary the writer's pause put
there ("The cat sat on the ma" continues as " mat", not " ma" + "t"). `restrict` is the older,
multi-token form: any prefix, spelled out over as many steps as it takes.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

import torch

HEAL_CACHE = 4096  # tokens whose healing candidates are kept


class Decoder(Protocol):
    def decode(self, ids: list[int], skip_special_tokens: bool = ...) -> str: ...


class Vocabulary:
    """Token texts, indexed by first character; built on first use (about a second)."""

    def __init__(self, decoder: Decoder, size: int) -> None:
        self._decoder = decoder
        self._size = size
        self._texts: list[str] = []
        self._by_first: dict[str, list[int]] = {}
        self._heal_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._by_word: dict[str, list[int]] = {}

    def _build(self) -> None:
        texts = [self._decoder.decode([i], skip_special_tokens=True) for i in range(self._size)]
        by_first: dict[str, list[int]] = defaultdict(list)
        for token, text in enumerate(texts):
            if text and "\ufffd" not in text:
                by_first[text[0]].append(token)
        by_word: dict[str, list[int]] = defaultdict(list)
        for token, text in enumerate(texts):
            if word := word_of(text):
                by_word[word].append(token)
        self._texts, self._by_first, self._by_word = texts, dict(by_first), dict(by_word)

    def word(self, token: int) -> str:
        """The token as a repetition rule sees it: its letters, lowercased, without the space
        before it ("" for spaces and punctuation, which repeat freely)."""
        return word_of(self.text(token))

    def spelling(self, word: str) -> list[int]:
        """Every token that is `word` as `word()` sees it (" It", "it", " it", ...)."""
        if not self._texts:
            self._build()
        return self._by_word.get(word, [])

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

    def text(self, token: int) -> str:
        """The token's text alone."""
        if not self._texts:
            self._build()
        return self._texts[token] if 0 <= token < len(self._texts) else ""

    def healable(self, token: int) -> bool:
        """Whether a prompt's last token can be healed: a whole, printable piece of text."""
        text = self.text(token)
        return bool(text) and "\ufffd" not in text

    def heal(self, logits: torch.Tensor, token: int) -> torch.Tensor:
        """Logits for the healed step: only tokens that begin with `token`'s whole text survive.

        The typed text is never cut short, so healing costs exactly one step. A token that glues
        letters onto a word the writer ended with a letter ("and" -> "andy") survives only if the
        model finds it likelier than the word as typed: a finished word stays finished unless the
        model clearly reads it as unfinished (" ma" -> " mat").
        """
        keep, glued = self._extensions(token)
        masked = torch.full_like(logits, float("-inf"))
        masked[token] = logits[token]
        if keep.numel():
            masked[keep] = logits[keep]
        if glued.numel():
            likelier = glued[logits[glued] >= logits[token]]
            masked[likelier] = logits[likelier]
        return masked

    def _extensions(self, token: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The other tokens that begin with `token`'s text: those that do not glue letters onto
        it, and those that do. Cached per token (a writer pauses on the same few often)."""
        cached = self._heal_cache.get(token)
        if cached is None:
            text = self.text(token)
            keep: list[int] = []
            glued: list[int] = []
            for candidate in self._by_first.get(text[0], []):
                other = self._texts[candidate]
                if candidate != token and len(other) > len(text) and other.startswith(text):
                    glues = text[-1].isalpha() and other[len(text)].isalpha()
                    (glued if glues else keep).append(candidate)
            cached = torch.tensor(keep, dtype=torch.long), torch.tensor(glued, dtype=torch.long)
            if len(self._heal_cache) >= HEAL_CACHE:
                self._heal_cache.pop(next(iter(self._heal_cache)))
            self._heal_cache[token] = cached
        return cached

    def consume(self, prefix: str, token: int) -> str:
        """What is left of `prefix` after `token`."""
        text = self._texts[token] if self._texts else self._decoder.decode([token])
        return prefix[len(text) :] if prefix.startswith(text) else ""


def word_of(text: str) -> str:
    """A token's text as a repetition rule compares it: lowercased, stripped; "" without letters."""
    stripped = text.strip().lower()
    return stripped if any(c.isalnum() for c in stripped) and "\ufffd" not in stripped else ""
