"""bench/quality/: its figures on hand-made pauses, its variants, and one small real offline run."""

from __future__ import annotations

import argparse
import random
import time

import pytest

from bench.common import ROOT
from bench.quality import (
    ClientCut,
    Judged,
    Recorder,
    Variant,
    books,
    offline,
    offline_figures,
    pieces_of,
    positions,
    reflow,
    repeats,
    server_env,
    variants,
    word_counts,
)
from bench.quality.figures import figures
from bench.quality.thresholds import continuations, cut_at, cut_text
from bench.writers import MISSED, Attempt
from server.suggest.policy import Policy, to_request
from server.suggest.protocol import Suggest, SuggestSettings
from streaming.engine import Engine, EngineLimits
from streaming.loader import load_model
from streaming.params import Span
from streaming.runner import ModelRunner
from streaming.vocabulary import Vocabulary


def test_precision_counts_words_up_to_the_first_that_differs() -> None:
    # "sat" is what the writer types too, but after a wrong word it is not a right one
    assert word_counts(" the cat sat", " the dog sat on", after_space=False, trailing_whole=True) == (1, 3)
    assert word_counts(" the dog sat", " the dog sat on", after_space=False, trailing_whole=True) == (3, 3)


def test_a_partial_trailing_word_is_not_a_whole_word() -> None:
    assert word_counts(" the cat sa", " the cat sat on", after_space=False, trailing_whole=False) == (2, 2)
    # where the text is known to end there, its last word is whole (and here wrong)
    assert word_counts(" the cat sa", " the cat sat on", after_space=False, trailing_whole=True) == (2, 3)


def test_a_word_the_writer_goes_on_typing_is_not_right() -> None:
    assert word_counts(" the cat", " the cats", after_space=False, trailing_whole=True) == (1, 2)
    assert word_counts(" the cat,", " the cat sat", after_space=False, trailing_whole=True) == (2, 2)


def test_after_a_space_a_leading_space_is_not_doubled() -> None:
    assert word_counts(" the cat", "the cat sat", after_space=True, trailing_whole=True) == (2, 2)
    # right after a word, the suggestion must bring the space itself
    assert word_counts("the cat", " the cat sat", after_space=False, trailing_whole=True) == (0, 2)
    # ... and one that glues letters onto the word is wrong from its first word
    assert word_counts("s sat", " sat on", after_space=False, trailing_whole=True) == (0, 2)


def test_repetition_within_a_suggestion() -> None:
    assert repeats(" and then and then and", "He said")
    assert not repeats(" and then she left the room", "He said")


def test_repetition_copied_from_just_before_the_cursor() -> None:
    before = "It was the worst of times, it was the"
    assert repeats(" worst of times again", before)
    assert not repeats(" best of times", before)
    # case and punctuation aside
    assert repeats(" The Worst, of times", "the worst of")


def test_repetition_only_within_the_last_200_characters() -> None:
    far = "the worst of times " + "x" * 300 + " and then"
    assert not repeats(" the worst of times", far)
    # an n-gram the context repeats by itself is not the suggestion's doing
    assert not repeats(" end", "it was the it was the")


def test_savings_take_one_tab_off_each_take() -> None:
    judged = [
        Judged(taken=10, right=2, whole=3, shown=True, repeated=False, typed=40),
        Judged(taken=0, right=0, whole=2, shown=True, repeated=True, typed=50),
        Judged(taken=0, right=0, whole=0, shown=False, repeated=False, typed=30),
    ]
    out = offline_figures(judged)
    assert out["keystroke_savings"] == pytest.approx(9 / 130)  # 40 + 10 + 50 + 30 characters
    assert out["word_precision"] == pytest.approx(2 / 5)
    assert out["take_share"] == pytest.approx(1 / 3)
    assert out["shown_share"] == pytest.approx(2 / 3)
    assert out["repetition_rate"] == pytest.approx(1 / 2)  # of the suggestions shown
    assert "first_text_p50_ms" not in out


def test_nothing_shown_leaves_precision_undefined() -> None:
    out = offline_figures([Judged(taken=0, right=0, whole=0, shown=False, repeated=False, typed=20)])
    assert out["word_precision"] is None
    assert out["repetition_rate"] is None
    assert out["keystroke_savings"] == 0.0


