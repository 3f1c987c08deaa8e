"""Per-row key/value storage for the decode loop.

A `RowCache` holds one sequence's keys and values for every layer in buffers that grow in blocks,
so appending a token writes in place; `length` only advances once a forward pass has succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

BLOCK_TOKENS = 128


@dataclass(frozen=True)
class CacheShape:
    """What one token's keys and values look like across the model's layers."""

    layers: int
    kv_heads: int
    head_dim: int
    dtype: torch.dtype
    device: torch.device

    @property
    def bytes_per_token(self) -> int:
        element = torch.empty((), dtype=self.dtype).element_size()
        return 2 * self.layers * self.kv_heads * self.head_dim * element


@dataclass(eq=False)
class RowCache:
    """One sequence's KV: `tokens[:length]` have their keys and values stored."""

    shape: CacheShape
    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)

    @property
    def length(self) -> int:
        return len(self.tokens)

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[1] if self.keys else 0

    @property
    def nbytes(self) -> int:
        return self.capacity * self.shape.bytes_per_token

    def reserve(self, total_tokens: int) -> None:
        """Grow the buffers so that `total_tokens` positions fit, keeping what is stored."""
        if total_tokens <= self.capacity:
            return
        blocks = -(-total_tokens // BLOCK_TOKENS)
        capacity = blocks * BLOCK_TOKENS
        s = self.shape
        keys, values = [], []
        for layer in range(s.layers):
            k = torch.empty(s.kv_heads, capacity, s.head_dim, dtype=s.dtype, device=s.device)
            v = torch.empty_like(k)
            if self.keys:
                k[:, : self.length] = self.keys[layer][:, : self.length]
                v[:, : self.length] = self.values[layer][:, : self.length]
            keys.append(k)
            values.append(v)
        self.keys, self.values = keys, values

    def truncate(self, length: int) -> None:
        """Forget every position from `length` on; the buffers stay allocated."""
        assert 0 <= length <= self.length
        del self.tokens[length:]

    def fork(self, extra_tokens: int) -> RowCache:
        """A copy of this row's stored prefix, with room for `extra_tokens` more."""
        child = RowCache(self.shape, tokens=list(self.tokens))
        child.reserve(self.length + extra_tokens)
        for layer in range(self.shape.layers):
            child.keys[layer][:, : self.length] = self.keys[layer][:, : self.length]
            child.values[layer][:, : self.length] = self.values[layer][:, : self.length]
        return child

    def release(self) -> None:
        """Drop the buffers; the row can be reused only after `reserve`."""
        self.keys, self.values = [], []
        self.tokens.clear()


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest shared prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
