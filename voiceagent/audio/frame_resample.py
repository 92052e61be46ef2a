"""Low-latency resampling of 20 ms frames between the telephony rates (8, 16, 24, 48 kHz).

soxr's streaming resampler works in blocks: at 20 ms chunks its HQ setting returns nothing for
four chunks and then 100 ms at once (16 kHz → 8 kHz), LQ 60 ms at a time. On a live call that
block becomes delay: 16 k → 8 k → 16 k through it added ~220 ms, far more than the line itself. At
the frame edge of the media layer we need a fixed, small delay instead, so this is a plain
polyphase FIR (windowed sinc, Kaiser window) for rational ratios with small factors, which is
what telephony uses. Each output frame is available as soon as its input frame is. Whole clips
and odd ratios still go through soxr (:func:`voiceagent.audio.resample`).
"""

from __future__ import annotations

from math import gcd
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["FrameResampler"]

# Taps per phase: 16 gives ~60 dB stop-band with the Kaiser window below and ~1 ms of delay.
_TAPS_PER_PHASE = 16
_KAISER_BETA = 7.0
# Pass-band edge as a fraction of the lower Nyquist frequency; telephone speech ends well below.
_CUTOFF = 0.92


class FrameResampler:
    """Streaming ``in_rate`` → ``out_rate`` for ratios ``up/down`` with both factors ≤ 6.

    int16 in gives int16 out, float32 in gives float32 out. The delay is fixed:
    ``delay_samples`` at the output rate (about 1 ms).
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        common = gcd(in_rate, out_rate)
        self.up, self.down = out_rate // common, in_rate // common
        if self.up > 6 or self.down > 6:
            raise ValueError(f"{in_rate} -> {out_rate} is not a telephony ratio; use StreamResampler")
        self.in_rate, self.out_rate = in_rate, out_rate
        factor = max(self.up, self.down)
        taps = _TAPS_PER_PHASE * factor * 2
        n = np.arange(taps) - (taps - 1) / 2
        # Low-pass at the lower of the two Nyquist frequencies, on the upsampled grid.
        cutoff = _CUTOFF / factor
        kernel = cutoff * np.sinc(cutoff * n) * np.kaiser(taps, _KAISER_BETA)
        self._kernel = (kernel / kernel.sum() * self.up).astype(np.float64)
        self._history = np.zeros(taps - 1, dtype=np.float64)
        self._phase = 0  # index on the upsampled grid of the next output sample
        self.delay_samples = (taps - 1) / 2 / self.down

    @property
    def passthrough(self) -> bool:
        return self.up == self.down == 1

    def process(self, chunk: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Resample one chunk; the output holds every sample the chunk makes available."""
        if self.passthrough:
            return chunk.copy()
        x = chunk.astype(np.float64)
        upsampled = np.zeros(x.size * self.up, dtype=np.float64)
        upsampled[:: self.up] = x
        padded = np.concatenate([self._history, upsampled])
        filtered = np.convolve(padded, self._kernel, mode="valid")
        picked = filtered[self._phase :: self.down]
        self._phase = (self._phase - filtered.size) % self.down
        self._history = padded[padded.size - (self._kernel.size - 1) :]
        if chunk.dtype == np.int16:
            return np.clip(np.round(picked), -32768, 32767).astype(np.int16)
        return picked.astype(chunk.dtype)
