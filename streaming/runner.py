"""The batched forward pass: many rows, each with its own length and KV, in one model call.

Rows are packed end to end (no padding). Projections and MLPs run once over all packed tokens;
attention runs per row against that row's own cache, so a row's result does not depend on its
neighbours. Works for decoder-only models shaped like Llama (Llama, Mistral, Qwen2).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from streaming.errors import ModelLoadError
from streaming.kv import CacheShape, RowCache
from streaming.loader import cpu_runs_bf16

SUPPORTED_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2"})
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
        weight = torch.cat([m.weight.detach() for m in linears])
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


Prepared = tuple[tuple[torch.dtype, torch.device, bool], list[LayerWeights], Projection]
_PREPARED: weakref.WeakKeyDictionary[torch.nn.Module, Prepared] = weakref.WeakKeyDictionary()


class ModelRunner:
    """Runs packed forward passes of a Llama-shaped `transformers` causal LM."""

    def __init__(self, model: torch.nn.Module) -> None:
        config: Any = model.config
        if config.model_type not in SUPPORTED_MODEL_TYPES:
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
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.cache_shape = CacheShape(
            layers=config.num_hidden_layers,
            kv_heads=self.kv_heads,
            head_dim=self.head_dim,
            dtype=self.dtype,
            device=self.device,
        )
        self.packed = packs_for_cpu(self.dtype, self.device)
        # the rearranged weights are a copy of the model's (~270 MB in bf16): every runner over
        # the same model shares one, kept as long as the model is
        key = (self.dtype, self.device, self.packed)
        prepared = _PREPARED.get(model)
        if prepared is None or prepared[0] != key:
            backbone: Any = self.model.model
            layers = [self._layer_weights(layer) for layer in backbone.layers]
            prepared = (key, layers, Projection([self.model.lm_head], self.packed))
            _PREPARED[model] = prepared
        _, self.layers, self.lm_head = prepared
        self.calls = 0

    def _layer_weights(self, layer: Any) -> LayerWeights:
        attn, mlp = layer.self_attn, layer.mlp
        return LayerWeights(
            input_norm=layer.input_layernorm.weight.detach(),
            qkv=Projection([attn.q_proj, attn.k_proj, attn.v_proj], self.packed),  # Qwen2's have biases
            output=Projection([attn.o_proj], self.packed),
            post_norm=layer.post_attention_layernorm.weight.detach(),
            gate_up=Projection([mlp.gate_proj, mlp.up_proj], self.packed),
            down=Projection([mlp.down_proj], self.packed),
            eps=layer.input_layernorm.variance_epsilon,
        )

    def new_row(self) -> RowCache:
        return RowCache(self.cache_shape)

    @torch.inference_mode()
    def forward(self, inputs: list[RowInput]) -> torch.Tensor:
        """Append each input's tokens to its row; return float32 logits for rows that want them.

        Rows' lengths advance only after the whole pass succeeds, so a failure leaves no state.
        """
        assert inputs and all(i.tokens for i in inputs)
        self.calls += 1
        backbone = self.model.model
        for item in inputs:
            item.row.reserve(item.row.length + len(item.tokens))

        starts = [item.row.length for item in inputs]
        counts = [len(item.tokens) for item in inputs]
        ids = torch.tensor([t for item in inputs for t in item.tokens], device=self.device)
        positions = torch.tensor(
            [p for start, n in zip(starts, counts) for p in range(start, start + n)],
            device=self.device,
        )

        hidden = backbone.embed_tokens(ids)[None]  # [1, T, hidden]
        cos, sin = backbone.rotary_emb(hidden, positions[None])
        cos, sin = cos[0, :, None, :], sin[0, :, None, :]  # [T, 1, head_dim]
        masks = [self._causal_mask(s, n) for s, n in zip(starts, counts)]

        heads, kv_heads = self.heads, self.kv_heads
        for index, weights in enumerate(self.layers):
            normed = _rms_norm(hidden, weights.input_norm, weights.eps)[0]  # [T, hidden]
            qkv = weights.qkv(normed).view(-1, heads + 2 * kv_heads, self.head_dim)
            qk = qkv[:, : heads + kv_heads]
            qk = qk * cos + _rotate_half(qk) * sin  # rotary on queries and keys in one go
            q, k, v = qk[:, :heads], qk[:, heads:], qkv[:, heads + kv_heads :]

            outputs = []
            offset = 0
            for item, start, n, mask in zip(inputs, starts, counts, masks):
                row_k = item.row.keys[index]
                row_v = item.row.values[index]
                row_k[:, start : start + n] = k[offset : offset + n].transpose(0, 1)
                row_v[:, start : start + n] = v[offset : offset + n].transpose(0, 1)
                out = F.scaled_dot_product_attention(
                    q[offset : offset + n].transpose(0, 1)[None],
                    row_k[None, :, : start + n],
                    row_v[None, :, : start + n],
                    attn_mask=mask,
                    enable_gqa=kv_heads != heads,
                )
                outputs.append(out[0].transpose(0, 1).reshape(n, -1))
                offset += n

            attended = torch.cat(outputs) if len(outputs) > 1 else outputs[0]
            hidden = hidden + weights.output(attended)[None]
            gate, up = weights.gate_up(_rms_norm(hidden, weights.post_norm, weights.eps)).chunk(2, dim=-1)
            hidden = hidden + weights.down(F.silu(gate) * up)

        ends = []
        offset = 0
        for item, n in zip(inputs, counts):
            offset += n
            if item.want_logits:
                ends.append(offset - 1)
        logits = torch.empty(0, self.config.vocab_size)
        if ends:
            last = backbone.norm(hidden[0, ends])
            logits = self.lm_head(last).float()

        for item in inputs:
            item.row.tokens.extend(item.tokens)
        return logits

    def _causal_mask(self, start: int, n: int) -> torch.Tensor | None:
        """Boolean mask letting new token i see cached positions and new tokens up to i."""
        if n == 1:
            return None
        cols = torch.arange(start + n, device=self.device)
        rows = torch.arange(start, start + n, device=self.device)
        return cols[None, :] <= rows[:, None]
