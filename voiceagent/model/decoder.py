"""Decoder block: latent (MLA-style) causal self-attention, EALLQA cross-attention, MoE feed-forward.

Self-attention caches per token one latent c = norm(W_dkv·x) (d_self_latent values) plus one RoPE key
k_r = RoPE(W_kr·x) (rope_dim values) shared by all heads, the decoupled-RoPE layout of DeepSeek's MLA.
Query head h scores a token with q_h·(W_uk,h·c) + q_r,h·k_r. Because RoPE touches only the shared
k_r, W_uk can be absorbed into the query as in EALLQA: each head then attends to the cached
`[c, k_r]` directly (MQA-like), and decoding never expands the cache into per-head keys.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from voiceagent.model.config import SpeechLMConfig
from voiceagent.model.eallqa import EALLQACrossAttention
from voiceagent.model.layers import RMSNorm, apply_rope, masked_attention
from voiceagent.model.moe import MoEFeedForward

__all__ = ["DecoderBlock", "LatentSelfAttention"]


class LatentSelfAttention(nn.Module):
    def __init__(self, config: SpeechLMConfig) -> None:
        super().__init__()
        c = config
        self.n_heads, self.head_dim, self.rope_dim = c.dec_heads, c.head_dim, c.rope_dim
        self.d_latent, self.rope_base = c.d_self_latent, c.rope_base
        self.scale = (c.head_dim + c.rope_dim) ** -0.5
        self.w_q = nn.Linear(c.dec_dim, c.dec_heads * (c.head_dim + c.rope_dim), bias=False)
        self.w_dkv = nn.Linear(c.dec_dim, c.d_self_latent, bias=False)
        self.w_kr = nn.Linear(c.dec_dim, c.rope_dim, bias=False)
        self.latent_norm = RMSNorm(c.d_self_latent, c.norm_eps)
        scale = c.d_self_latent**-0.5
        self.w_uk = nn.Parameter(torch.randn(c.dec_heads, c.head_dim, c.d_self_latent) * scale)
        self.w_uv = nn.Parameter(torch.randn(c.dec_heads, c.head_dim, c.d_self_latent) * scale)
        self.w_o = nn.Linear(c.dec_heads * c.head_dim, c.dec_dim, bias=False)

    def compress(self, x: Tensor, positions: Tensor) -> Tensor:
        """`x (B, T, d)` at `positions (B, T)` → cache entries `(B, T, d_self + rope_dim)`: `[c, k_r]`."""
        latents: Tensor = self.latent_norm(self.w_dkv(x))  # (B, T, d_self)
        k_rope: Tensor = self.w_kr(x)  # (B, T, R)
        k_rope = apply_rope(k_rope[:, None], positions, self.rope_base)[:, 0]
        return torch.cat([latents, k_rope], dim=-1)

    def forward(
        self, x: Tensor, q_pos: Tensor, cached: Tensor, mask: Tensor, *, absorbed: bool = True
    ) -> Tensor:
        """`x (B, T, d)` at `q_pos (B, T)`; `cached (B, S, d_self + R)` holds positions 0..S-1;
        `mask (B, T, S)`."""
        b, t, _ = x.shape
        q: Tensor = self.w_q(x)
        q = q.view(b, t, self.n_heads, self.head_dim + self.rope_dim).transpose(1, 2)  # (B, H, T, D + R)
        q_nope, q_rope = q[..., : self.head_dim], q[..., self.head_dim :]  # (B, H, T, D), (B, H, T, R)
        q_rope = apply_rope(q_rope, q_pos, self.rope_base)  # (B, H, T, R)
        latents, k_rope = (
            cached[..., : self.d_latent],
            cached[..., self.d_latent :],
        )  # (B, S, d_self), (B, S, R)
        if absorbed:
            q_latent = torch.einsum("bhtd,hdc->bhtc", q_nope, self.w_uk)  # (B, H, T, d_self)
            query = torch.cat([q_latent, q_rope], dim=-1)  # (B, H, T, d_self + R)
            o_latent = masked_attention(query, cached[:, None], latents[:, None], mask[:, None], self.scale)
            o = torch.einsum("bhtc,hdc->bhtd", o_latent, self.w_uv)  # (B, H, T, D)
        else:
            k_nope = torch.einsum("bsc,hdc->bhsd", latents, self.w_uk)  # (B, H, S, D)
            k = torch.cat(
                [k_nope, k_rope[:, None].expand(-1, self.n_heads, -1, -1)], dim=-1
            )  # (B, H, S, D + R)
            v = torch.einsum("bsc,hdc->bhsd", latents, self.w_uv)  # (B, H, S, D)
            o = masked_attention(torch.cat([q_nope, q_rope], dim=-1), k, v, mask[:, None], self.scale)
        out: Tensor = self.w_o(o.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))
        return out  # (B, T, d)


class DecoderBlock(nn.Module):
    def __init__(self, config: SpeechLMConfig) -> None:
        super().__init__()
        c = config
        self.self_norm = RMSNorm(c.dec_dim, c.norm_eps)
        self.self_attn = LatentSelfAttention(c)
        self.cross_norm = RMSNorm(c.dec_dim, c.norm_eps)
        self.cross_attn = EALLQACrossAttention(
            c.dec_dim, c.enc_dim, c.dec_heads, c.head_dim, c.d_latent, c.norm_eps
        )
        self.ffn_norm = RMSNorm(c.dec_dim, c.norm_eps)
        self.ffn = MoEFeedForward(c.dec_dim, c.n_experts, c.top_k, c.expert_hidden, c.shared_expert_hidden)

    def self_latents(self, x: Tensor, positions: Tensor) -> Tensor:
        """Self-attention cache entries of this block's input `x (B, T, d)` → `(B, T, d_self + R)`."""
        return self.self_attn.compress(self.self_norm(x), positions)

    def forward(
        self,
        x: Tensor,
        q_pos: Tensor,
        self_latents: Tensor,
        self_mask: Tensor,
        cross_latents: Tensor,
        cross_mask: Tensor,
        *,
        absorbed: bool = True,
    ) -> tuple[Tensor, Tensor]:
        """`x (B, T, d)`; self latents `(B, S, d_self)` with `self_mask (B, T, S)`; cross latents
        `(B, F, d_c)` with `cross_mask (B, F)`. Returns `(x, moe aux loss)`."""
        x = x + self.self_attn(self.self_norm(x), q_pos, self_latents, self_mask, absorbed=absorbed)
        cross = self.cross_attn if absorbed else self.cross_attn.forward_training
        x = x + cross(self.cross_norm(x), cross_latents, cross_mask)
        y, aux = self.ffn(self.ffn_norm(x))
        return x + y, aux
