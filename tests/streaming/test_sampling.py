"""Sampling: every temperature and top_p that validation lets through, and broken logits, give a token."""

from __future__ import annotations

import math

import pytest
import torch

from streaming.sampling import discourage, probability, sample_next

VOCAB = 1000


def logits() -> torch.Tensor:
    return torch.randn(VOCAB, generator=torch.Generator().manual_seed(0)) * 8


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [
        (1e-45, 0, 1.0),  # 1.4e-45 in float32: dividing by it overflowed to inf, softmax to NaN
        (5e-324, 50, 0.95),  # the smallest double
        (1e-45, 0, 1e-50),
        (1.0, 0, 1e-50),  # 0 in float32: every token was cut, multinomial saw all zeros
        (1.0, 0, 1e-30),
        (2.0, 1, 1.0),
        (0.7, 1_000_000, 0.5),
    ],
)
def test_extreme_but_valid_settings_sample_a_likely_token(
    temperature: float, top_k: int, top_p: float
) -> None:
    row = logits()
    token = sample_next(row, temperature, top_k, top_p, torch.Generator().manual_seed(1))
    if temperature < 1e-3 or top_p < 1e-3 or top_k == 1:
        assert token == int(row.argmax()), "so little freedom leaves only the most likely token"
    assert 0 <= token < VOCAB


@pytest.mark.parametrize(
    "fill",
    [float("nan"), float("inf"), float("-inf")],
)
@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_broken_logits_never_reach_multinomial(fill: float, temperature: float) -> None:
    row = logits()
    row[::2] = fill
    token = sample_next(row, temperature, 50, 0.9, torch.Generator().manual_seed(2))
    assert 0 <= token < VOCAB
    if fill == float("nan"):
        assert token % 2 == 1, "a NaN logit is never chosen"


def test_all_logits_broken_still_gives_a_token() -> None:
    for fill in (float("nan"), float("-inf")):
        assert 0 <= sample_next(torch.full((VOCAB,), fill), 0.7, 0, 0.9, None) < VOCAB


def test_ordinary_sampling_is_seeded_and_spread() -> None:
    row = torch.zeros(VOCAB)
    draws = [sample_next(row, 1.0, 0, 1.0, torch.Generator().manual_seed(s)) for s in range(20)]
    again = [sample_next(row, 1.0, 0, 1.0, torch.Generator().manual_seed(s)) for s in range(20)]
    assert draws == again and len(set(draws)) > 10


def test_top_k_and_top_p_draw_from_the_renormalised_head_of_the_distribution() -> None:
    # sampling only looks at the k best tokens; draws must follow softmax over them, cut at top_p
    logits = torch.linspace(-8.0, 0.0, 1000)[torch.randperm(1000, generator=torch.Generator().manual_seed(3))]
    temperature, top_k, top_p = 0.7, 8, 0.9
    head, tokens = torch.topk(logits / temperature, top_k)
    probs = torch.softmax(head, dim=-1)
    keep = (torch.cumsum(probs, dim=-1) - probs) < top_p
    expected = torch.zeros(1000)
    expected[tokens[keep]] = probs[keep] / probs[keep].sum()

    generator = torch.Generator().manual_seed(0)
    draws = torch.tensor([sample_next(logits, temperature, top_k, top_p, generator) for _ in range(20_000)])
    observed = torch.bincount(draws, minlength=1000).float() / len(draws)
    assert set(draws.tolist()) <= set(tokens[keep].tolist()), "nothing outside the kept head is drawn"
    assert float((observed - expected).abs().max()) < 0.015


def test_probability_is_the_softmax_at_temperature_one() -> None:
    logits = torch.tensor([0.0, math.log(3.0), float("-inf")])
    assert probability(logits, 1) == pytest.approx(0.75)
    assert probability(logits, 2) == 0.0


def test_probability_of_an_unusable_row_is_zero() -> None:
    assert probability(torch.tensor([float("nan"), float("nan")]), 0) == 0.0
    assert probability(torch.full((3,), float("-inf")), 0) == 0.0


def test_probability_does_not_overflow_on_huge_logits() -> None:
    assert probability(torch.tensor([1e30, 0.0]), 0) == pytest.approx(1.0)


def test_discourage_bans_and_penalises_as_ctrl_does() -> None:
    logits = torch.tensor([2.0, -2.0, 1.0, 4.0])
    out = discourage(logits, seen=[0, 1], banned=[3], penalty=2.0)
    assert out.tolist() == [1.0, -4.0, 1.0, float("-inf")]
    assert logits.tolist() == [2.0, -2.0, 1.0, 4.0]  # the input is left as it was
    assert discourage(logits, seen=[0], banned=[], penalty=1.0) is logits
