"""The stop rules on scripted token streams: confidence, sentence and clause ends, repetition."""

from __future__ import annotations

import pytest

from streaming.params import Span, Status
from streaming.stopping import RepeatGuard, StopRules
from streaming.vocabulary import word_of


def run(rules: StopRules, pieces: list[tuple[str, float]]) -> tuple[str, Status | None]:
    """Feed (text, probability) tokens to `rules` as the engine does: the text so far, and how it ended."""
    text = ""
    for piece, prob in pieces:
        ending = rules.before(text, piece, prob)
        if ending is not None:
            return text, ending
        text += piece
    return text, None


SURE_THEN_NOT = [(" the", 0.9), (" cat", 0.8), (" sat", 0.2), (" down", 0.9)]


def test_the_first_token_below_the_threshold_ends_it_as_unsure() -> None:
    assert run(StopRules(min_prob=0.3), SURE_THEN_NOT) == (" the cat", Status.UNSURE)


def test_an_unsure_first_token_shows_nothing() -> None:
    assert run(StopRules(min_prob=0.5), [(" Perhaps", 0.2), (" not", 0.9)]) == ("", Status.UNSURE)


def test_no_threshold_takes_every_token() -> None:
    assert run(StopRules(), SURE_THEN_NOT) == (" the cat sat down", None)


def test_the_running_product_ends_it_where_the_whole_becomes_unlikely() -> None:
    # 0.9 * 0.8 = 0.72, then * 0.7 = 0.504 < 0.6: each token alone is likely enough
    pieces = [(" the", 0.9), (" cat", 0.8), (" sat", 0.7), (" down", 0.99)]
    assert run(StopRules(min_run_prob=0.6), pieces) == (" the cat", Status.UNSURE)
    assert run(StopRules(min_prob=0.6), pieces) == (" the cat sat down", None)


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        ([(" and", 1.0), (" left", 1.0), (".", 1.0), (" She", 1.0)], " and left."),
        ([(" he", 1.0), (" cried", 1.0), ('!"', 1.0), (" and", 1.0)], ' he cried!"'),
        ([(" What", 1.0), ("?", 1.0), ("’", 1.0), (" said", 1.0)], " What?’"),
    ],
)
def test_a_sentence_span_ends_where_the_next_sentence_would_begin(
    pieces: list[tuple[str, float]], expected: str
) -> None:
    assert run(StopRules(span=Span.SENTENCE), pieces) == (expected, Status.SENTENCE)


def test_a_title_is_not_the_end_of_a_sentence() -> None:
    pieces = [(" said", 1.0), (" Mr", 1.0), (".", 1.0), (" Darcy", 1.0), (".", 1.0), (" Then", 1.0)]
    assert run(StopRules(span=Span.SENTENCE), pieces) == (" said Mr. Darcy.", Status.SENTENCE)


def test_a_full_stop_inside_a_number_or_word_does_not_end_it() -> None:
    pieces = [(" it", 1.0), (" cost", 1.0), (" 3", 1.0), (".", 1.0), ("50", 1.0), (" pounds", 1.0)]
    assert run(StopRules(span=Span.SENTENCE), pieces) == (" it cost 3.50 pounds", None)


def test_a_writer_who_paused_after_a_full_stop_gets_the_next_sentence() -> None:
    # the continuation so far has no words: the full stop before it is the writer's
    pieces = [(" The", 1.0), (" end", 1.0), (".", 1.0), (" More", 1.0)]
    assert run(StopRules(span=Span.SENTENCE), pieces) == (" The end.", Status.SENTENCE)


def test_a_clause_span_ends_at_a_comma_and_a_free_one_does_not() -> None:
    pieces = [(" and", 1.0), (" so", 1.0), (",", 1.0), (" she", 1.0), (" left", 1.0)]
    assert run(StopRules(span=Span.CLAUSE), pieces) == (" and so,", Status.SENTENCE)
    assert run(StopRules(span=Span.SENTENCE), pieces) == (" and so, she left", None)
    assert run(StopRules(span=Span.FREE), [*pieces, (".", 1.0), (" He", 1.0)]) == (
        " and so, she left. He",
        None,
    )


def test_the_sentence_end_comes_before_an_unsure_token() -> None:
    pieces = [(" yes", 0.9), (".", 0.9), (" But", 0.01)]
    assert run(StopRules(min_prob=0.5, span=Span.SENTENCE), pieces) == (" yes.", Status.SENTENCE)


def test_the_repeat_guard_bans_what_would_repeat_a_trigram_of_the_continuation() -> None:
    guard = RepeatGuard.over(3, [])
    for word in ["the", "ship", "'s", "ship", "'s"]:  # " the ship's ship's"
        guard.add(word)
    assert set(guard.banned()) == {"ship"}  # " ship's ship" again: the loop writers saw


def test_the_repeat_guard_bans_copying_the_text_just_before() -> None:
    # "The crew was busy, and" -> "the crew was" would copy the context's trigram back
    guard = RepeatGuard.over(3, ["the", "crew", "was", "busy", ""])
    guard.add("the")
    assert set(guard.banned()) == set()  # one word of history is no bigram yet
    guard.add("crew")
    assert set(guard.banned()) == {"was"}
    guard.add("ship")
    assert set(guard.banned()) == set()


def test_spaces_and_punctuation_are_not_words_to_the_guard() -> None:
    guard = RepeatGuard.over(3, ["it", "is", "a", "tale", ""])
    for word in ["", "it", "", "is"]:
        guard.add(word)
    assert set(guard.banned()) == {"a"}


def test_the_repeat_guard_only_looks_a_window_back() -> None:
    old = ["the", "crew", "was"] + [f"w{i}" for i in range(60)]
    guard = RepeatGuard.over(3, old)
    guard.add("the")
    guard.add("crew")
    assert set(guard.banned()) == set()  # "the crew was" is ~60 words back: past the window


def test_a_token_is_a_word_without_its_space_and_case() -> None:
    assert [word_of(t) for t in [" It", "it", " IT", "'s", " ", ".", ",\n", "\ufffd"]] == [
        "it",
        "it",
        "it",
        "'s",
        "",
        "",
        "",
        "",
    ]
