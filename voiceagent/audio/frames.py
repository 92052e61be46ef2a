"""The media layer's frame format (20 ms of 16 kHz PCM16 mono) and small sample conversions.

Everything past the codecs works on int16 frames of ``FRAME_SAMPLES``; models that want float get
``pcm16_to_float`` at their edge, and their float output comes back through ``float_to_pcm16``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "FRAME_MS",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "Framer",
    "float_to_pcm16",
    "pcm16_to_float",
    "rms_dbfs",
    "silence",
]

SAMPLE_RATE = 16000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 320

# Quieter than any real line noise; also what digital silence reports instead of -inf.
_FLOOR_DBFS = -120.0
_PCM16_SCALE = 32768.0


class Framer:
    """Cuts a stream of int16 samples of any chunk size into fixed-size frames."""

    def __init__(self, frame_samples: int = FRAME_SAMPLES) -> None:
        if frame_samples <= 0:
            raise ValueError(f"frame_samples must be positive, got {frame_samples}")
        self.frame_samples = frame_samples
        self._pending = np.zeros(frame_samples, dtype=np.int16)
        self._pending_samples = 0

    def push(self, samples: npt.NDArray[np.int16]) -> list[npt.NDArray[np.int16]]:
        """Add samples; return every frame now complete, each a fresh array of ``frame_samples``."""
        _check_pcm16(samples, "Framer.push")
        frames: list[npt.NDArray[np.int16]] = []
        size = self.frame_samples
        start = 0
        if self._pending_samples:
            start = min(size - self._pending_samples, len(samples))
            self._pending[self._pending_samples : self._pending_samples + start] = samples[:start]
            self._pending_samples += start
            if self._pending_samples < size:
                return frames
            frames.append(self._pending.copy())
            self._pending_samples = 0
        whole_end = start + (len(samples) - start) // size * size
        frames.extend(samples[i : i + size].copy() for i in range(start, whole_end, size))
        rest = len(samples) - whole_end
        self._pending[:rest] = samples[whole_end:]
        self._pending_samples = rest
        return frames

    def flush(self) -> npt.NDArray[np.int16] | None:
        """Return the buffered remainder zero-padded to a full frame, or None if nothing is buffered."""
        if not self._pending_samples:
            return None
        frame = np.zeros(self.frame_samples, dtype=np.int16)
        frame[: self._pending_samples] = self._pending[: self._pending_samples]
        self._pending_samples = 0
        return frame


def pcm16_to_float(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    """int16 samples as float32 in [-1, 1) (divided by 32768)."""
    _check_pcm16(samples, "pcm16_to_float")
    return samples.astype(np.float32) / np.float32(_PCM16_SCALE)


def float_to_pcm16(samples: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.int16]:
    """Float samples (nominally [-1, 1]) as int16: scaled by 32768, rounded, clipped; NaN becomes 0."""
    if not np.issubdtype(samples.dtype, np.floating):
        raise TypeError(f"float_to_pcm16 needs float samples, got {samples.dtype}")
    # A NaN from a model must not turn into a full-scale click.
    scaled = np.nan_to_num(samples.astype(np.float64, copy=False), nan=0.0) * _PCM16_SCALE
    return np.clip(np.rint(scaled), -32768, 32767).astype(np.int16)


def silence(samples: int) -> npt.NDArray[np.int16]:
    """``samples`` int16 zeros."""
    if samples < 0:
        raise ValueError(f"samples must not be negative, got {samples}")
    return np.zeros(samples, dtype=np.int16)


def rms_dbfs(samples: npt.NDArray[np.int16] | npt.NDArray[np.floating[Any]]) -> float:
    """RMS level in dBFS (full-scale sine ≈ -3); int16 or float input; -120.0 for silence or no samples."""
    if samples.size == 0:
        return _FLOOR_DBFS
    values = samples.astype(np.float64)
    if samples.dtype == np.int16:
        values /= _PCM16_SCALE
    mean_square = float(np.mean(np.square(values)))
    if mean_square <= 0.0:
        return _FLOOR_DBFS
    return max(10.0 * math.log10(mean_square), _FLOOR_DBFS)


def _check_pcm16(samples: npt.NDArray[np.int16], where: str) -> None:
    # A float array would be silently truncated to zeros by the int16 copies below.
    if samples.dtype != np.int16:
        raise TypeError(f"{where} needs int16 samples, got {samples.dtype}")
    if samples.ndim != 1:
        raise ValueError(f"{where} needs mono 1-D samples, got shape {samples.shape}")
