"""Turning a growing list of token ids into safe text deltas, honouring stop strings.

Text is held back while it could still be the start of a stop string, or while it ends in an
incomplete UTF-8 sequence, so a client never sees text that later has to be taken back.
"""

from __future__ import annotations

from typing import Protocol

REPLACEMENT = "\ufffd"


class Decoder(Protocol):
    def decode(self, ids: list[int], skip_special_tokens: bool = ...) -> str: ...


class TextStream:
    """Text of one alternative, released in safe increments."""

    def __init__(self, decoder: Decoder, stop: tuple[str, ...], skip: int = 0) -> None:
        self._decoder = decoder
        self._stop = stop
        self._skip = skip  # leading characters that are not part of the output (a healed prefix)
        self._emitted = 0
        self.text = ""
        self.stopped = False

    def push(self, ids: list[int]) -> str:
        """Decode all of `ids`; return the newly safe text. Sets `stopped` at a stop string."""
        text = self._decoder.decode(ids, skip_special_tokens=True)[self._skip :]
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

    def flush(self) -> str:
        """Release whatever was held back; the stream is over."""
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
        return held
