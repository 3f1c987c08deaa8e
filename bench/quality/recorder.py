"""What a simulated writer saw: their suggester watched pause by pause, and each pause they
resumed from judged by what was on screen at that moment."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.quality.figures import NATURAL_ENDS, UPCOMING_CHARS, Judged, judge
from bench.writers import MISSED, Attempt, Suggester


@dataclass
class Heard:
    """One pause as the writer lived it: the text so far, the suggestion, when they resumed."""

    before: str
    attempt: Attempt
    resumed: float | None = None
    first_at: float | None = None  # the first text, as it streamed (a `done` may take it back)
    final: tuple[str, str] | None = None  # (text, reason) of a suggestion ended before resuming
    ended_at: float | None = None  # when that `done` came


class Recorder:
    """A writer's suggester, watched. A suggestion that ends before the writer resumes shows its
    final text from then on, as the editor does, so what type_and_pause takes is what was shown."""

    def __init__(self) -> None:
        self.inner: Suggester | None = None
        self.heard: list[Heard] = []

    async def prime(self, before: str) -> None:
        assert self.inner is not None, "set `inner` first"
        await self.inner.prime(before)

    async def suggest(self, before: str) -> Attempt:
        assert self.inner is not None, "set `inner` first"
        attempt = await self.inner.suggest(before)
        self.heard.append(Heard(before, attempt))
        return attempt

    async def stop(self) -> None:
        assert self.inner is not None, "set `inner` first"
        if self.heard and self.heard[-1].resumed is None:
            self.heard[-1].resumed = time.perf_counter()
        await self.inner.stop()

    def ended(self, attempt: Attempt, text: str, reason: str) -> None:
        """`attempt` ended with `text`, final, for `reason`."""
        heard = self.heard[-1] if self.heard and self.heard[-1].attempt is attempt else None
        if heard is None or heard.resumed is not None:
            return  # ended by the writer's typing: what streamed is what they saw
        heard.first_at, heard.final = attempt.first_text(), (text, reason)
        heard.ended_at = time.perf_counter()
        if "".join(chunk for _, chunk in attempt.chunks) != text:
            at = attempt.chunks[0][0] if attempt.chunks else time.perf_counter()
            attempt.chunks[:] = [(at, text)] if text else []

    def judged(self, full: str, whole_words: bool) -> list[Judged]:
        """Every pause the writer resumed from, against `full`, the text they were typing."""
        out = []
        for heard in self.heard:
            if heard.resumed is None:
                continue
            first = heard.first_at if heard.final is not None else heard.attempt.first_text()
            on_time = first is not None and first <= heard.resumed
            reason = heard.final[1] if heard.final is not None else ""
            # answered: text on screen, or else the decision to show none, before the writer resumed
            answered = first if on_time else heard.ended_at
            before = heard.before
            out.append(
                judge(
                    heard.attempt.shown_by(heard.resumed),
                    before,
                    full[len(before) : len(before) + UPCOMING_CHARS],
                    whole_words or reason in NATURAL_ENDS,
                    first_text_s=first - heard.attempt.sent if first is not None and on_time else MISSED,
                    in_time=on_time or heard.final is not None,
                    answer_s=MISSED if answered is None else answered - heard.attempt.sent,
                )
            )
        return out