def test_knob_lists_run_their_cross_product() -> None:
    args = argparse.Namespace(
        policy=["default", "plain"],
        max_tokens=[8, 16],
        temperature=[],
        confidence=[0.0, 0.3],
        run_confidence=[],
        span=[],
        no_repeat=[],
        repetition_penalty=[],
    )
    chosen = variants(args)
    assert len(chosen) == 8
    assert chosen[0] == Variant(Policy(confidence=0.0), max_tokens=8)
    assert chosen[1].label == "max_tokens=8 confidence=0.3"
    assert {v.policy.span for v in chosen} == {Span.SENTENCE, Span.FREE}
    # llama-server plays only what it has: the repetition guard and whole words are not among it
    assert chosen[4].peer.label == "max_tokens=8 run_confidence=0 span=free"


def test_a_server_is_set_by_its_environment_or_refuses() -> None:
    env = server_env(Variant(Policy(confidence=0.3, span=Span.CLAUSE)))
    assert env["COWRITE_SUGGEST_CONFIDENCE"] == "0.3"
    assert env["COWRITE_SUGGEST_SPAN"] == "clause"
    assert server_env(Variant(Policy(run_confidence=0.1)))["COWRITE_SUGGEST_RUN_CONFIDENCE"] == "0.1"
    with pytest.raises(SystemExit):
        server_env(Variant(Policy(whole_words=False)))


def test_the_client_cut_ends_llama_servers_text_as_cowrite_would() -> None:
    pieces = [(" He", 0.9), (" went", 0.5), (" out", 0.9), (".", 0.9), (" She", 0.9)]
    cut = ClientCut(Variant(Policy(run_confidence=0.0)))
    assert cut.add(pieces)
    assert (cut.text, cut.reason) == (" He went out.", "sentence")
    unsure = ClientCut(Variant(Policy(confidence=0.6, run_confidence=0.0)))
    assert unsure.add(pieces)
    assert (unsure.text, unsure.reason) == (" He", "unsure")
    unsure_run = ClientCut(Variant())  # the default: the running product 0.9 * 0.5 falls below 0.5
    assert unsure_run.add(pieces)
    assert (unsure_run.text, unsure_run.reason) == (" He", "unsure")
    free = ClientCut(Variant(Policy(run_confidence=0.0, span=Span.FREE)))
    assert not free.add(pieces)
    assert free.text == " He went out. She"


def test_llama_servers_tokens_and_probabilities_are_read() -> None:
    def token(text: bytes, logprob: float) -> dict[str, object]:
        return {"token": "", "bytes": list(text), "logprob": logprob, "top_logprobs": []}

    quote = "“".encode()
    answer = {
        "content": " “He went",
        # the quote's bytes split over two tokens; the stop string's token is not in `content`
        "completion_probabilities": [
            token(b" " + quote[:1], -0.1),
            token(quote[1:], -0.2),
            token(b"He", -0.3),
            token(b" went", -2.0),
            token(b"\n\n", -0.5),
        ],
    }
    pieces = pieces_of(answer)
    assert [text for text, _ in pieces] == [" ", "“", "He", " went"]
    assert pieces[3][1] == pytest.approx(0.135, abs=1e-3)
    assert pieces_of({"content": " He went"}) == [(" He went", 1.0)]
    # a streamed chunk whose token's text was held back: nothing yet
    assert pieces_of({"content": "", "completion_probabilities": [token(b"\n", -0.1)]}) == []


class ScriptedSuggester:
    """A Suggester whose suggestions stream whatever the test appends to them."""

    async def prime(self, before: str) -> None:
        pass

    async def suggest(self, before: str) -> Attempt:
        return Attempt(time.perf_counter())

    async def stop(self) -> None:
        pass


async def test_a_suggestion_ended_before_the_writer_resumes_shows_its_final_text() -> None:
    recorder = Recorder()
    recorder.inner = ScriptedSuggester()
    attempt = await recorder.suggest("He saw ")
    attempt.chunks.append((time.perf_counter(), "the cat sat on the"))
    recorder.ended(attempt, "the cat", "sentence")  # the final filter took some back
    await recorder.stop()
    [judged] = recorder.judged("He saw the cat sat down", whole_words=True)
    assert (judged.taken, judged.right, judged.whole) == (7, 2, 2)
    assert judged.in_time and judged.first_text_s != MISSED


