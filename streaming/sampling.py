"""Choosing the next token from logits: greedy, or seeded sampling with temperature, top-k, top-p.

Any temperature above 0 and any top_p above 0 give a valid token: the logits are shifted so the
best is 0 before they are divided (no overflow, however small the temperature), the most likely
token always survives top-p, and probabilities that are not a usable distribution (NaN, inf, all
zero, from a faulty model or an extreme value) fall back to the most likely token instead of
reaching `torch.multinomial`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

# temperatures below this sample as this: already indistinguishable from greedy decoding
MIN_TEMPERATURE = 1e-2


def sample_next(
    logits: torch.Tensor,
    temperature: float,
    top_k: int,
    top_p: float,
    generator: torch.Generator | None,
) -> int:
    """One token id from one row of float32 logits (on the CPU, so seeds replay anywhere)."""
    # a NaN logit says nothing about its token: never pick it
    logits = torch.nan_to_num(logits.float(), nan=float("-inf"))
    if temperature == 0.0:
        return best(logits)
    # scale by temperature: lower is more conservative; the best token sits at 0, the rest below
    scaled = (logits - logits.max()) / max(temperature, MIN_TEMPERATURE)
    tokens: torch.Tensor | None = None  # which token each entry of `scaled` is, once narrowed
    # keep only the k most likely tokens: from here on only they are looked at (sorting them, not
    # the whole vocabulary, is what makes sampling cheap: ~0.2 ms a row instead of ~10)
    if 0 < top_k < scaled.numel():
        scaled, tokens = torch.topk(scaled, top_k)  # most likely first
    probs = torch.softmax(scaled, dim=-1)
    # keep the smallest set of tokens whose probability reaches top_p (always the most likely one)
    if top_p < 1.0:
        if tokens is None:
            probs, tokens = torch.sort(probs, descending=True)
        before = torch.cumsum(probs, dim=-1) - probs
        cut = before >= top_p
        cut[0] = False
        probs = probs.masked_fill(cut, 0.0)
    if not bool(torch.isfinite(probs).all()) or not float(probs.sum()) > 0.0:
        return best(logits)
    # draw one token from what is left
    drawn = int(torch.multinomial(probs, 1, generator=generator))
    return drawn if tokens is None else int(tokens[drawn])


def probability(logits: torch.Tensor, token: int) -> float:
    """The model's own probability of `token` (temperature 1) in one row of logits; 0 if unusable."""
    logits = logits.float()
    logits = logits.masked_fill(torch.isnan(logits), float("-inf"))
    top = logits.max()
    if not bool(torch.isfinite(top)):
        return 0.0
    # the log of the softmax's denominator, computed without overflow
    log_total = top + torch.log(torch.exp(logits - top).sum())
    value = float(torch.exp(logits[token] - log_total))
    return value if value == value else 0.0  # NaN (an unusable row) is no confidence at all


def discourage(
    logits: torch.Tensor, seen: Iterable[int], banned: Iterable[int], penalty: float
) -> torch.Tensor:
    """Logits with repetition made less likely: tokens already `seen` divided by `penalty` in odds
    (CTRL's rule: positive logits divided, negative multiplied) and `banned` tokens impossible."""
    seen_ids = torch.tensor(sorted(set(seen)), dtype=torch.long)
    banned_ids = torch.tensor(sorted(set(banned)), dtype=torch.long)
    if penalty == 1.0 and not banned_ids.numel():
        return logits
    logits = logits.clone()
    if penalty != 1.0 and seen_ids.numel():
        values = logits[seen_ids]
        logits[seen_ids] = torch.where(values > 0, values / penalty, values * penalty)
    if banned_ids.numel():
        logits[banned_ids] = float("-inf")
    return logits


def best(logits: torch.Tensor) -> int:
    """The most likely token (the first one if no logit is finite)."""
    return int(logits.argmax())
