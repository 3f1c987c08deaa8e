"""The pieces every model family's packed pass is built of: a row's input, projections over packed
rows (prepacked bf16 on CPUs that have it), and per-row attention against each row's own cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from streaming.kv import RowCache
from streaming.loader import cpu_runs_bf16

PACKED_PIECE_ROWS = 64  # the most rows one prepacked bf16 matmul takes (see `Projection`)
PROBE_ROWS = 32  # rows multiplied alone and together to learn whether one row needs a partner


@dataclass
class RowInput:
    """Tokens to append to one row in this step, and whether its next-token logits are wanted."""

    row: RowCache
    tokens: list[int]
    want_logits: bool = True


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def packs_for_cpu(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether oneDNN can run this dtype's matmuls from prepacked weights here (bf16 on a CPU
    with AVX512-BF16 or AMX): up to twice as fast as plain `F.linear` in bf16."""
    return device.type == "cpu" and dtype == torch.bfloat16 and cpu_runs_bf16()


class Projection:
    """One weight matrix (several of the model's, fused along the output) ready to multiply.

    Prepacked for oneDNN when `packs_for_cpu`; otherwise plain `F.linear`. Either way each output
    row depends only on its own input row (checked bitwise in the tests), so a row's numbers do
    not depend on its neighbours in the batch.
    """

    def __init__(self, linears: list[Any], packed: bool) -> None:
        # a lone matrix is used as it is: no copy of a tied 262k-token embedding in fp32
        weights = [m.weight.detach() for m in linears]
        weight = weights[0] if len(weights) == 1 else torch.cat(weights)
        self.bias: torch.Tensor | None = None
        if any(m.bias is not None for m in linears):
            zeros = [m.weight.new_zeros(m.weight.shape[0]) for m in linears]
            biases = [m.bias.detach() if m.bias is not None else z for m, z in zip(linears, zeros)]
            self.bias = torch.cat(biases)
        self.packed = packed
        # packed for one row: measured the fastest for a decode step, and row-independent
        self.weight = torch.ops.mkldnn._reorder_linear_weight(weight, 1) if packed else weight
        self.single_row_apart = packed and _single_row_apart(self, weight.shape[1])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.packed:
            return F.linear(x, self.weight, self.bias)
        if x.shape[-2] <= PACKED_PIECE_ROWS:
            return self._piece(x)
        # oneDNN switches kernels for many rows, and a row's last bits with it: pieces keep every
        # row on the same kernel, so its numbers do not depend on the batch (measured: a product
        # over 500 rows takes up to 40% longer in pieces than in one call)
        pieces = torch.split(x, PACKED_PIECE_ROWS, dim=-2)
        return torch.cat([self._piece(piece) for piece in pieces], dim=-2)

    def _piece(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] == 1 and self.single_row_apart:
            # multiplied as two rows, on the kernel every batch uses (see `_single_row_apart`)
            return self._packed(torch.cat([x, x], dim=-2)).narrow(-2, 0, 1)
        return self._packed(x)

    def _packed(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        return out


_SINGLE_ROW_APART: dict[tuple[int, int, torch.dtype], bool] = {}


def _single_row_apart(projection: Projection, inputs: int) -> bool:
    """Whether oneDNN multiplies a single row with a kernel of its own whose sums round otherwise
    than in a batch (seen on an AMD EPYC with AVX512-BF16 for 1536 inputs, not on Intel Xeons):
    then a row alone must be multiplied as two to get its batch bits. Learned once per shape,
    since the kernel is chosen by shape, from random rows alone and together."""
    key = (inputs, projection.weight.shape[0], projection.weight.dtype)
    if key not in _SINGLE_ROW_APART:
        generator = torch.Generator().manual_seed(0)
        rows = torch.randn(PROBE_ROWS, inputs, generator=generator).to(projection.weight.dtype)
        together = projection._packed(rows)
        alone = [projection._packed(rows[i : i + 1])[0] for i in range(PROBE_ROWS)]
        _SINGLE_ROW_APART[key] = not all(torch.equal(a, t) for a, t in zip(alone, together))
    return _SINGLE_ROW_APART[key]


ProjectionFactory = Callable[[list[Any]], Projection]


class RowAttention:
    """Attention for one packed pass: each row's new keys and values go into that row's cache, and
    its queries attend to that cache alone, causally, within a sliding window where a layer has one.

    A window is applied by which cached positions a row reads and, over several new tokens, by
    mask; the cache keeps every position.
    """

    def __init__(self, inputs: list[RowInput]) -> None:
        self.inputs = inputs
        self.starts = [item.row.length for item in inputs]
        self.counts = [len(item.tokens) for item in inputs]
        self._spans: dict[int | None, list[tuple[int, torch.Tensor | None]]] = {}

    def __call__(
        self,
        layer: int,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        scale: float | None = None,
        window: int | None = None,
    ) -> torch.Tensor:
        """q [T, heads, head_dim], k and v [T, kv_heads, head_dim] -> [T, heads * head_dim]."""
        spans = self._spans.get(window)
        if spans is None:
            spans = self._spans[window] = [
                self._span(start, n, window, q.device) for start, n in zip(self.starts, self.counts)
            ]
        outputs = []
        offset = 0
        for item, start, n, (first, mask) in zip(self.inputs, self.starts, self.counts, spans):
            row_k = item.row.keys[layer]
            row_v = item.row.values[layer]
            row_k[:, start : start + n] = k[offset : offset + n].transpose(0, 1)
            row_v[:, start : start + n] = v[offset : offset + n].transpose(0, 1)
            out = F.scaled_dot_product_attention(
                q[offset : offset + n].transpose(0, 1)[None],
                row_k[None, :, first : start + n],
                row_v[None, :, first : start + n],
                attn_mask=mask,
                scale=scale,
                enable_gqa=k.shape[1] != q.shape[1],
            )
            outputs.append(out[0].transpose(0, 1).reshape(n, -1))
            offset += n
        return torch.cat(outputs) if len(outputs) > 1 else outputs[0]

    @staticmethod
    def _span(
        start: int, n: int, window: int | None, device: torch.device
    ) -> tuple[int, torch.Tensor | None]:
        """The first cached position the row's new tokens may read, and the boolean mask letting
        new token i see positions up to its own and, in a window, the `window` last of those."""
        first = 0 if window is None else max(0, start - window + 1)
        if n == 1:
            return first, None
        cols = torch.arange(first, start + n, device=device)
        rows = torch.arange(start, start + n, device=device)
        mask = cols[None, :] <= rows[:, None]
        if window is not None:
            mask &= cols[None, :] > rows[:, None] - window
        return first, mask
