"""Small building blocks shared by the encoder and the decoder: RMSNorm, RoPE, masked attention, SwiGLU."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.functional import silu

__all__ = ["RMSNorm", "SwiGLU", "apply_rope", "masked_attention"]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        normed = x.float() * torch.rsqrt(x.float().square().mean(-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight


class SwiGLU(nn.Module):
    """`w_down(silu(w_gate x) * w_up x)`, no biases."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w_gate = nn.Linear(dim, hidden, bias=False)
        self.w_up = nn.Linear(dim, hidden, bias=False)
        self.w_down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.w_down(silu(self.w_gate(x)) * self.w_up(x))
        return out


def apply_rope(x: Tensor, positions: Tensor, base: float) -> Tensor:
    """Rotary embedding (half-split form). `x (B, H, T, D)`, `positions (B, T)` or `(T,)` absolute."""
    half = x.shape[-1] // 2
    inv_freq = base ** (-torch.arange(half, device=x.device, dtype=torch.float32) / half)  # (D/2,)
    angles = positions.to(torch.float32)[..., None] * inv_freq  # (B, T, D/2) or (T, D/2)
    if angles.dim() == 3:
        angles = angles[:, None]  # (B, 1, T, D/2)
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., :half].float(), x[..., half:].float()
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).to(x.dtype)


def masked_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, scale: float) -> Tensor:
    """Softmax attention. `q (B, H, T, Dk)`, `k (B, H|1, S, Dk)`, `v (B, H|1, S, Dv)`,
    `mask` bool broadcastable to `(B, H, T, S)`, True where a query may attend. A query with no
    allowed key gets zeros (an empty call's cross-attention), not NaN."""
    scores = (q @ k.transpose(-1, -2)).float() * scale  # (B, H, T, S)
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1) * mask  # zero rows where nothing is allowed
    return probs.to(v.dtype) @ v  # (B, H, T, Dv)
