"""What a caller asks of the engine, and what it gets back, as typed values.

`GenerationRequest` validates itself on construction: an out-of-range field raises
`InvalidRequest` naming that field.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, fields
from typing import Any

from streaming.errors import InvalidRequest

MAX_ALTERNATIVES = 4
MAX_STOP_STRINGS = 4
MAX_STOP_LENGTH = 64
MAX_NEW_TOKENS = 1024
MAX_TEMPERATURE = 2.0
MAX_TIME_BUDGET_S = 600.0
MAX_PREFIX = 64
MAX_NO_REPEAT_NGRAM = 8
MAX_REPETITION_PENALTY = 2.0


class Span(enum.StrEnum):
    """Where a continuation ends by itself, before its token limit."""

    FREE = "free"  # only at the token limit, a stop string or the end of the text
    SENTENCE = "sentence"  # at the end of the sentence it is in
    CLAUSE = "clause"  # at the end of the clause it is in (a comma, semicolon, colon or dash)


class Status(enum.StrEnum):
    """How a generation, or one of its alternatives, ended."""

    FINISHED = "finished"  # the model produced its end-of-sequence token
    LENGTH = "length"  # max_new_tokens reached
    TIME = "time"  # the request's time budget ran out
    STOP = "stop"  # a stop string was produced (it is not part of the text)
    UNSURE = "unsure"  # the next token was less likely than the request's confidence allows
    SENTENCE = "sentence"  # the sentence (or clause) ended, as the request's `span` asks
    CANCELLED = "cancelled"  # cancelled by id, or its client went away
    SUPERSEDED = "superseded"  # a newer request under the same session key replaced it
    BUSY = "busy"  # the engine's queue was full (or it is restarting); nothing was generated
    LIMITED = "limited"  # the request's owner already has its most requests or rows in the engine
    ERROR = "error"  # the model failed on this request; see `Completion.error`


@dataclass(frozen=True)
class Endings:
    """A request's own endings and repetition rules, as they travel to an engine tier."""

    min_prob: float = 0.0
    min_run_prob: float = 0.0
    span: Span = Span.FREE
    no_repeat_ngram: int = 0
    repetition_penalty: float = 1.0
    whole_words: bool = False

    def fields(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def of(cls, request: GenerationRequest) -> Endings:
        return cls(**{f.name: getattr(request, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to continue, `n` ways, under a session key that enables prefix reuse.

    `owner` is an opaque key (the server puts its user there) by which the engine shares itself
    fairly: per-owner caps on requests, rows and cached sessions, and round-robin admission.
    Requests without an owner are not capped.
    """

    prompt: str
    session: str
    max_new_tokens: int = 32
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    n: int = 1
    stop: tuple[str, ...] = ()
    time_budget_s: float = 30.0
    keep_session: bool = True  # keep this session's KV after the request for prefix reuse
    # text the continuation must begin with, left out of the output: the part of a word already
    # typed, cut from the prompt so that the model sees whole tokens ("token healing")
    prefix: str = ""
    owner: str = ""
    # token healing: the prompt's last token is taken off and the first token sampled must begin
    # with its text, so a pause in the middle of a token costs one step, not a stuck boundary
    heal: bool = False
    # how it ends: before the first token less likely than `min_prob`, or before the token that
    # takes the product of the tokens' probabilities below `min_run_prob` (`unsure`); where its
    # sentence or clause ends (`span`, status `sentence`). Probabilities are the model's own
    # (temperature 1), before any repetition rule.
    min_prob: float = 0.0
    min_run_prob: float = 0.0
    span: Span = Span.FREE
    # repetition: never complete a token n-gram already in the continuation or the prompt's last
    # tokens (0: off), and divide the odds of tokens seen there by `repetition_penalty`
    no_repeat_ngram: int = 0
    repetition_penalty: float = 1.0
    # release text in whole words only; a word cut off by the token limit, the time budget or an
    # unsure token is left out
    whole_words: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt:
            raise InvalidRequest("prompt", "must be a non-empty string")
        if not isinstance(self.session, str) or not self.session:
            raise InvalidRequest("session", "must be a non-empty string")
        _check_int("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS)
        _check_float("temperature", self.temperature, 0.0, MAX_TEMPERATURE)
        _check_float("top_p", self.top_p, 0.0, 1.0)
        if self.top_p == 0.0:
            raise InvalidRequest("top_p", "must be greater than 0")
        _check_int("top_k", self.top_k, 0, 1_000_000)
        if self.seed is not None:
            _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_int("n", self.n, 1, MAX_ALTERNATIVES)
        if not isinstance(self.stop, tuple) or len(self.stop) > MAX_STOP_STRINGS:
            raise InvalidRequest("stop", f"must be at most {MAX_STOP_STRINGS} strings")
        for item in self.stop:
            if not isinstance(item, str) or not 0 < len(item) <= MAX_STOP_LENGTH:
                raise InvalidRequest("stop", f"each must be 1 to {MAX_STOP_LENGTH} characters")
        _check_float("time_budget_s", self.time_budget_s, 0.0, MAX_TIME_BUDGET_S)
        if not isinstance(self.prefix, str) or len(self.prefix) > MAX_PREFIX:
            raise InvalidRequest("prefix", f"must be a string of at most {MAX_PREFIX} characters")
        if self.time_budget_s == 0.0:
            raise InvalidRequest("time_budget_s", "must be greater than 0")
        if not isinstance(self.owner, str):
            raise InvalidRequest("owner", "must be a string")
        if not isinstance(self.heal, bool):
            raise InvalidRequest("heal", "must be true or false")
        if self.heal and self.prefix:
            raise InvalidRequest("heal", "cannot be combined with a prefix")
        _check_float("min_prob", self.min_prob, 0.0, 1.0)
        _check_float("min_run_prob", self.min_run_prob, 0.0, 1.0)
        if not isinstance(self.span, Span):
            raise InvalidRequest("span", f"must be one of {', '.join(Span)}")
        _check_int("no_repeat_ngram", self.no_repeat_ngram, 0, MAX_NO_REPEAT_NGRAM)
        if self.no_repeat_ngram == 1:
            raise InvalidRequest("no_repeat_ngram", "must be 0 (off) or at least 2")
        _check_float("repetition_penalty", self.repetition_penalty, 1.0, MAX_REPETITION_PENALTY)
        if not isinstance(self.whole_words, bool):
            raise InvalidRequest("whole_words", "must be true or false")


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequest(name, f"must be an integer from {low} to {high}")


def _check_float(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(name, f"must be a number from {low} to {high}")
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidRequest(name, f"must be a number from {low} to {high}")


@dataclass(frozen=True)
class Delta:
    """New text for alternative `index`, as it is decoded; `tokens` counts its tokens so far."""

    index: int
    text: str
    tokens: int = 0


@dataclass
class Alternative:
    """One of a request's `n` continuations, complete."""

    index: int
    text: str = ""
    tokens: list[int] = field(default_factory=list)
    status: Status | None = None
    probs: list[float] = field(default_factory=list)  # each token's probability, as the model gave it


@dataclass
class Completion:
    """A request's final outcome, with timings taken by the engine."""

    id: str
    status: Status
    alternatives: list[Alternative]
    prompt_tokens: int = 0
    reused_tokens: int = 0
    ttft_s: float | None = None
    total_s: float = 0.0
    error: str | None = None
    # the engine was busy when it took the request: fewer tokens and one alternative, not a refusal
    shortened: bool = False
