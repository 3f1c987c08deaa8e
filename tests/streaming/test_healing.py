"""Token healing: the prompt's last token is re-chosen by the first step, and only that step."""

from __future__ import annotations

import pytest
import torch

from streaming.engine import Engine
from streaming.errors import InvalidRequest
from streaming.params import GenerationRequest
from streaming.vocabulary import Vocabulary
from tests.streaming.conftest import PROSE, complete, prose

pytestmark = pytest.mark.timeout(240)

TEXTS = [" and", " andy", " and,", " an", "d", " the", " them", " the.", "x"]


class ListDecoder:
    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(TEXTS[i] for i in ids)


def vocabulary() -> Vocabulary:
    return Vocabulary(ListDecoder(), len(TEXTS))


def surviving(logits: torch.Tensor) -> set[str]:
    return {TEXTS[i] for i in torch.nonzero(torch.isfinite(logits)).flatten().tolist()}


def test_only_tokens_that_begin_with_the_whole_healed_token_survive() -> None:
    logits = torch.zeros(len(TEXTS))
    # " an" and "d" would spell " and" over two steps: healing never cuts the typed text short
    assert surviving(vocabulary().heal(logits, TEXTS.index(" and"))) == {" and", " andy", " and,"}


def test_a_finished_word_is_extended_only_when_the_model_finds_that_likelier() -> None:
    vocab = vocabulary()
    and_ = TEXTS.index(" and")
    logits = torch.zeros(len(TEXTS))
    logits[TEXTS.index(" andy")] = -1.0  # less likely than the word as typed: letters are not glued on
    assert surviving(vocab.heal(logits, and_)) == {" and", " and,"}
    logits[TEXTS.index(" andy")] = 2.0  # likelier: the model reads the word as unfinished
    assert surviving(vocab.heal(logits, and_)) == {" and", " andy", " and,"}


def test_healed_logits_keep_their_values() -> None:
    logits = torch.arange(len(TEXTS), dtype=torch.float32)
    healed = vocabulary().heal(logits, TEXTS.index(" the"))
    for text in (" the", " them", " the."):
        assert healed[TEXTS.index(text)] == logits[TEXTS.index(text)]


def test_heal_and_prefix_cannot_be_combined() -> None:
    with pytest.raises(InvalidRequest) as caught:
        GenerationRequest("It is", "s", heal=True, prefix=" a")
    assert caught.value.field == "heal"


async def first_visible(engine: Engine, request: GenerationRequest) -> tuple[str, int]:
    """The first text delta of a request, and how many tokens had been generated for it."""
    async with await engine.submit(request) as generation:
        async for delta in generation:
            if delta.text:
                return delta.text, delta.tokens
    raise AssertionError("no text came")


@pytest.mark.parametrize(
    "text",
    [
        prose(0, 300),  # a pause after a whole word
        prose(0, 300) + " ",  # after a space
        prose(0, 300) + " th",  # in the middle of a word
        "It is a truth universally acknowl",
        "The cat sat on the ma",
    ],
)
async def test_healing_costs_at_most_one_step_before_text_shows(engine: Engine, text: str) -> None:
    request = GenerationRequest(text, f"heal-{len(text)}", max_new_tokens=8, heal=True)
    shown, tokens = await first_visible(engine, request)
    assert tokens <= 2, f"the first text {shown!r} came after {tokens} tokens"


async def test_a_healed_continuation_reads_on_from_the_typed_text(engine: Engine) -> None:
    completion = await complete(
        engine, GenerationRequest("It is a truth universally acknowl", "heal-a", max_new_tokens=6, heal=True)
    )
    assert completion.alternatives[0].text.startswith("edged"), completion.alternatives[0].text
    prompt = engine.prompt_tokens(GenerationRequest("It is a truth universally acknowl", "x"))
    decoded = engine.tokenizer.decode(prompt[:-1] + completion.alternatives[0].tokens)
    assert decoded == "It is a truth universally acknowl" + completion.alternatives[0].text, (
        "the healed token is not part of the text, and nothing of the typed text is lost or repeated"
    )


async def test_greedy_healing_picks_the_likeliest_token_that_keeps_the_typed_text(
    engine: Engine, loaded_model: object
) -> None:
    text = prose(2000, 400) + " th"
    ids = engine.prompt_tokens(GenerationRequest(text, "x"))
    completion = await complete(engine, GenerationRequest(text, "heal-g", max_new_tokens=1, heal=True))
    runner_model = engine.runner.model
    with torch.inference_mode():
        logits = runner_model(torch.tensor([ids[:-1]])).logits[0, -1].float()
    healed_text = engine.tokenizer.decode([ids[-1]])
    allowed = [t for t in range(logits.shape[0]) if engine.tokenizer.decode([t]).startswith(healed_text)]
    best = max(allowed, key=lambda t: float(logits[t]))
    assert completion.alternatives[0].tokens == [best]


async def test_sampled_suggestions_after_a_finished_word_do_not_glue_unlikely_letters_onto_it(
    engine: Engine,
) -> None:
    # the model gives words that begin with " us" (" usual", " useful") about half its belief here,
    # each less than " us" itself; unrestricted, about half of these suggestions would glue on
    end = PROSE.index("It will be no use to us") + len("It will be no use to us")
    text = PROSE[end - 400 : end]
    glued = 0
    for seed in range(12):
        request = GenerationRequest(
            text, f"glue-{seed}", max_new_tokens=2, heal=True, temperature=1.0, seed=seed, top_k=50
        )
        completion = await complete(engine, request)
        suggestion = completion.alternatives[0].text
        glued += bool(suggestion) and suggestion[0].isalpha()
    assert glued == 0, f"{glued} of 12 suggestions glued letters onto ' us'"
