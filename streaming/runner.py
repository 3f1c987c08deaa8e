"""The batched forward pass: many rows, each with its own length and KV, in one model call.

Rows are packed end to end (no padding). Projections and MLPs run once over all packed tokens;
attention runs per row against that row's own cache, so a row's result does not depend on its
neighbours. Works for decoder-only models shaped like Llama (Llama, Mistral, Qwen2) and for
Gemma 3 (its layers in `streaming/gemma.py`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from streaming.errors import ModelLoadError
from streaming.gemma import GemmaStack
from streaming.kv import CacheShape, RowCache
from streaming.loader import cpu_runs_bf16

PACKED_PIECE_ROWS = 64  # the most rows one prepacked bf16 matmul takes (see `Projection`)
PROBE_ROWS = 32  # rows multiplied alone and together to learn whether one row needs a partner


@dataclass
class RowInput:
    """Tokens to append to one row in this step, and whether its next-token logits are wanted."""

    row: RowCache
    tokens: list[int]
    want_logits: bool = True


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
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


class Stack(Protocol):
    """A model family's decoder layers, their weights prepared for packed rows."""

    @property
    def layers(self) -> Sequence[Any]: ...

    def run(self, ids: torch.Tensor, positions: torch.Tensor, attention: RowAttention) -> torch.Tensor:
        """Packed token ids and their positions [T] -> the last layer's hidden states [T, hidden]."""
        ...

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden states [N, hidden] -> float32 next-token logits [N, vocab]."""
        ...


@dataclass
class LayerWeights:
    """A decoder layer's weights as the runner uses them: q/k/v and gate/up each fused into one."""

    input_norm: torch.Tensor
    qkv: Projection
    output: Projection
    post_norm: torch.Tensor
    gate_up: Projection
    down: Projection
    eps: float


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Llama's RMSNorm, computed in float32 as transformers computes it."""
    wide = x.float()
    wide = wide * torch.rsqrt(wide.pow(2).mean(-1, keepdim=True) + eps)
    return weight * wide.to(x.dtype)


class LlamaStack:
    """Llama, Mistral and Qwen2: RMSNorm, SiLU-gated MLP, one rotary table for every layer."""

    def __init__(self, model: Any, project: ProjectionFactory) -> None:
        config = model.config
        backbone = model.model
        self.embed_tokens = backbone.embed_tokens
        self.rotary = backbone.rotary_emb
        self.norm = backbone.norm
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.layers = [self._layer_weights(layer, project) for layer in backbone.layers]
        self.lm_head = project([model.lm_head])

    @staticmethod
    def _layer_weights(layer: Any, project: ProjectionFactory) -> LayerWeights:
        attn, mlp = layer.self_attn, layer.mlp
        return LayerWeights(
            input_norm=layer.input_layernorm.weight.detach(),
            qkv=project([attn.q_proj, attn.k_proj, attn.v_proj]),  # Qwen2's have biases
            output=project([attn.o_proj]),
            post_norm=layer.post_attention_layernorm.weight.detach(),
            gate_up=project([mlp.gate_proj, mlp.up_proj]),
            down=project([mlp.down_proj]),
            eps=layer.input_layernorm.variance_epsilon,
        )

    def run(self, ids: torch.Tensor, positions: torch.Tensor, attention: RowAttention) -> torch.Tensor:
        hidden = self.embed_tokens(ids)[None]  # [1, T, hidden]
        cos, sin = self.rotary(hidden, positions[None])
        cos, sin = cos[0, :, None, :], sin[0, :, None, :]  # [T, 1, head_dim]
        heads, kv_heads = self.heads, self.kv_heads
        for index, weights in enumerate(self.layers):
            normed = _rms_norm(hidden, weights.input_norm, weights.eps)[0]  # [T, hidden]
            qkv = weights.qkv(normed).view(-1, heads + 2 * kv_heads, self.head_dim)
            qk = qkv[:, : heads + kv_heads]
            qk = qk * cos + _rotate_half(qk) * sin  # rotary on queries and keys in one go
            q, k, v = qk[:, :heads], qk[:, heads:], qkv[:, heads + kv_heads :]
            hidden = hidden + weights.output(attention(index, q, k, v))[None]
            gate, up = weights.gate_up(_rms_norm(hidden, weights.post_norm, weights.eps)).chunk(2, dim=-1)
            hidden = hidden + weights.down(F.silu(gate) * up)
        result: torch.Tensor = hidden[0]
        return result

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.norm(hidden)).float()


STACKS: dict[str, Callable[[Any, ProjectionFactory], Stack]] = {
    "llama": LlamaStack,
    "mistral": LlamaStack,
    "qwen2": LlamaStack,
    "gemma3_text": GemmaStack,
}
SUPPORTED_MODEL_TYPES = frozenset(STACKS)

Prepared = tuple[tuple[torch.dtype, torch.device, bool], Stack]
_PREPARED: weakref.WeakKeyDictionary[torch.nn.Module, Prepared] = weakref.WeakKeyDictionary()


class ModelRunner:
    """Runs packed forward passes of a Llama-shaped or Gemma 3 `transformers` causal LM."""

    def __init__(self, model: torch.nn.Module) -> None:
        config: Any = model.config
        stack = STACKS.get(config.model_type)
        if stack is None:
            raise ModelLoadError(
                f"model type {config.model_type!r} is not supported by the batched engine "
                f"(supported: {', '.join(sorted(SUPPORTED_MODEL_TYPES))}); "
                "choose another model with COWRITE_MODEL / --model"
            )
        # transformers modules are dynamically typed; the attributes read here are checked above
        self.model: Any = model
        self.config: Any = config
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        heads = config.num_attention_heads
        self.cache_shape = CacheShape(
            layers=config.num_hidden_layers,
            kv_heads=getattr(config, "num_key_value_heads", None) or heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
            dtype=self.dtype,
            device=self.device,
        )
        self.packed = packs_for_cpu(self.dtype, self.device)
        # the rearranged weights are a copy of the model's (~270 MB in bf16 for SmolLM2-135M):
        # every runner over the same model shares one, kept as long as the model is
        key = (self.dtype, self.device, self.packed)
        prepared = _PREPARED.get(model)
        if prepared is None or prepared[0] != key:
            prepared = (key, stack(model, partial(Projection, packed=self.packed)))
            _PREPARED[model] = prepared
        self.stack = prepared[1]
        self.layers = self.stack.layers
        self.calls = 0

    def new_row(self) -> RowCache:
        return RowCache(self.cache_shape)

    @torch.inference_mode()
    def forward(self, inputs: list[RowInput]) -> torch.Tensor:
        """Append each input's tokens to its row; return float32 logits for rows that want them.

        Rows' lengths advance only after the whole pass succeeds, so a failure leaves no state.
        """
        assert inputs and all(i.tokens for i in inputs)
        self.calls += 1
        for item in inputs:
            item.row.reserve(item.row.length + len(item.tokens))
        attention = RowAttention(inputs)
        ids = torch.tensor([t for item in inputs for t in item.tokens], device=self.device)
        positions = torch.tensor(
            [p for start, n in zip(attention.starts, attention.counts) for p in range(start, start + n)],
            device=self.device,
        )
        hidden = self.stack.run(ids, positions, attention)  # [T, hidden]

        ends = []
        offset = 0
        for item, n in zip(inputs, attention.counts):
            offset += n
            if item.want_logits:
                ends.append(offset - 1)
        logits = torch.empty(0, self.config.vocab_size)
        if ends:
            logits = self.stack.logits(hidden[ends])

        for item in inputs:
            item.row.tokens.extend(item.tokens)
        return logits