async def test_a_decision_to_show_nothing_is_an_answer_in_time_but_no_text() -> None:
    recorder = Recorder()
    recorder.inner = ScriptedSuggester()
    attempt = await recorder.suggest("He saw ")
    recorder.ended(attempt, "", "unsure")
    await recorder.stop()
    [judged] = recorder.judged("He saw the cat", whole_words=True)
    assert judged.in_time and not judged.shown
    assert judged.first_text_s == MISSED and 0 <= judged.answer_s < 1
    out = figures([judged], 10, online=True)
    assert out["answer_p50_ms"] == judged.answer_s * 1000
    assert out["first_text_p50_ms"] == out["shown_first_text_p50_ms"] == MISSED


async def test_what_streamed_is_what_the_writer_saw_when_they_resumed_first() -> None:
    recorder = Recorder()
    recorder.inner = ScriptedSuggester()
    attempt = await recorder.suggest("He saw ")
    attempt.chunks.append((time.perf_counter(), "the dog"))
    await recorder.stop()
    recorder.ended(attempt, "", "cancelled")  # after the writer typed on: too late to matter
    empty = await recorder.suggest("He saw the cat ")
    recorder.ended(empty, "", "finished")  # a decision to show nothing, in time
    await recorder.stop()
    seen, nothing = recorder.judged("He saw the cat sat down", whole_words=True)
    assert (seen.shown, seen.right, seen.whole, seen.in_time) == (True, 1, 2, True)
    assert (nothing.shown, nothing.in_time, nothing.first_text_s) == (False, True, MISSED)


def test_books_are_reflowed_as_a_writer_types_them() -> None:
    text = "*** START OF THE BOOK ***\nIt was the best\nof times.\n\n[Illustration]\n\nNext  one.\n*** END OF"
    assert reflow(text) == "It was the best of times.\n\nNext one."


def test_positions_end_where_a_writer_pauses() -> None:
    book = next(iter(books().values()))
    spots = positions(book, 10, random.Random(0))
    assert len(spots) == 10
    for spot in spots:
        cursor = book.index(spot.before + spot.upcoming)
        assert cursor > 0 and 1_000 <= len(spot.before) <= 2_000
        assert spot.before.endswith(" ") or spot.upcoming[:1] in (" ", "\n")  # after a space or a word
        assert 0 < spot.typed <= len(spot.before)


@pytest.mark.timeout(120)
async def test_a_small_real_offline_run() -> None:
    name, book = next(iter(books().items()))
    report = await offline({name: book}, [Variant(max_tokens=8)], count=3)
    assert list(report) == [name]
    figures = report[name]["max_tokens=8"]
    assert figures["pauses"] == 3
    for key in ("keystroke_savings", "word_precision", "take_share", "shown_share", "repetition_rate"):
        value = figures[key]
        assert value is None or 0.0 <= value <= 1.0, (key, value)
    assert figures["shown_share"] is not None


@pytest.mark.timeout(240)
async def test_the_one_pass_threshold_curve_matches_the_engine_at_that_threshold() -> None:
    """thresholds.py cuts one greedy continuation where a threshold would have: each cut must be
    the text the engine gives when asked with that threshold itself."""
    loaded = load_model(None, "auto", "auto", ROOT / "data" / "models")
    vocabulary = Vocabulary(loaded.tokenizer, loaded.model.config.vocab_size)
    name, book = next(iter(books().items()))
    spots = positions(book, 8, random.Random(f"0-{name}"))
    settings = SuggestSettings(max_tokens=24, temperature=0)
    async with Engine(ModelRunner(loaded.model), loaded.tokenizer, EngineLimits(crowded_rows=0)) as engine:
        found = await continuations(engine, loaded.tokenizer, vocabulary, spots, Policy(run_confidence=0.0))
        for threshold in (0.3, 0.5):
            for number, (spot, alternative, healed, stop) in enumerate(found):
                assert alternative is not None
                kept = cut_at(alternative.probs, "run", threshold)
                message = Suggest(v=1, type="suggest", id="x", before=spot.before, settings=settings)
                request = to_request(message, f"direct-{number}", "", "", Policy(run_confidence=threshold))
                assert request is not None
                direct = await (await engine.submit(request)).result()
                expected = direct.alternatives[0].text
                assert cut_text(alternative, kept, healed, stop, loaded.tokenizer) == expected
