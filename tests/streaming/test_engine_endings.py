"""How a continuation ends, on the real bundled model: the loops writers saw, confidence, sentence
ends, whole words, the probabilities reported, and shorter suggestions under load."""

from __future__ import annotations

import asyncio
import re

import pytest

from streaming.engine import Engine
from streaming.loader import LoadedModel
from streaming.params import GenerationRequest, Span, Status
from tests.streaming.conftest import complete, make_engine

pytestmark = pytest.mark.timeout(240)

# prompts on which the bundled model loops when nothing stops it (greedy)
LOOPING = [
    "It is a story. It is a tale of the sea. It is a tale",
    "We reached the island at noon. The water was clear and",
]


def repeated_trigram(text: str, context: str = "") -> bool:
    """Whether `text` repeats a word 3-gram of itself or of the last 200 characters of `context`."""
    words = re.findall(r"[\w'’]+", text.lower())
    known = re.findall(r"[\w'’]+", context[-200:].lower())
    seen = {tuple(known[i : i + 3]) for i in range(len(known) - 2)}
    for i in range(len(words) - 2):
        gram = tuple(words[i : i + 3])
        if gram in seen:
            return True
        seen.add(gram)
    return False


@pytest.mark.parametrize("prompt", LOOPING)
async def test_a_prompt_that_loops_does_not_loop_with_no_repeat_ngrams(engine: Engine, prompt: str) -> None:
    loose = await complete(engine, GenerationRequest(prompt, "loose", max_new_tokens=32))
    assert repeated_trigram(loose.alternatives[0].text, prompt), "the prompt no longer loops: pick another"
    guarded = await complete(
        engine, GenerationRequest(prompt, "guarded", max_new_tokens=32, no_repeat_ngram=3)
    )
    text = guarded.alternatives[0].text
    assert text.strip()
    assert not repeated_trigram(text, prompt), text


async def test_an_unsure_first_token_gives_no_text(engine: Engine) -> None:
    request = GenerationRequest("The weather today", "unsure", max_new_tokens=8, min_prob=0.999)
    completion = await complete(engine, request)
    assert completion.status is Status.UNSURE
    assert completion.alternatives[0].text == ""
    assert completion.alternatives[0].tokens == []


async def test_confidence_cuts_where_a_token_falls_below_it(engine: Engine) -> None:
    prompt = "It is a truth universally acknowledged, that a single man in possession of a good fortune"
    free = await complete(engine, GenerationRequest(prompt, "free", max_new_tokens=12))
    probs = free.alternatives[0].probs
    assert len(probs) == len(free.alternatives[0].tokens) and all(0.0 < p <= 1.0 for p in probs)
    threshold = sorted(probs)[len(probs) // 2]  # the median: some tokens are below it
    cut = await complete(engine, GenerationRequest(prompt, "cut", max_new_tokens=12, min_prob=threshold))
    kept = cut.alternatives[0]
    assert cut.status is Status.UNSURE
    first_below = next(i for i, p in enumerate(probs) if p < threshold)
    assert kept.tokens == free.alternatives[0].tokens[:first_below]


async def test_a_sentence_span_ends_at_the_end_of_the_sentence(engine: Engine) -> None:
    prompt = "We reached the island at noon. The water was clear and"
    completion = await complete(
        engine, GenerationRequest(prompt, "span", max_new_tokens=48, span=Span.SENTENCE)
    )
    text = completion.alternatives[0].text
    assert completion.status is Status.SENTENCE, text
    assert re.search(r"[.!?][\"'”’)]*$", text), text
    assert not re.search(r"[.!?]\s+\w", text), text  # one sentence, not the next one too


async def test_whole_words_never_end_in_a_cut_off_word(engine: Engine) -> None:
    prompt = "The committee considered the extraordinarily complicated"
    for tokens in range(1, 7):
        request = GenerationRequest(prompt, f"w{tokens}", max_new_tokens=tokens, whole_words=True)
        completion = await complete(engine, request)
        free = await complete(engine, GenerationRequest(prompt, f"f{tokens}", max_new_tokens=tokens + 1))
        text, longer = completion.alternatives[0].text, free.alternatives[0].text
        assert longer.startswith(text)
        # what is kept ends where a word ends in the longer continuation
        ends_word = not re.search(r"\w$", text) or not re.match(r"\w", longer[len(text) : len(text) + 1])
        assert ends_word, (text, longer)


async def test_a_crowded_engine_shortens_new_requests_instead_of_refusing(loaded_model: LoadedModel) -> None:
    async with make_engine(loaded_model, crowded_rows=2, short_tokens=3) as engine:
        first = await engine.submit(
            GenerationRequest("Once upon a time", "a", max_new_tokens=40, n=2, seed=1, temperature=0.7)
        )
        second = await engine.submit(
            GenerationRequest("In the beginning", "b", max_new_tokens=40, n=2, seed=2, temperature=0.7)
        )
        done = await asyncio.gather(first.result(), second.result())
    assert not done[0].shortened and len(done[0].alternatives) == 2
    assert done[1].shortened and done[1].status is not Status.BUSY
    assert len(done[1].alternatives) == 1 and len(done[1].alternatives[0].tokens) <= 3
