"""EALLQA cross-attention (efficient all-query attention), our reading of DESIGN §6.

Each encoder frame h is compressed once into a latent c = W_dkv·h (d_c values, RMS-normalised), the
only thing cached per call and layer. Two algebraically equal forms:

- training: per-head keys K_h = W_uk,h·c and values V_h = W_uv,h·c, plain multi-head attention;
- inference ("absorbed"): q_h·K_h = (W_uk,hᵀ q_h)·c, so W_uk moves onto the query and every head
  attends to the one shared latent (MQA-like, keys = values = c); the per-head mix of latents is
  mapped out through W_uv,h in front of the output projection. Nothing per head is cached.

No RoPE on cross keys: position is implicit in the encoder states.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from voiceagent.model.layers import RMSNorm, masked_attention

__all__ = ["EALLQACrossAttention"]


class EALLQACrossAttention(nn.Module):
    def __init__(
        self, d_model: int, enc_dim: int, n_heads: int, head_dim: int, d_latent: int, eps: float = 1e-6
    ) -> None:
        super().__init__()
        self.n_heads, self.head_dim, self.d_latent = n_heads, head_dim, d_latent
        self.w_q = nn.Linear(d_model, n_heads * head_dim, bias=False)
        self.w_dkv = nn.Linear(enc_dim, d_latent, bias=False)
        self.latent_norm = RMSNorm(d_latent, eps)
        self.w_uk = nn.Parameter(torch.randn(n_heads, head_dim, d_latent) * d_latent**-0.5)  # K_h = W_uk,h·c
        self.w_uv = nn.Parameter(torch.randn(n_heads, head_dim, d_latent) * d_latent**-0.5)  # V_h = W_uv,h·c
        self.w_o = nn.Linear(n_heads * head_dim, d_model, bias=False)

    def compress(self, frames: Tensor) -> Tensor:
        """Encoder states `(B, S, enc_dim)` → latents `(B, S, d_c)`: what the call caches."""
        latents: Tensor = self.latent_norm(self.w_dkv(frames))  # (B, S, d_c)
        return latents

    def _queries(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        q: Tensor = self.w_q(x)  # (B, T, H·D)
        return q.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)

    def _output(self, o: Tensor) -> Tensor:
        b, _, t, _ = o.shape
        out: Tensor = self.w_o(o.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))
        return out  # (B, T, d_model)

    def forward_training(self, x: Tensor, latents: Tensor, key_mask: Tensor) -> Tensor:
        """Multi-head form. `x (B, T, d_model)`, `latents (B, S, d_c)`, `key_mask (B, S)` bool."""
        q = self._queries(x)  # (B, H, T, D)
        k = torch.einsum("bsc,hdc->bhsd", latents, self.w_uk)  # (B, H, S, D)
        v = torch.einsum("bsc,hdc->bhsd", latents, self.w_uv)  # (B, H, S, D)
        o = masked_attention(q, k, v, key_mask[:, None, None, :], self.head_dim**-0.5)  # (B, H, T, D)
        return self._output(o)

    def forward(self, x: Tensor, latents: Tensor, key_mask: Tensor) -> Tensor:
        """Absorbed (inference) form; same arguments and result as `forward_training`."""
        q_latent = torch.einsum("bhtd,hdc->bhtc", self._queries(x), self.w_uk)  # (B, H, T, d_c)
        shared = latents[:, None]  # (B, 1, S, d_c): one key/value head for all query heads
        o_latent = masked_attention(q_latent, shared, shared, key_mask[:, None, None, :], self.head_dim**-0.5)
        o = torch.einsum("bhtc,hdc->bhtd", o_latent, self.w_uv)  # (B, H, T, D)
        return self._output(o)
