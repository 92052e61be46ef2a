"""Streaming speech encoder: causal conv subsampling (100 Hz → 12.5 Hz) and a causal transformer.

Everything is causal and the attention window is bounded (`enc_window_frames`), so a per-stream
state (conv input tails, the last `window - 1` keys/values of each layer, a frame counter) lets
`encode_chunk` process audio as it arrives and give the same frames as encoding the whole turn.
Streams batched together must be fed chunks of the same length; feeding multiples of the
subsampling factor (8 mel frames = 80 ms) keeps every stream's state the same shape.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.functional import gelu

from voiceagent.model.config import SpeechLMConfig
from voiceagent.model.layers import RMSNorm, apply_rope, masked_attention

__all__ = ["CausalConvSubsampler", "EncoderLayer", "EncoderState", "SpeechEncoder"]


@dataclass
class EncoderState:
    """Per-stream encoder state; batch dimension first everywhere."""

    conv_tails: list[Tensor]  # per conv layer: (B, C_in, tail) input not yet consumed
    keys: list[Tensor]  # per transformer layer: (B, H, W - 1, Dh), roped
    values: list[Tensor]  # per transformer layer: (B, H, W - 1, Dh)
    n_frames: Tensor  # (B,) long: 12.5 Hz frames emitted so far

    def rows(self, index: Tensor) -> EncoderState:
        """The states of the streams in `index` (long `(B',)`), e.g. to batch a subset of calls."""
        return EncoderState(
            [t[index] for t in self.conv_tails],
            [t[index] for t in self.keys],
            [t[index] for t in self.values],
            self.n_frames[index],
        )

    @staticmethod
    def cat(states: Sequence[EncoderState]) -> EncoderState:
        """Stack streams into one batch (their conv tails must have the same length)."""
        return EncoderState(
            [torch.cat(ts) for ts in zip(*(s.conv_tails for s in states), strict=True)],
            [torch.cat(ts) for ts in zip(*(s.keys for s in states), strict=True)],
            [torch.cat(ts) for ts in zip(*(s.values for s in states), strict=True)],
            torch.cat([s.n_frames for s in states]),
        )


class CausalConvSubsampler(nn.Module):
    """Stride-2 causal Conv1d layers over time (mel bins as channels), then a projection to enc_dim."""

    def __init__(self, config: SpeechLMConfig) -> None:
        super().__init__()
        self.kernel = config.conv_kernel
        chans = [config.n_mels] + [config.conv_channels] * config.subsample_layers
        self.in_channels = chans[:-1]
        self.convs = nn.ModuleList(
            nn.Conv1d(c_in, c_out, config.conv_kernel, stride=2) for c_in, c_out in itertools.pairwise(chans)
        )
        self.proj = nn.Linear(config.conv_channels, config.enc_dim)

    def init_tails(self, batch: int, device: torch.device | None, dtype: torch.dtype) -> list[Tensor]:
        # The causal left padding: kernel - 1 zeros in front of every layer's input.
        return [torch.zeros(batch, c, self.kernel - 1, device=device, dtype=dtype) for c in self.in_channels]

    def forward(self, mel: Tensor, tails: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """`mel (B, T, n_mels)` → `(B, T', enc_dim)` and the new tails."""
        x = mel.transpose(1, 2)  # (B, C, T)
        new_tails = []
        for conv, tail in zip(self.convs, tails, strict=True):
            assert isinstance(conv, nn.Conv1d)
            x = torch.cat([tail, x], dim=2)  # (B, C_in, tail + T)
            n_out = max(0, (x.shape[2] - self.kernel) // 2 + 1)
            new_tails.append(x[:, :, 2 * n_out :])
            # (B, C_out, n_out); a conv over fewer samples than its kernel would raise
            x = gelu(conv(x)) if n_out else x.new_zeros(x.shape[0], conv.out_channels, 0)
        frames: Tensor = self.proj(x.transpose(1, 2))  # (B, T', enc_dim)
        return frames, new_tails


class EncoderLayer(nn.Module):
    """Pre-norm causal self-attention over a sliding window, then a GELU MLP."""

    def __init__(self, config: SpeechLMConfig) -> None:
        super().__init__()
        self.n_heads = config.enc_heads
        self.head_dim = config.enc_dim // config.enc_heads
        self.window = config.enc_window_frames
        self.rope_base = config.rope_base
        self.norm1 = RMSNorm(config.enc_dim, config.norm_eps)
        self.qkv = nn.Linear(config.enc_dim, 3 * config.enc_dim, bias=False)
        self.out = nn.Linear(config.enc_dim, config.enc_dim, bias=False)
        self.norm2 = RMSNorm(config.enc_dim, config.norm_eps)
        self.mlp = nn.Sequential(
            nn.Linear(config.enc_dim, config.enc_ffn_dim),
            nn.GELU(),
            nn.Linear(config.enc_ffn_dim, config.enc_dim),
        )

    def forward(
        self, x: Tensor, k_cache: Tensor, v_cache: Tensor, n_frames: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """`x (B, T, d)`; caches `(B, H, W-1, Dh)`; `n_frames (B,)` frames before this chunk."""
        b, t, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q_pos = n_frames[:, None] + torch.arange(t, device=x.device)  # (B, T)
        q, k = apply_rope(q, q_pos, self.rope_base), apply_rope(k, q_pos, self.rope_base)  # (B, H, T, Dh)
        keys = torch.cat([k_cache, k], dim=2)  # (B, H, W-1+T, Dh)
        values = torch.cat([v_cache, v], dim=2)
        k_pos = n_frames[:, None] - (self.window - 1) + torch.arange(keys.shape[2], device=x.device)  # (B, S)
        lag = q_pos[:, :, None] - k_pos[:, None, :]  # (B, T, S)
        mask = (k_pos[:, None, :] >= 0) & (lag >= 0) & (lag < self.window)
        o = masked_attention(q, keys, values, mask[:, None], self.head_dim**-0.5)  # (B, H, T, Dh)
        x = x + self.out(o.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))
        x = x + self.mlp(self.norm2(x))
        keep = self.window - 1
        return x, keys[:, :, keys.shape[2] - keep :], values[:, :, values.shape[2] - keep :]


class SpeechEncoder(nn.Module):
    """`encode_chunk(mel_chunk, state) -> (frames, state)`; `forward(mel)` encodes a whole turn."""

    def __init__(self, config: SpeechLMConfig) -> None:
        super().__init__()
        self.config = config
        self.subsample = CausalConvSubsampler(config)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.enc_layers))
        self.norm = RMSNorm(config.enc_dim, config.norm_eps)

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> EncoderState:
        dtype = dtype or self.norm.weight.dtype
        c = self.config
        head_dim = c.enc_dim // c.enc_heads
        shape = (batch, c.enc_heads, c.enc_window_frames - 1, head_dim)
        return EncoderState(
            conv_tails=self.subsample.init_tails(batch, device, dtype),
            keys=[torch.zeros(shape, device=device, dtype=dtype) for _ in self.layers],
            values=[torch.zeros(shape, device=device, dtype=dtype) for _ in self.layers],
            n_frames=torch.zeros(batch, dtype=torch.long, device=device),
        )

    def encode_chunk(self, mel: Tensor, state: EncoderState) -> tuple[Tensor, EncoderState]:
        """`mel (B, T, n_mels)` → `(frames (B, T', enc_dim), new state)`; T' may be 0."""
        x, tails = self.subsample(mel.to(self.norm.weight.dtype), state.conv_tails)  # (B, T', d)
        keys, values = [], []
        for layer, k_cache, v_cache in zip(self.layers, state.keys, state.values, strict=True):
            assert isinstance(layer, EncoderLayer)
            x, k_cache, v_cache = layer(x, k_cache, v_cache, state.n_frames)
            keys.append(k_cache)
            values.append(v_cache)
        return self.norm(x), EncoderState(tails, keys, values, state.n_frames + x.shape[1])

    def forward(self, mel: Tensor) -> Tensor:
        """Whole turns: `mel (B, T, n_mels)` → `(B, ceil(T / 8), enc_dim)`."""
        frames, _ = self.encode_chunk(mel, self.init_state(mel.shape[0], mel.device))
        return frames
