"""Choosing the next token from logits: greedy, or seeded sampling with temperature, top-k, top-p.

Any temperature above 0 and any top_p above 0 give a valid token: the logits are shifted so the
best is 0 before they are divided (no overflow, however small the temperature), the most likely
token always survives top-p, and probabilities that are not a usable distribution (NaN, inf, all
zero, from a faulty model or an extreme value) fall back to the most likely token instead of
reaching `torch.multinomial`.
"""

from __future__ import annotations

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
    # keep only the k most likely tokens
    if 0 < top_k < scaled.numel():
        kth = torch.topk(scaled, top_k).values[-1]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    # keep the smallest set of tokens whose probability reaches top_p (always the most likely one)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        cut = before >= top_p
        cut[0] = False
        sorted_probs[cut] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    if not bool(torch.isfinite(probs).all()) or not float(probs.sum()) > 0.0:
        return best(logits)
    # draw one token from what is left
    return int(torch.multinomial(probs, 1, generator=generator))


def best(logits: torch.Tensor) -> int:
    """The most likely token (the first one if no logit is finite)."""
    return int(logits.argmax())
