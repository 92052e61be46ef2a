"""Echo guard: remove the agent's own voice from the caller's leg before anyone listens to it.

On phone lines the agent's audio comes back on the inbound leg, attenuated (typically 6–20 dB)
and delayed (tens to a few hundred ms). A VAD on the raw inbound leg hears that echo as speech and
the agent would interrupt itself. The guard keeps the outbound frames actually played as a
reference, finds the echo path's delay by cross-correlation, fits a short filter around that delay
by least squares, and subtracts the predicted echo. What is left is the caller (and line noise);
the VAD and the barge-in policy look only at that residual.

The model is deliberately small (one delay, ``taps`` coefficients around it): that is what hybrid
and acoustic echo on a phone path mostly is, it adapts in a fraction of a second, and it costs
little enough to run for hundreds of calls per core. It re-estimates only while the agent is
audible; when the agent is silent the inbound leg passes through untouched.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

from voiceagent.audio import FRAME_SAMPLES, SAMPLE_RATE

__all__ = ["EchoGuard"]

# Reference energy below this (about -55 dBFS) means the agent is not speaking: nothing to cancel.
_ACTIVE_RMS = 60.0
# The correlation peak must stand out this much (normalised) to trust a new delay estimate.
_MIN_CORRELATION = 0.3


class EchoGuard:
    """Per-call echo estimate and canceller, fed one outbound and one inbound frame per tick."""

    def __init__(
        self,
        *,
        max_delay_ms: float = 500.0,
        window_ms: float = 600.0,
        taps: int = 9,
        update_every_frames: int = 5,
        frame_samples: int = FRAME_SAMPLES,
        sample_rate: int = SAMPLE_RATE,
    ) -> None:
        self.frame_samples = frame_samples
        self.max_delay = int(max_delay_ms * sample_rate / 1000)
        self.window = int(window_ms * sample_rate / 1000)
        self.taps = taps
        self.update_every = update_every_frames
        history = self.max_delay + self.window + taps + frame_samples
        self._ref: deque[npt.NDArray[np.float32]] = deque(maxlen=-(-history // frame_samples))
        self._inb: deque[npt.NDArray[np.float32]] = deque(maxlen=-(-self.window // frame_samples))
        self._frames = 0
        self.delay_samples: int | None = None
        self.correlation = 0.0
        self._filter: npt.NDArray[np.float32] | None = None

    def reference(self, frame: npt.NDArray[np.int16]) -> None:
        """An outbound frame as it was handed to the line."""
        self._ref.append(frame.astype(np.float32))

    def process(self, frame: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """Cancel the predicted echo from one inbound frame; returns the residual."""
        x = frame.astype(np.float32)
        self._inb.append(x)
        self._frames += 1
        if not self._reference_active():
            return frame
        if self._frames % self.update_every == 0:
            self._update()
        if self._filter is None or self.delay_samples is None:
            return frame
        echo = self._predict(self.delay_samples, len(self._ref) * self.frame_samples, self.frame_samples)
        residual = x - echo
        return np.clip(np.round(residual), -32768, 32767).astype(np.int16)

    @property
    def echo_gain_db(self) -> float | None:
        """Gain of the main tap (the echo's level relative to what was played), for the timeline."""
        if self._filter is None:
            return None
        peak = float(np.max(np.abs(self._filter)))
        return float(20.0 * np.log10(max(peak, 1e-6)))

    # ---- estimation ---------------------------------------------------------------------------

    def _reference_active(self) -> bool:
        span = self.max_delay // self.frame_samples + 1
        recent = list(self._ref)[-span:]
        return any(float(np.sqrt(np.mean(f * f))) > _ACTIVE_RMS for f in recent)

    def _ref_signal(self) -> npt.NDArray[np.float32]:
        return np.concatenate(self._ref) if self._ref else np.zeros(0, np.float32)

    def _update(self) -> None:
        ref = self._ref_signal()
        inb = np.concatenate(self._inb)
        n = inb.size
        if n < self.window // 2 or ref.size < n + self.taps:
            return
        # inbound[t] ≈ h * ref[t - delay]: correlate the latest n inbound samples with the
        # reference ending at the same instant, for every candidate delay.
        span = min(ref.size, n + self.max_delay)
        seg = ref[-span:]
        size = 1 << int(np.ceil(np.log2(span + n)))
        corr = np.fft.irfft(np.fft.rfft(seg, size) * np.conj(np.fft.rfft(inb, size)), size)
        # corr[k] = sum_t seg[t + k] * inb[t]; delay d lines inbound up with seg offset span - n - d.
        delays = np.arange(0, span - n + 1)
        offsets = span - n - delays
        values = corr[offsets]
        energy_ref = np.sqrt(
            np.convolve(seg * seg, np.ones(n, dtype=np.float32), mode="valid")[offsets] + 1e-3
        )
        energy_in = float(np.sqrt(np.dot(inb, inb)) + 1e-3)
        normalised = np.abs(values) / (energy_ref * energy_in)
        best = int(np.argmax(normalised))
        if normalised[best] < _MIN_CORRELATION:
            return
        self.correlation = float(normalised[best])
        self.delay_samples = int(delays[best])
        self._fit(ref, inb, self.delay_samples)

    def _fit(self, ref: npt.NDArray[np.float32], inb: npt.NDArray[np.float32], delay: int) -> None:
        """Least-squares filter of ``taps`` coefficients centred on ``delay``."""
        half = self.taps // 2
        n = inb.size
        end = ref.size - delay + half
        cols = [ref[end - k - n : end - k] for k in range(self.taps)]
        a = np.stack(cols, axis=1).astype(np.float64)
        if a.shape[0] != n:
            return
        coef, *_ = np.linalg.lstsq(a, inb.astype(np.float64), rcond=None)
        self._filter = coef.astype(np.float32)

    def _predict(self, delay: int, ref_size: int, count: int) -> npt.NDArray[np.float32]:
        assert self._filter is not None
        ref = self._ref_signal()
        half = self.taps // 2
        end = ref.size - delay + half
        out = np.zeros(count, dtype=np.float32)
        for k, c in enumerate(self._filter):
            start = end - k - count
            if start < 0:
                continue
            out += c * ref[start : start + count]
        return out
