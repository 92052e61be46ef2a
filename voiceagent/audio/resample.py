"""Sample-rate conversion through soxr: a streaming resampler for live audio and a one-shot function.

Both keep the sample type: int16 in gives int16 out, float32 in gives float32 out, so the media layer
never pays for a round trip through float just to change rate.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import soxr

__all__ = ["StreamResampler", "resample"]

_S = TypeVar("_S", bound=np.generic)

# The sample types soxr processes natively.
_DTYPES = (np.dtype(np.int16), np.dtype(np.int32), np.dtype(np.float32), np.dtype(np.float64))
_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


class StreamResampler:
    """Resamples one continuous mono stream chunk by chunk, keeping filter state between chunks.

    One instance handles one sample type: the ``dtype`` argument, or else the type of the first chunk
    (int16, int32, float32 or float64); a chunk of another type raises TypeError. Output lags input by
    the filter delay (the first chunks may return fewer samples, even none); ``flush()`` returns the
    rest and readies the instance for a new stream.
    """

    def __init__(
        self,
        in_rate: int,
        out_rate: int,
        *,
        quality: str = "HQ",
        dtype: npt.DTypeLike | None = None,
    ) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        if quality not in _QUALITIES:
            raise ValueError(f"quality must be one of {', '.join(_QUALITIES)}, got {quality!r}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.quality = quality
        self._dtype: np.dtype[Any] | None = None
        self._stream: Any = None  # soxr.ResampleStream, made once the sample type is known
        if dtype is not None:
            self._bind(np.dtype(dtype))

    @property
    def passthrough(self) -> bool:
        """True when both rates are equal and chunks are only copied."""
        return self.in_rate == self.out_rate

    def process(self, chunk: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Resample one chunk of the stream; returns the samples ready so far, in the chunk's type."""
        if chunk.ndim != 1:
            raise ValueError(f"StreamResampler takes mono 1-D chunks, got shape {chunk.shape}")
        if self._dtype is None:
            self._bind(chunk.dtype)
        elif chunk.dtype != self._dtype:
            raise TypeError(f"this resampler handles {self._dtype} samples, got {chunk.dtype}")
        if self._stream is None:
            return chunk.copy()
        out: npt.NDArray[Any] = self._stream.resample_chunk(np.ascontiguousarray(chunk))
        return out

    def flush(self) -> npt.NDArray[Any]:
        """End the stream: return the samples still inside the filter, then reset for a new stream.

        Before any chunk (and with no ``dtype`` given) this returns an empty float32 array.
        """
        dtype = self._dtype if self._dtype is not None else np.dtype(np.float32)
        if self._stream is None:
            return np.zeros(0, dtype=dtype)
        out: npt.NDArray[Any] = self._stream.resample_chunk(np.zeros(0, dtype=dtype), last=True)
        # soxr refuses input after the last chunk; clearing lets the same instance start over.
        self._stream.clear()
        return out

    def _bind(self, dtype: np.dtype[Any]) -> None:
        if dtype not in _DTYPES:
            raise TypeError(f"StreamResampler handles int16, int32, float32 or float64, got {dtype}")
        self._dtype = dtype
        if not self.passthrough:
            self._stream = soxr.ResampleStream(
                self.in_rate, self.out_rate, 1, dtype=dtype.name, quality=self.quality
            )


def resample(samples: npt.NDArray[_S], in_rate: int, out_rate: int) -> npt.NDArray[_S]:
    """Resample a whole mono signal at once (soxr HQ); same sample type out; a copy when rates match."""
    if in_rate <= 0 or out_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
    if samples.ndim != 1:
        raise ValueError(f"resample takes mono 1-D samples, got shape {samples.shape}")
    if samples.dtype not in _DTYPES:
        raise TypeError(f"resample handles int16, int32, float32 or float64, got {samples.dtype}")
    if in_rate == out_rate:
        return samples.copy()
    out: npt.NDArray[_S] = soxr.resample(np.ascontiguousarray(samples), in_rate, out_rate, quality="HQ")
    return out
