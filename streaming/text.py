"""Turning a growing list of token ids into safe text deltas, honouring stop strings.

Text is held back while it could still be the start of a stop string, or while it ends in an
incomplete UTF-8 sequence (and, in whole words, while its last word may go on), so a client never
sees text that later has to be taken back.
"""

from __future__ import annotations

import re
from typing import Protocol

REPLACEMENT = "\ufffd"
# a word still being written: letters and digits, with apostrophes and hyphens inside
OPEN_WORD = re.compile(r"[\w'’-]*\w$")
WORD_CHARACTER = re.compile(r"[\w'’-]")


class Decoder(Protocol):
    def decode(self, ids: list[int], skip_special_tokens: bool = ...) -> str: ...


class TextStream:
    """Text of one alternative, released in safe increments."""

    def __init__(
        self, decoder: Decoder, stop: tuple[str, ...], skip: int = 0, whole_words: bool = False
    ) -> None:
        self._decoder = decoder
        self._stop = stop
        self._skip = skip  # leading characters that are not part of the output (a healed prefix)
        self._whole_words = whole_words
        self._emitted = 0
        self.text = ""
        self.stopped = False

    def decode(self, ids: list[int]) -> str:
        """The text `ids` make, without releasing any of it."""
        return self._decoder.decode(ids, skip_special_tokens=True)[self._skip :]

    def push(self, ids: list[int], text: str | None = None) -> str:
        """Decode all of `ids` (or take their `text`, already decoded); return the newly safe text.
        Sets `stopped` at a stop string."""
        text = self.decode(ids) if text is None else text
        cut = self._find_stop(text)
        if cut is not None:
            self.stopped = True
            text = text[:cut]
            safe = len(text)
        else:
            safe = len(text) - self._held_back(text)
        self.text = text
        if safe <= self._emitted:
            return ""
        delta = text[self._emitted : safe]
        self._emitted = safe
        return delta

    def flush(self, complete: bool = True) -> str:
        """Release whatever was held back; the stream is over. In whole words, a last word that
        was not `complete` (it was cut off) is left out, and out of `text`."""
        if self._whole_words and not complete and not self.stopped:
            self.text = self.text[: max(self._emitted, len(self.text) - _open_word(self.text))]
        delta = self.text[self._emitted :]
        self._emitted = len(self.text)
        return delta

    def _find_stop(self, text: str) -> int | None:
        # a stop string may straddle the released text, so search a little before it
        longest = max((len(s) for s in self._stop), default=0)
        start = max(0, self._emitted - longest + 1)
        hits = [i for s in self._stop if (i := text.find(s, start)) >= 0]
        return min(hits) if hits else None

    def _held_back(self, text: str) -> int:
        held = 0
        while held < len(text) and text[len(text) - 1 - held] == REPLACEMENT:
            held += 1
        for stop in self._stop:
            for size in range(min(len(stop) - 1, len(text)), held, -1):
                if text.endswith(stop[:size]):
                    held = size
                    break
        if self._whole_words:
            held = max(held, _open_word(text))
        return held


def continues_word(piece: str) -> bool:
    """Whether text that begins with `piece` would go on the word before it (or may: "" says nothing)."""
    return not piece or WORD_CHARACTER.match(piece) is not None


def _open_word(text: str) -> int:
    """How many characters at the end of `text` are a word that may still go on."""
    match = OPEN_WORD.search(text)
    return len(match.group()) if match else 0
