"""Mixture-of-experts feed-forward: routed top-k SwiGLU experts plus an always-on shared expert.

Routing: softmax over experts, keep the top k, renormalise their weights to sum to one. The
auxiliary load-balancing loss (Switch Transformer style) is `E · Σ_e f_e · P_e`, with f_e the share of
routed slots that went to expert e and P_e its mean router probability; it is 1 when balanced.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.functional import silu

from voiceagent.model.layers import SwiGLU

__all__ = ["MoEFeedForward"]


class MoEFeedForward(nn.Module):
    def __init__(self, dim: int, n_experts: int, top_k: int, hidden: int, shared_hidden: int) -> None:
        super().__init__()
        self.n_experts, self.top_k = n_experts, top_k
        self.router = nn.Linear(dim, n_experts, bias=False)
        self.w_gate = nn.Parameter(torch.randn(n_experts, dim, hidden) * dim**-0.5)  # (E, d, h)
        self.w_up = nn.Parameter(torch.randn(n_experts, dim, hidden) * dim**-0.5)  # (E, d, h)
        self.w_down = nn.Parameter(torch.randn(n_experts, hidden, dim) * hidden**-0.5)  # (E, h, d)
        self.shared = SwiGLU(dim, shared_hidden) if shared_hidden > 0 else None

    def route(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """`x (N, d)` → router probs `(N, E)`, top-k weights `(N, k)`, top-k expert ids `(N, k)`."""
        probs = torch.softmax(self.router(x).float(), dim=-1)  # (N, E)
        weights, ids = probs.topk(self.top_k, dim=-1)  # (N, k)
        weights = weights / weights.sum(-1, keepdim=True)
        return probs, weights.to(x.dtype), ids

    def _expert(self, e: int, x: Tensor) -> Tensor:
        return (silu(x @ self.w_gate[e]) * (x @ self.w_up[e])) @ self.w_down[e]  # (n, d)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """`x (B, T, d)` → `(y (B, T, d), aux_loss ())`. Each expert runs only on its tokens."""
        flat = x.reshape(-1, x.shape[-1])  # (N, d)
        probs, weights, ids = self.route(flat)
        slot_expert = ids.reshape(-1)  # (N·k,)
        order = torch.argsort(slot_expert, stable=True)  # slots grouped by expert
        counts = torch.bincount(slot_expert, minlength=self.n_experts)  # (E,)
        token_of_slot = order // self.top_k
        weight_of_slot = weights.reshape(-1)[order]
        y = torch.zeros_like(flat)
        start = 0
        for e, n in enumerate(counts.tolist()):
            if n:
                tokens = token_of_slot[start : start + n]
                out = self._expert(e, flat[tokens]) * weight_of_slot[start : start + n, None]
                y.index_add_(0, tokens, out)
                start += n
        if self.shared is not None:
            y = y + self.shared(flat)
        share = counts.float() / slot_expert.numel()  # f_e
        aux = self.n_experts * (share * probs.mean(0)).sum()
        return y.view_as(x), aux

    def forward_dense(self, x: Tensor) -> Tensor:
        """Reference: every expert on every token, combined with the (mostly zero) gate weights."""
        flat = x.reshape(-1, x.shape[-1])  # (N, d)
        _, weights, ids = self.route(flat)
        gates = torch.zeros(flat.shape[0], self.n_experts, dtype=flat.dtype, device=flat.device)
        gates.scatter_(1, ids, weights)  # (N, E)
        gate = torch.einsum("nd,edh->enh", flat, self.w_gate)  # (E, N, h)
        hidden = silu(gate) * torch.einsum("nd,edh->enh", flat, self.w_up)
        outs = torch.einsum("enh,ehd->end", hidden, self.w_down)  # (E, N, d)
        y = torch.einsum("end,ne->nd", outs, gates)
        if self.shared is not None:
            y = y + self.shared(flat)
        return y.view_as(x)
