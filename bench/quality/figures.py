"""The figures: one pause (one suggestion) judged against what the writer typed next, and the
report's figures over many pauses, as the package docstring defines them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bench.common import percentile
from bench.writers import MISSED, taken

UPCOMING_CHARS = 400  # what the writer types next, as far as any suggestion could reach
REPEAT_WINDOW = 200  # characters before the cursor that a suggestion may not repeat from
REPEAT_N = 3
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
# a trailing word is whole when the text ended by itself there; a token limit or a confidence cut
# may end it mid-word (Cowrite drops such a word when its policy says `whole_words`)
NATURAL_ENDS = {"finished", "stop", "sentence", "eos", "word"}


@dataclass(frozen=True)
class Judged:
    """One pause, judged against what the writer typed next."""

    taken: int  # characters taken with Tab
    right: int  # whole words on screen that the writer typed next, from the start
    whole: int  # whole words on screen
    shown: bool
    repeated: bool
    typed: int = 0  # offline: characters of the phrase typed before the pause
    first_text_s: float = MISSED  # online: from the request to the first text
    in_time: bool = False  # online: text, or a decision to show none, before the writer resumed
    answer_s: float = MISSED  # online: from the request to that text or decision


def on_screen(shown: str, after_space: bool) -> str:
    return shown.lstrip(" ") if after_space else shown  # as `taken`: no doubled space


def word_counts(shown: str, upcoming: str, after_space: bool, trailing_whole: bool) -> tuple[int, int]:
    """(right, whole): how many whole words `shown` holds, and how many of them, from its start to
    the first that differs, are exactly what the writer types next (`upcoming`)."""
    shown = on_screen(shown, after_space)
    right = whole = 0
    matching = True
    for word in WORD.finditer(shown):
        end = word.end()
        if end == len(shown) and not trailing_whole:
            break  # it may go on: not a whole word
        whole += 1
        if matching:
            typed = WORD.match(upcoming, word.start())
            matching = shown[:end] == upcoming[:end] and typed is not None and typed.end() == end
            right += int(matching)
    return right, whole


def repeats(shown: str, before: str, n: int = REPEAT_N) -> bool:
    """Whether `shown` holds a word n-gram seen before: in itself, or in the REPEAT_WINDOW
    characters before the cursor (one that runs across the cursor counts as the suggestion's)."""
    context = before[-REPEAT_WINDOW:]
    if len(before) > REPEAT_WINDOW and not before[-REPEAT_WINDOW - 1].isspace():
        context = context[len(context.split(maxsplit=1)[0]) :]  # a word cut in two is not a word
    words = [(w.group().lower(), w.end()) for w in WORD.finditer(context + shown)]
    seen: set[tuple[str, ...]] = set()
    for i in range(len(words) - n + 1):
        gram = tuple(word for word, _ in words[i : i + n])
        if words[i + n - 1][1] > len(context) and gram in seen:
            return True
        seen.add(gram)
    return False


def judge(shown: str, before: str, upcoming: str, trailing_whole: bool, **rest: Any) -> Judged:
    after_space = before.endswith(" ")
    right, whole = word_counts(shown, upcoming, after_space, trailing_whole)
    visible = bool(shown.strip())
    return Judged(
        taken=taken(shown, upcoming, after_space),
        right=right,
        whole=whole,
        shown=visible,
        repeated=visible and repeats(shown, before),
        **rest,
    )


def share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def figures(judged: list[Judged], characters: int, online: bool) -> dict[str, float | None]:
    """The report's figures over some pauses, `characters` being the text they produced."""
    shown = [j for j in judged if j.shown]
    out = {
        "pauses": float(len(judged)),
        "keystroke_savings": share(sum(max(0, j.taken - 1) for j in judged), characters),
        "word_precision": share(sum(j.right for j in judged), sum(j.whole for j in judged)),
        "take_share": share(sum(j.taken > 0 for j in judged), len(judged)),
        "shown_share": share(len(shown), len(judged)),
        "repetition_rate": share(sum(j.repeated for j in shown), len(shown)),
        "words_shown": float(sum(j.whole for j in judged)),
    }
    if online and judged:
        out["first_text_p50_ms"] = percentile([j.first_text_s for j in judged], 50) * 1000
        out["in_time_share"] = share(sum(j.in_time for j in judged), len(judged))
        out["answer_p50_ms"] = percentile([j.answer_s for j in judged], 50) * 1000
        # how soon text came where some did: with a confidence cut most pauses rightly show none
        with_text = [j.first_text_s for j in judged if j.first_text_s != MISSED]
        out["shown_first_text_p50_ms"] = percentile(with_text, 50) * 1000 if with_text else MISSED
    return out


def offline_figures(judged: list[Judged]) -> dict[str, float | None]:
    """The figures over offline pauses, whose text produced is each phrase typed and what was taken."""
    return figures(judged, sum(j.typed + j.taken for j in judged), online=False)
