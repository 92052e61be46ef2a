"""Vocoders turn the speech head's log-mel frames into audio. The default needs no weights.

`GriffinLimVocoder`: mel power → linear power through the pseudo-inverse of the front end's
filterbank (clamped at zero), then Griffin-Lim phase recovery with torch's STFT/ISTFT. Quality is
that of Griffin-Lim (robotic, but intelligible); a neural vocoder plugs in through `Vocoder`.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from voiceagent.model.config import SpeechLMConfig
from voiceagent.model.frontend import mel_filterbank

__all__ = ["GriffinLimVocoder", "Vocoder"]


@runtime_checkable
class Vocoder(Protocol):
    """Log-mel `(B, T, n_mels)` (the front end's features) → audio `(B, T * hop_length)` in [-1, 1]."""

    @property
    def sample_rate(self) -> int: ...

    def __call__(self, log_mel: Tensor) -> Tensor: ...


class GriffinLimVocoder:
    def __init__(
        self, config: SpeechLMConfig, n_iter: int = 32, momentum: float = 0.99, seed: int = 0
    ) -> None:
        self.config = config
        self.n_iter, self.momentum, self.seed = n_iter, momentum, seed
        fb = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.f_min_hz, config.f_max_hz)
        self._inverse = torch.linalg.pinv(fb.double()).float()  # (F, n_mels)
        self._window = torch.hann_window(config.n_fft, periodic=True)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def linear_magnitude(self, log_mel: Tensor) -> Tensor:
        """`(B, T, n_mels)` → magnitude spectrogram `(B, F, T)`."""
        power = torch.exp(log_mel.float()) @ self._inverse.to(log_mel.device).T  # (B, T, F)
        magnitude: Tensor = power.clamp(min=0.0).sqrt().transpose(1, 2)
        return magnitude

    def __call__(self, log_mel: Tensor) -> Tensor:
        c = self.config
        magnitude = self.linear_magnitude(log_mel)  # (B, F, T)
        length = log_mel.shape[1] * c.hop_length
        window = self._window.to(log_mel.device)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        phase = torch.rand(magnitude.shape, generator=gen).to(log_mel.device) * 2 * math.pi
        angles = torch.polar(torch.ones_like(magnitude), phase)  # (B, F, T) complex
        previous = torch.zeros_like(angles)

        def istft(spec: Tensor) -> Tensor:
            return torch.istft(spec, c.n_fft, c.hop_length, window=window, center=True, length=length)

        for _ in range(self.n_iter):
            audio = istft(magnitude * angles)  # (B, N)
            rebuilt = torch.stft(
                audio, c.n_fft, c.hop_length, window=window, center=True, return_complex=True
            )
            rebuilt = rebuilt[..., : magnitude.shape[-1]]
            accelerated = rebuilt - (self.momentum / (1 + self.momentum)) * previous  # fast Griffin-Lim
            angles = accelerated / accelerated.abs().clamp(min=1e-16)
            previous = rebuilt
        audio = istft(magnitude * angles)
        return audio.clamp(-1.0, 1.0)
