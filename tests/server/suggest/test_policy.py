"""The suggestion policy: where no suggestion is asked for, what is dropped, and the request it makes."""

from __future__ import annotations

import pytest

from server.settings import Settings, SettingsError
from server.suggest.policy import NOTES_HEADER, Policy, final_text, quiet_here, to_request
from server.suggest.protocol import Suggest
from streaming.params import Span


def message(before: str, after: str = "", **settings: object) -> Suggest:
    return Suggest.model_validate(
        {"v": 1, "type": "suggest", "id": "a", "before": before, "after": after, "settings": settings}
    )


@pytest.mark.parametrize(
    ("before", "why"),
    [
        ("Read it at https://example.org/pa", "url"),
        ("Read it at http://", "url"),
        ("or www.example", "url"),
        ("[the report](https://example.org/r", "url"),
        ("[the report](", "url"),
        ("<https://example.org", "url"),
        ("mail <mailto:ann@exa", "url"),
        ("Type `git sta", "code"),
        ("Intro\n\n```python\nimport os\nos.pa", "code"),
        ("~~~\nplain code", "code"),
    ],
)
def test_no_suggestion_in_a_url_a_link_target_or_code(before: str, why: str) -> None:
    assert quiet_here(before) == why
    assert to_request(message(before), "s") is None


@pytest.mark.parametrize(
    "before",
    [
        "The island lay",
        "See [the report](https://example.org/r) for",  # past the link: prose again
        "We met at https://example.org yesterday and",  # a URL earlier on the line, finished
        "Type `git status` and",
        "```\ncode\n```\nBack to prose and",
        "a line with a `tick\nand a new line with",  # a code span does not cross lines
    ],
)
def test_prose_after_links_and_code_gets_suggestions(before: str) -> None:
    assert quiet_here(before) is None
    assert to_request(message(before), "s") is not None


def test_mid_paragraph_a_suggestion_never_breaks_into_a_new_one() -> None:
    at_end = to_request(message("The sea was calm and"), "s")
    on_empty_line = to_request(message("The sea was calm.\n\n"), "s")
    line_goes_on = to_request(message("The sea was", after=" calm today.\nNext"), "s")
    assert at_end is not None and at_end.stop == ("\n",)
    assert on_empty_line is not None and on_empty_line.stop == ("\n\n",)
    assert line_goes_on is not None and line_goes_on.stop == ("\n",)


def test_the_policy_travels_in_the_request() -> None:
    policy = Policy(
        confidence=0.4, run_confidence=0.1, span=Span.CLAUSE, no_repeat_ngram=4, repetition_penalty=1.2
    )
    request = to_request(message("The sea was", max_tokens=16, temperature=0), "s", policy=policy)
    assert request is not None
    assert (request.min_prob, request.min_run_prob, request.span) == (0.4, 0.1, Span.CLAUSE)
    assert (request.no_repeat_ngram, request.repetition_penalty, request.whole_words) == (4, 1.2, True)
    assert (request.max_new_tokens, request.temperature) == (16, 0)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (" and the tide came in.", " and the tide came in."),
        (" ", ""),
        (" ...", ""),
        ("", ""),
        (f" {NOTES_HEADER}", ""),  # the prompt's own scaffolding
        (" \n\n---\n\nAudience", ""),
        (" a hiring manager at a bank", ""),  # five words in a row from the notes: the brief restated
        (" a manager at the bank", " a manager at the bank"),
    ],
)
def test_final_text_drops_what_is_not_worth_showing(text: str, kept: str) -> None:
    notes = "Audience: a hiring manager at a bank. Tone: plain."
    assert final_text(text, "We wrote to", notes) == kept


def test_the_policy_comes_from_settings_and_bad_values_are_refused() -> None:
    env = {
        "COWRITE_SUGGEST_CONFIDENCE": "0.35",
        "COWRITE_SUGGEST_SPAN": "clause",
        "COWRITE_SUGGEST_NO_REPEAT": "0",
    }
    policy = Policy.from_settings(Settings.from_env(env))
    assert (policy.confidence, policy.span, policy.no_repeat_ngram) == (0.35, Span.CLAUSE, 0)
    for name, value in [
        ("COWRITE_SUGGEST_CONFIDENCE", "1.5"),
        ("COWRITE_SUGGEST_CONFIDENCE", "nan"),
        ("COWRITE_SUGGEST_CONFIDENCE", "-0.1"),
        ("COWRITE_SUGGEST_CONFIDENCE", "lots"),
        ("COWRITE_SUGGEST_RUN_CONFIDENCE", "1"),
        ("COWRITE_SUGGEST_SPAN", "paragraph"),
        ("COWRITE_SUGGEST_NO_REPEAT", "1"),
        ("COWRITE_SUGGEST_REPETITION_PENALTY", "0.5"),
        ("COWRITE_SUGGEST_REPETITION_PENALTY", "inf"),
    ]:
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: value})
