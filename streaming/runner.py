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
from streaming.layers import Projection, ProjectionFactory, RowAttention, packs_for_cpu, rotate_half
from streaming.layers import RowInput as RowInput  # what callers of `forward` build


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
            qk = qk * cos + rotate_half(qk) * sin  # rotary on queries and keys in one go
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
