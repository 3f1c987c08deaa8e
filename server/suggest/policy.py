"""What a suggestion may show: how it ends (confidence, sentence end, repetition), where none is
asked for, and what is dropped before the writer sees it. Defaults chosen by `bench/quality/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.settings import Settings
from server.suggest.protocol import Suggest
from streaming.params import GenerationRequest, Span

# Notes for suggestions: the document's brief goes first, as a block that stays the same from one
# request to the next, so the engine's per-session prefix cache keeps it (docs/engine.md).
NOTES_HEADER = "Notes for this text:\n"
NOTES_SEPARATOR = "\n\n---\n\n"
# n > 1 asks for alternatives: at temperature 0 they would all be the same text, so they are
# sampled at this temperature at least (docs/protocol.md)
ALTERNATIVES_TEMPERATURE = 0.7
TIME_BUDGET_S = 20.0
# a suggestion that copies this many words in a row from the notes restates the brief: dropped
COPIED_WORDS = 5

# places in Markdown where a continuation of prose is noise: a URL being typed (bare, as a link's
# target or in angle brackets), an open inline code span, an open fenced code block
URL_AT_END = re.compile(r"(?:https?://|www\.|mailto:)\S*$|\]\([^)\s]*$|<[a-z][a-z0-9+.-]*:[^>\s]*$", re.I)
FENCE = re.compile(r"^\s{0,3}(```|~~~)", re.M)
WORD = re.compile(r"[\w'’]+")


@dataclass(frozen=True)
class Policy:
    """How suggestions end; the writer's frame gives the length and temperature."""

    confidence: float = 0.0  # the least probability of each token shown ("unsure" below it)
    # the least product of the tokens' probabilities: 0.5 kept word precision over 50% on every
    # book (docs/benchmarks.md, "Suggestions worth taking")
    run_confidence: float = 0.5
    span: Span = Span.SENTENCE
    no_repeat_ngram: int = 3
    repetition_penalty: float = 1.0
    whole_words: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            confidence=settings.suggest_confidence,
            run_confidence=settings.suggest_run_confidence,
            span=Span(settings.suggest_span),
            no_repeat_ngram=settings.suggest_no_repeat,
            repetition_penalty=settings.suggest_repetition_penalty,
        )


def prompt_with_notes(notes: str, before: str) -> str:
    """What the model reads: the notes, a separator, then the text before the cursor."""
    return f"{NOTES_HEADER}{notes}{NOTES_SEPARATOR}{before}" if notes else before


def quiet_here(before: str) -> str | None:
    """Why no suggestion belongs at the end of `before` (a URL, a link target, code), or None."""
    line = before[before.rfind("\n") + 1 :]
    if URL_AT_END.search(line):
        return "url"
    if len(FENCE.findall(before)) % 2 == 1:
        return "code"
    if line.count("`") % 2 == 1:
        return "code"
    return None


def to_request(
    message: Suggest, session: str, owner: str = "", notes: str = "", policy: Policy = Policy()
) -> GenerationRequest | None:
    """The engine request for a `suggest`; None when there is nothing to continue, or the cursor is
    somewhere prose does not go (`quiet_here`).

    The document's notes (if any) and then the whole text before the cursor are the prompt,
    token-healed: its last token (the half-typed word, or the space the writer paused after) is
    re-chosen by the first step.
    """
    before = message.before
    if not before.strip() or quiet_here(before) is not None:
        return None
    rest_of_line = message.after.split("\n", 1)[0]
    last_line = before[before.rfind("\n") + 1 :]
    # a suggestion never breaks into a new paragraph in the middle of one, nor runs past the end of
    # a line that goes on; on an empty line it may not run into the paragraph after
    stop = ("\n",) if rest_of_line.strip() or last_line.strip() else ("\n\n",)
    settings = message.settings
    temperature = (
        settings.temperature if settings.n == 1 else max(settings.temperature, ALTERNATIVES_TEMPERATURE)
    )
    return GenerationRequest(
        prompt=prompt_with_notes(notes, before),
        session=session,
        heal=True,
        max_new_tokens=settings.max_tokens,
        temperature=temperature,
        top_p=0.95 if temperature > 0 else 1.0,
        top_k=50 if temperature > 0 else 0,
        n=settings.n,
        stop=stop,
        time_budget_s=TIME_BUDGET_S,
        owner=owner,
        min_prob=policy.confidence,
        min_run_prob=policy.run_confidence,
        span=policy.span,
        no_repeat_ngram=policy.no_repeat_ngram,
        repetition_penalty=policy.repetition_penalty,
        whole_words=policy.whole_words,
    )


def final_text(text: str, before: str, notes: str = "") -> str:
    """What of a finished suggestion the writer may keep: "" for nothing worth showing (no words,
    or the brief or its header restated), else `text` unchanged."""
    if not WORD.search(text):
        return ""
    if NOTES_HEADER.strip() in text or NOTES_SEPARATOR.strip() in text.split():
        return ""
    if notes and _copies(text, notes, COPIED_WORDS):
        return ""
    return text


def _copies(text: str, source: str, run: int) -> bool:
    """Whether `text` has `run` words in a row that appear in a row in `source` (case ignored)."""
    words = [w.lower() for w in WORD.findall(text)]
    if len(words) < run:
        return False
    known = [w.lower() for w in WORD.findall(source)]
    runs = {tuple(known[i : i + run]) for i in range(len(known) - run + 1)}
    return any(tuple(words[i : i + run]) in runs for i in range(len(words) - run + 1))
