"""Gemma 3's decoder layers over packed rows, for `streaming.runner.ModelRunner`: what sets it
apart from Llama (norms around both halves of a layer, q/k norms, sliding-window layers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from streaming.errors import ModelLoadError
from streaming.layers import rotate_half

if TYPE_CHECKING:
    from streaming.layers import Projection, ProjectionFactory, RowAttention

SLIDING = "sliding_attention"
FULL = "full_attention"


@dataclass
class GemmaLayer:
    """A Gemma 3 decoder layer's weights as the runner uses them. Each norm is kept as its float32
    scale, `1 + weight`; q/k/v and gate/up are fused as for Llama."""

    input_norm: torch.Tensor
    qkv: Projection
    qk_norm: torch.Tensor  # [heads + kv_heads, head_dim]: q_norm's scale for queries, k_norm's for keys
    output: Projection
    post_attention_norm: torch.Tensor
    pre_feedforward_norm: torch.Tensor
    gate_up: Projection
    down: Projection
    post_feedforward_norm: torch.Tensor
    kind: str  # SLIDING or FULL: which rotary table and whether the window applies


def _norm(x: torch.Tensor, scale: torch.Tensor, eps: float) -> torch.Tensor:
    """Gemma's RMSNorm: in float32, times `1 + weight`, and only then back to x's dtype (Llama
    rounds before the multiplication)."""
    wide = x.float()
    wide = wide * torch.rsqrt(wide.pow(2).mean(-1, keepdim=True) + eps)
    return (wide * scale).to(x.dtype)


def _scale(norm: Any) -> torch.Tensor:
    scale: torch.Tensor = 1.0 + norm.weight.detach().float()
    return scale


class GemmaStack:
    """Gemma 3 (text): embeddings scaled by sqrt(hidden), pre and post norms around attention and
    MLP, RMS-normed queries and keys, GELU (tanh) MLP, local layers with a sliding window and
    their own rotary base, attention scaled by `query_pre_attn_scalar`, optional final softcap."""

    def __init__(self, model: Any, project: ProjectionFactory) -> None:
        config = model.config
        if getattr(config, "attn_logit_softcapping", None) is not None:
            raise ModelLoadError("the batched engine runs no Gemma with attention logit softcapping")
        if getattr(config, "use_bidirectional_attention", False):
            raise ModelLoadError("a bidirectional Gemma is not a causal LM for the batched engine")
        kinds = set(config.layer_types)
        if not kinds <= {SLIDING, FULL}:
            raise ModelLoadError(f"Gemma layer types {sorted(kinds - {SLIDING, FULL})} are not supported")
        backbone = model.model
        self.embed_tokens = backbone.embed_tokens  # multiplies by sqrt(hidden) itself
        self.rotary = backbone.rotary_emb
        self.final_norm = _scale(backbone.norm)
        self.kinds = sorted(kinds)
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        self.eps = config.rms_norm_eps
        self.window: int = config.sliding_window
        self.attention_scale = config.query_pre_attn_scalar**-0.5
        self.softcap: float | None = config.final_logit_softcapping
        self.activation = backbone.layers[0].mlp.act_fn  # gelu with the tanh approximation
        self.layers = [
            self._layer(layer, kind, project) for layer, kind in zip(backbone.layers, config.layer_types)
        ]
        self.lm_head = project([model.lm_head])  # tied to the embeddings

    def _layer(self, layer: Any, kind: str, project: ProjectionFactory) -> GemmaLayer:
        attn, mlp = layer.self_attn, layer.mlp
        q_norm = _scale(attn.q_norm).expand(self.heads, -1)
        k_norm = _scale(attn.k_norm).expand(self.kv_heads, -1)
        return GemmaLayer(
            input_norm=_scale(layer.input_layernorm),
            qkv=project([attn.q_proj, attn.k_proj, attn.v_proj]),
            qk_norm=torch.cat([q_norm, k_norm]),
            output=project([attn.o_proj]),
            post_attention_norm=_scale(layer.post_attention_layernorm),
            pre_feedforward_norm=_scale(layer.pre_feedforward_layernorm),
            gate_up=project([mlp.gate_proj, mlp.up_proj]),
            down=project([mlp.down_proj]),
            post_feedforward_norm=_scale(layer.post_feedforward_layernorm),
            kind=kind,
        )

    def run(self, ids: torch.Tensor, positions: torch.Tensor, attention: RowAttention) -> torch.Tensor:
        hidden: torch.Tensor = self.embed_tokens(ids)  # [T, hidden]
        rotary = {}
        for kind in self.kinds:
            cos, sin = self.rotary(hidden, positions[None], kind)
            rotary[kind] = cos[0, :, None, :], sin[0, :, None, :]  # [T, 1, head_dim]
        heads, kv_heads, eps = self.heads, self.kv_heads, self.eps
        for index, layer in enumerate(self.layers):
            qkv = layer.qkv(_norm(hidden, layer.input_norm, eps))
            qkv = qkv.view(-1, heads + 2 * kv_heads, self.head_dim)
            qk = _norm(qkv[:, : heads + kv_heads], layer.qk_norm, eps)  # q_norm and k_norm in one go
            cos, sin = rotary[layer.kind]
            qk = qk * cos + rotate_half(qk) * sin
            q, k, v = qk[:, :heads], qk[:, heads:], qkv[:, heads + kv_heads :]
            window = self.window if layer.kind == SLIDING else None
            attended = attention(index, q, k, v, scale=self.attention_scale, window=window)
            hidden = hidden + _norm(layer.output(attended), layer.post_attention_norm, eps)
            gate, up = layer.gate_up(_norm(hidden, layer.pre_feedforward_norm, eps)).chunk(2, dim=-1)
            hidden = hidden + _norm(layer.down(self.activation(gate) * up), layer.post_feedforward_norm, eps)
        return hidden

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(_norm(hidden, self.final_norm, self.eps))
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits.float()
