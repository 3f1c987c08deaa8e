"""Where a continuation ends by itself: when the model stops being sure of it, where its sentence
ends, and which tokens would repeat it. Pure rules over text and probabilities, one per method.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from streaming.params import GenerationRequest, Span, Status

# how many of the prompt's last tokens a continuation may not copy n-grams from: about 200
# characters of English prose
REPEAT_WINDOW_TOKENS = 48
# the end of a sentence, or of a clause, with any closing quotes or brackets after it
SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")
CLAUSE_END = re.compile(r"(?:[.!?…,;:]|--|—)[\"'”’)\]]*$")
# "Mr. Darcy" is one sentence: a title's full stop ends nothing
ABBREVIATION = re.compile(
    r"(?:^|\W)(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|Rev|Capt|Col|Gen|Lt|No|vs|etc|e\.g|i\.e)\.$"
)


@dataclass
class StopRules:
    """The request's own endings, kept for one alternative as its tokens come."""

    min_prob: float = 0.0
    min_run_prob: float = 0.0
    span: Span = Span.FREE
    run_prob: float = 1.0

    @classmethod
    def of(cls, request: GenerationRequest) -> StopRules:
        return cls(request.min_prob, request.min_run_prob, request.span)

    def before(self, text: str, piece: str, prob: float) -> Status | None:
        """Whether to end the continuation `text` before a token that adds `piece` to it, drawn
        with probability `prob`: `unsure`, `sentence`, or None to take the token."""
        if self.span is not Span.FREE and self.ends_span(text, piece):
            return Status.SENTENCE
        if prob < self.min_prob or self.run_prob * prob < self.min_run_prob:
            return Status.UNSURE
        self.run_prob *= prob
        return None

    def ends_span(self, text: str, piece: str) -> bool:
        """`text` has finished a sentence (or clause), and `piece` starts the next one."""
        if not piece[:1].isspace() or not any(c.isalnum() for c in text):
            return False
        stripped = text.rstrip()
        if len(stripped) < len(text):
            return False  # the space already came: that token was taken, so this one is mid-span
        if ABBREVIATION.search(stripped):
            return False
        pattern = SENTENCE_END if self.span is Span.SENTENCE else CLAUSE_END
        return pattern.search(stripped) is not None


@dataclass
class RepeatGuard:
    """The words that would complete a word n-gram already in the continuation or just before it.

    Words are tokens as `Vocabulary.word` sees them (lowercased, without their space), so "It is
    a" at a sentence's start and " it is a" inside one are the same n-gram; spaces and
    punctuation are left out of the n-grams and never banned.
    """

    n: int
    seen: dict[tuple[str, ...], set[str]] = field(default_factory=dict)
    tail: list[str] = field(default_factory=list)  # the last n - 1 words

    @classmethod
    def over(cls, n: int, context: Sequence[str]) -> RepeatGuard:
        """A guard that already knows the n-grams of the words of the prompt's last tokens."""
        guard = cls(n)
        for word in context[-REPEAT_WINDOW_TOKENS:]:
            guard.add(word)
        return guard

    def add(self, word: str) -> None:
        if self.n < 2 or not word:
            return
        if len(self.tail) == self.n - 1:
            self.seen.setdefault(tuple(self.tail), set()).add(word)
            self.tail.pop(0)
        self.tail.append(word)

    def banned(self) -> Iterable[str]:
        """Words that would make the newest n-gram one already seen."""
        if len(self.tail) < self.n - 1:
            return ()
        return self.seen.get(tuple(self.tail), ())
