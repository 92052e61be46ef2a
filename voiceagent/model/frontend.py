"""Streaming log-mel front end in torch (no librosa).

Filterbank: Slaney-style, as librosa's default (`htk=False, norm="slaney"`): the Slaney mel scale
(linear below 1 kHz, logarithmic above) and triangles scaled to unit area. Framing is causal: the
signal is preceded by `n_fft - hop_length` zeros and frame t covers samples
`[t*hop - (n_fft - hop), t*hop + hop)`, so every full hop of audio yields exactly one frame and a
chunked computation with the carried tail equals the whole-utterance one. Features are
`ln(max(mel_power, 1e-10))` of the power spectrum under a periodic Hann window (no per-utterance
normalisation, which streaming could not know).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from voiceagent.model.config import SpeechLMConfig

__all__ = ["LOG_FLOOR", "LogMelFrontend", "hz_to_mel", "mel_filterbank", "mel_to_hz"]

LOG_FLOOR = 1e-10
_F_SP = 200.0 / 3.0  # Hz per mel below the break
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(hz: Tensor) -> Tensor:
    """Slaney mel scale."""
    linear = hz / _F_SP
    log = _MIN_LOG_MEL + torch.log(torch.clamp(hz, min=1e-12) / _MIN_LOG_HZ) / _LOGSTEP
    return torch.where(hz >= _MIN_LOG_HZ, log, linear)


def mel_to_hz(mel: Tensor) -> Tensor:
    """Inverse of `hz_to_mel`."""
    linear = mel * _F_SP
    log = _MIN_LOG_HZ * torch.exp(_LOGSTEP * (mel - _MIN_LOG_MEL))
    return torch.where(mel >= _MIN_LOG_MEL, log, linear)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min_hz: float, f_max_hz: float) -> Tensor:
    """Slaney-normalised triangular filters, `(n_mels, n_fft // 2 + 1)`, float32 (built in float64)."""
    fft_hz = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    lo, hi = hz_to_mel(torch.tensor([f_min_hz, f_max_hz], dtype=torch.float64))
    edges_hz = mel_to_hz(torch.linspace(float(lo), float(hi), n_mels + 2, dtype=torch.float64))
    widths = edges_hz.diff()  # (n_mels + 1,)
    ramps = edges_hz[:, None] - fft_hz[None, :]  # (n_mels + 2, F)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)  # (n_mels, F)
    weights = weights * (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights.to(torch.float32)


class LogMelFrontend(nn.Module):
    """`forward(audio)` for whole utterances; `init_state` + `stream` for chunks (same result)."""

    window: Tensor
    filterbank: Tensor

    def __init__(self, config: SpeechLMConfig) -> None:
        super().__init__()
        self.n_fft = config.n_fft
        self.hop_length = config.hop_length
        self.register_buffer("window", torch.hann_window(config.n_fft, periodic=True), persistent=False)
        fb = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.f_min_hz, config.f_max_hz)
        self.register_buffer("filterbank", fb, persistent=False)

    def init_state(self, batch: int, device: torch.device | None = None) -> Tensor:
        """The carried audio tail of each stream: `(B, n_fft - hop)` zeros (the causal left padding)."""
        return torch.zeros(batch, self.n_fft - self.hop_length, device=device)

    def stream(self, audio: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """`audio (B, N)` float in [-1, 1] → `(log-mel (B, F, n_mels), new state)`."""
        x = torch.cat([state, audio.to(state.dtype)], dim=1)  # (B, tail + N)
        n_frames = max(0, (x.shape[1] - self.n_fft) // self.hop_length + 1)
        if n_frames == 0:  # unfold and the FFT refuse a signal shorter than one window
            return x.new_zeros(x.shape[0], 0, self.filterbank.shape[0]), x
        frames = x.unfold(1, self.n_fft, self.hop_length)[:, :n_frames]  # (B, F, n_fft)
        return self.log_mel(frames), x[:, n_frames * self.hop_length :]

    def forward(self, audio: Tensor) -> Tensor:
        """`audio (B, N)` → `(B, N // hop, n_mels)`."""
        mel, _ = self.stream(audio, self.init_state(audio.shape[0], audio.device))
        return mel

    def log_mel(self, frames: Tensor) -> Tensor:
        """`frames (B, F, n_fft)` → `(B, F, n_mels)`."""
        spec = torch.fft.rfft(frames * self.window, dim=-1)  # (B, F, n_fft//2 + 1)
        power = spec.real.square() + spec.imag.square()
        mel = power @ self.filterbank.T  # (B, F, n_mels)
        return torch.log(torch.clamp(mel, min=LOG_FLOOR))
