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
# Above this the fitted filter is trusted: the residual is the caller, the echo is gone.
_CONVERGED_CORRELATION = 0.5
# Before that, inbound no louder than the loudest recent reference frame less this is suspect:
# echo returns at least ~6 dB down on any sane line, so 3 dB leaves margin.
_UNCONVERGED_MARGIN = 10 ** (-3 / 20)
# After it, a residual this far below the predicted echo is leftover echo, not a caller.
_LEAK_MARGIN = 10 ** (-12 / 20)
# A prediction quieter than this (RMS) changes nothing audible, so it proves nothing either way.
_MATERIAL_ECHO_RMS = 30.0
# This many frames in a row where subtracting the prediction made the frame louder: the fitted
# echo path is wrong (fitted on a caller talking over the agent), so it is dropped and re-learnt.
_MAX_MISFITS = 5


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
        self._ref_rms: deque[float] = deque(maxlen=self.max_delay // frame_samples + 2)
        self._inb: deque[npt.NDArray[np.float32]] = deque(maxlen=-(-self.window // frame_samples))
        self._frames = 0
        self.delay_samples: int | None = None
        self.correlation = 0.0
        self._filter: npt.NDArray[np.float32] | None = None
        self.echo_suspect = False
        # Frames since the agent became audible: a filter fitted on less than a full window of
        # its voice (the rest silence) can correlate well and still be wrong.
        self._active_frames = 0
        # The agent's frames heard so far in this call while no echo path was known: once a full
        # learning window of them found none, the line has none (most digital trunks), and the
        # search stays slow on every later answer too.
        self._unmatched_frames = 0
        self.searches = 0  # delay searches run (each three FFTs over the search window)
        self._misfits = 0
        self._trust_after_frames = -(-(self.window + self.max_delay // 2) // frame_samples)

    @property
    def converged(self) -> bool:
        """Whether the fitted filter is trusted to have removed the echo."""
        return (
            self._filter is not None
            and self.correlation >= _CONVERGED_CORRELATION
            and self._active_frames >= self._trust_after_frames
        )

    def reference(self, frame: npt.NDArray[np.int16]) -> None:
        """An outbound frame as it was handed to the line."""
        x = frame.astype(np.float32)
        self._ref.append(x)
        self._ref_rms.append(float(np.sqrt(np.dot(x, x) / x.size)))

    def process(self, frame: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """Cancel the predicted echo from one inbound frame; returns the residual.

        Also sets :attr:`echo_suspect`: whether what is left may still be the agent's own voice.
        """
        x = frame.astype(np.float32)
        self._inb.append(x)
        self._frames += 1
        loudest_ref = max(self._ref_rms, default=0.0)
        if loudest_ref <= _ACTIVE_RMS:
            self.echo_suspect = False
            self._active_frames = 0
            return frame
        self._active_frames += 1
        learning = self._active_frames < self._trust_after_frames
        if self._filter is None:
            self._unmatched_frames += 1
        # Adapt often until the filter is trusted, then only to follow a drifting line. A line
        # with no echo path at all (most digital trunks, browsers) never gives a filter: after a
        # full learning window of the agent's voice the search slows down too, for the rest of
        # the call, so that its FFTs do not cost every call CPU for nothing; an echo that appears
        # later is still found within half a second.
        no_echo_path = self._filter is None and self._unmatched_frames >= self._trust_after_frames
        every = self.update_every * (5 if self.converged or no_echo_path else 1)
        if self._frames % every == 0:
            self._update()
        inbound_rms = float(np.sqrt(np.dot(x, x) / x.size))
        if learning:
            # Until a full window of the agent's voice has been heard, be careful: inbound no
            # louder than the loudest recent reference (less a margin) may be echo.
            self.echo_suspect = inbound_rms < loudest_ref * _UNCONVERGED_MARGIN
        elif self._filter is None:
            # No echo path at all (a browser's own echo cancellation, a clean line): a caller
            # quieter than the agent must still be heard.
            self.echo_suspect = False
        if self._filter is None or self.delay_samples is None:
            return frame
        echo = self._predict(self.delay_samples, self.frame_samples)
        residual = x - echo
        residual_rms = float(np.sqrt(np.dot(residual, residual) / residual.size))
        echo_rms = float(np.sqrt(np.dot(echo, echo) / echo.size))
        if residual_rms > inbound_rms:
            # Cancelling real echo only ever removes energy. A residual louder than the inbound
            # frame means the prediction is not in it: subtracting it would put the agent's voice
            # on the caller's leg (over silence, the transcriber would hear the agent). Pass the
            # frame as it came; the caller is not the agent's echo.
            if echo_rms > _MATERIAL_ECHO_RMS:
                self._misfits += 1
                if self._misfits >= _MAX_MISFITS:
                    self._filter, self.delay_samples, self.correlation = None, None, 0.0
                if not learning:
                    self.echo_suspect = False
            return frame
        self._misfits = 0
        if not learning:
            self.echo_suspect = residual_rms < echo_rms * _LEAK_MARGIN
        return np.clip(np.round(residual), -32768, 32767).astype(np.int16)

    # ---- estimation ---------------------------------------------------------------------------

    def _ref_signal(self) -> npt.NDArray[np.float32]:
        return np.concatenate(self._ref) if self._ref else np.zeros(0, np.float32)

    def _update(self) -> None:
        self.searches += 1
        ref = self._ref_signal()
        inb = np.concatenate(self._inb)
        n = inb.size & ~1
        inb = inb[-n:]
        if n < self.window // 2 or ref.size < n + self.taps:
            return
        # inbound[t] ≈ h * ref[t - delay]: correlate the latest n inbound samples with the
        # reference ending at the same instant, for every candidate delay.
        span = min(ref.size, n + self.max_delay) & ~1
        seg = ref[-span:]
        # The search runs at half rate (pairs averaged, a crude low-pass): a phone line carries
        # nothing above 4 kHz, a voice little, and a search (most of the guard's CPU) costs half
        # as much. The half-rate peak is then refined at full rate.
        half = _correlate(_halve(seg), _halve(inb))
        coarse = 2 * int(np.argmax(half))
        candidates = range(max(0, coarse - 1), min(span - n, coarse + 1) + 1)
        best, delay = max((_correlation_at(seg, inb, d), d) for d in candidates)
        if best < _MIN_CORRELATION:
            return
        self.correlation = best
        self.delay_samples = delay
        self._fit(ref, inb, self.delay_samples)

    def _first_tap(self, delay: int) -> int:
        """Taps cover delays ``first .. first + taps - 1``, centred on ``delay`` where possible."""
        return max(0, delay - self.taps // 2)

    def _fit(self, ref: npt.NDArray[np.float32], inb: npt.NDArray[np.float32], delay: int) -> None:
        """Least-squares filter of ``taps`` coefficients around ``delay``."""
        n, first = inb.size, self._first_tap(delay)
        if ref.size < n + first + self.taps:
            return
        # Column k: the reference as it reached the inbound leg ``first + k`` samples later.
        a = np.stack(
            [ref[ref.size - (first + k) - n : ref.size - (first + k)] for k in range(self.taps)], axis=1
        )
        a64 = a.astype(np.float64)
        gram = a64.T @ a64 + np.eye(self.taps) * 1e-3 * n
        coef = np.linalg.solve(gram, a64.T @ inb.astype(np.float64))
        self._filter = coef.astype(np.float32)
        self._unmatched_frames = 0  # the line has an echo path: if it is dropped, search fast again

    def _predict(self, delay: int, count: int) -> npt.NDArray[np.float32]:
        assert self._filter is not None
        first = self._first_tap(delay)
        # Only the newest frames can reach the current inbound frame through the echo path.
        needed = -(-(first + self.taps + count) // self.frame_samples)
        ref = np.concatenate(list(self._ref)[-needed:])
        out = np.zeros(count, dtype=np.float32)
        for k, c in enumerate(self._filter):
            end = ref.size - (first + k)
            if end - count >= 0:
                out += c * ref[end - count : end]
        return out


def _halve(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Half rate by averaging sample pairs (``x`` has an even length)."""
    return 0.5 * (x[0::2] + x[1::2])


def _correlate(seg: npt.NDArray[np.float32], inb: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """|normalised cross-correlation| of ``inb`` (the latest samples) with the end of ``seg``, for
    every delay d = 0 .. len(seg) - len(inb): ``seg`` lags ``inb`` by d samples."""
    n, span = inb.size, seg.size
    size = 1 << int(np.ceil(np.log2(span + n)))
    corr = np.fft.irfft(np.fft.rfft(seg, size) * np.conj(np.fft.rfft(inb, size)), size)
    # corr[k] = sum_t seg[t + k] * inb[t]; delay d lines inbound up with seg offset span - n - d.
    offsets = span - n - np.arange(0, span - n + 1)
    cumulative = np.concatenate([[0.0], np.cumsum(seg.astype(np.float64) ** 2)])
    energy_ref = np.sqrt(cumulative[offsets + n] - cumulative[offsets] + 1e-3)
    energy_in = float(np.sqrt(np.dot(inb, inb)) + 1e-3)
    normalised: npt.NDArray[np.float64] = np.abs(corr[offsets]) / (energy_ref * energy_in)
    return normalised


def _correlation_at(seg: npt.NDArray[np.float32], inb: npt.NDArray[np.float32], delay: int) -> float:
    """The same normalised correlation as :func:`_correlate`, at one delay."""
    offset = seg.size - inb.size - delay
    window = seg[offset : offset + inb.size].astype(np.float64)
    inbound = inb.astype(np.float64)
    energy = np.sqrt(np.dot(window, window) + 1e-3) * (np.sqrt(np.dot(inbound, inbound)) + 1e-3)
    return float(abs(np.dot(window, inbound)) / energy)
