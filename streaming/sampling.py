"""Choosing the next token from logits: greedy, or seeded sampling with temperature, top-k, top-p."""

from __future__ import annotations

import torch


def sample_next(
    logits: torch.Tensor,
    temperature: float,
    top_k: int,
    top_p: float,
    generator: torch.Generator | None,
) -> int:
    """One token id from one row of float32 logits (on the CPU, so seeds replay anywhere)."""
    if temperature == 0.0:
        return int(logits.argmax())
    # scale by temperature: lower is more conservative
    scaled = logits / temperature
    # keep only the k most likely tokens
    if 0 < top_k < scaled.numel():
        kth = torch.topk(scaled, top_k).values[-1]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    # keep the smallest set of tokens whose probability reaches top_p
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        sorted_probs[before >= top_p] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    # draw one token from what is left
    return int(torch.multinomial(probs, 1, generator=generator))
