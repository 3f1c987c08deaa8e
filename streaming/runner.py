"""The batched forward pass: many rows, each with its own length and KV, in one model call.

Rows are packed end to end (no padding). Projections and MLPs run once over all packed tokens;
attention runs per row against that row's own cache, so a row's result does not depend on its
neighbours. Works for decoder-only models shaped like Llama (Llama, Mistral, Qwen2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from streaming.errors import ModelLoadError
from streaming.kv import CacheShape, RowCache

SUPPORTED_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2"})


@dataclass
class RowInput:
    """Tokens to append to one row in this step, and whether its next-token logits are wanted."""

    row: RowCache
    tokens: list[int]
    want_logits: bool = True


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


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

        for index, layer in enumerate(backbone.layers):
            attn = layer.self_attn
            normed = layer.input_layernorm(hidden)[0]  # [T, hidden]
            q = attn.q_proj(normed).view(-1, self.heads, self.head_dim)
            k = attn.k_proj(normed).view(-1, self.kv_heads, self.head_dim)
            v = attn.v_proj(normed).view(-1, self.kv_heads, self.head_dim)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin

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
                    enable_gqa=self.kv_heads != self.heads,
                )
                outputs.append(out[0].transpose(0, 1).reshape(n, -1))
                offset += n

            attended = torch.cat(outputs) if len(outputs) > 1 else outputs[0]
            hidden = hidden + attn.o_proj(attended)[None]
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))

        ends = []
        offset = 0
        for item, n in zip(inputs, counts):
            offset += n
            if item.want_logits:
                ends.append(offset - 1)
        logits = torch.empty(0, self.config.vocab_size)
        if ends:
            last = backbone.norm(hidden[0, ends])
            logits = self.model.lm_head(last).float()

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
