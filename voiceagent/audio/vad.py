"""Streaming voice activity detection with the Silero VAD v5 ONNX model, through onnxruntime.

The model scores fixed windows (32 ms: 512 samples at 16 kHz, 256 at 8 kHz). As in Silero's own
wrapper, each call also sees the last 64 (or 32) samples of the previous window, and the recurrent
state it returned. ``SileroVad.process`` takes frames of any size, so the media loop feeds its 20 ms
frames and gets a probability whenever a window completes.

A window quieter than ``silence_dbfs`` (default -60 dBFS, below any line's speech and most lines'
noise) is scored 0.0 without running the model, and the recurrent state restarts from zero as a
new stream's does. Half of a conversation's windows on a line are such silence, and the model is
most of a media path's CPU per call.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from voiceagent.errors import ModelError, ModelNotFoundError

__all__ = ["DEFAULT_SILENCE_DBFS", "SileroVad", "score_windows"]

# sample_rate -> (new samples per window, context samples carried over from the previous window)
_WINDOWS = {16000: (512, 64), 8000: (256, 32)}
_STATE_SHAPE = (2, 1, 128)  # (2, batch, 128)
_INPUT_NAMES = {"input", "state", "sr"}
_OUTPUT_NAMES = ["output", "stateN"]
_PCM16_SCALE = np.float32(1.0 / 32768.0)
_ZERO_STATE = np.zeros(_STATE_SHAPE, dtype=np.float32)
_ZERO_STATE.flags.writeable = False  # shared by every stream; onnxruntime returns new state arrays
# Windows quieter than this are silence (see the module docstring).
DEFAULT_SILENCE_DBFS = -60.0
# ...once the model itself has settled on silence (its hangover after speech is its own to end).
_SETTLED = 0.05


class SileroVad:
    """Speech probabilities for one mono stream; keep one instance per call (it holds the stream's state)."""

    def __init__(
        self,
        model_path: Path,
        *,
        sample_rate: int = 16000,
        threads: int = 1,
        silence_dbfs: float | None = DEFAULT_SILENCE_DBFS,
    ) -> None:
        if sample_rate not in _WINDOWS:
            raise ValueError(f"Silero VAD runs at 8000 or 16000 Hz, got {sample_rate}")
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        self.sample_rate = sample_rate
        self.window_samples, self._context_samples = _WINDOWS[sample_rate]
        self._session = _load_session(Path(model_path), threads)
        # Preallocated so that a window costs one model call and no allocation of ours.
        self._input = np.zeros((1, self._context_samples + self.window_samples), dtype=np.float32)
        self._new = self._input[0, self._context_samples :]  # view: where incoming samples land
        self._filled = 0  # samples of the current window received so far
        # Mean square (of [-1, 1] samples) below which a window is silence; -1 never gates.
        self._silence_power = -1.0 if silence_dbfs is None else 10.0 ** (silence_dbfs / 10.0)
        self.skipped_windows = 0
        # A completed window not yet collected, its probability once known (None: run the
        # model), and samples fed past its end.
        self._complete = False
        self._score: float | None = None
        self._carry: npt.NDArray[np.float32] | None = None
        self._last = 1.0  # the model's latest probability; 1.0 so that a new stream runs it first
        self._feeds: dict[str, npt.NDArray[Any]] = {
            "input": self._input,
            "state": np.zeros(_STATE_SHAPE, dtype=np.float32),
            "sr": np.array(sample_rate, dtype=np.int64),
        }

    @classmethod
    def packaged(
        cls, sample_rate: int = 16000, *, threads: int = 1, silence_dbfs: float | None = DEFAULT_SILENCE_DBFS
    ) -> SileroVad:
        """A detector on the packaged, checksum-verified ``silero-vad`` model."""
        from voiceagent.packaged_models import resolve

        return cls(
            resolve("silero-vad", "vad").path,
            sample_rate=sample_rate,
            threads=threads,
            silence_dbfs=silence_dbfs,
        )

    @property
    def window_ms(self) -> float:
        """Audio per probability, in milliseconds (32.0)."""
        return self.window_samples * 1000 / self.sample_rate

    def process(self, samples: npt.NDArray[np.int16] | npt.NDArray[np.float32]) -> list[float]:
        """Add int16 (or float32 in [-1, 1]) samples; return one speech probability per completed window."""
        self._check(samples)
        probabilities: list[float] = []
        for start in range(0, len(samples), self.window_samples):
            self.feed(samples[start : start + self.window_samples])
            probabilities.extend(self.collect())
        return probabilities

    def feed(self, samples: npt.NDArray[np.int16] | npt.NDArray[np.float32]) -> None:
        """First half of :meth:`process` for at most one window of samples: buffer them and, when
        a window completes, leave it for :meth:`collect` (or :func:`score_windows`) to score."""
        self._check(samples)
        if len(samples) > self.window_samples:
            raise ValueError(f"feed takes at most {self.window_samples} samples, got {len(samples)}")
        if self._complete:
            self.collect()  # an uncollected window is scored (and its result dropped) first
        scale = samples.dtype == np.int16
        take = min(self.window_samples - self._filled, len(samples))
        dst = self._new[self._filled : self._filled + take]
        dst[:] = samples[:take]
        if scale:
            dst *= _PCM16_SCALE
        self._filled += take
        if take < len(samples):
            # Samples past the window's end wait until the window is scored and its tail moved.
            carry = samples[take:].astype(np.float32)
            self._carry = carry * _PCM16_SCALE if scale else carry
        if self._filled == self.window_samples:
            self._complete = True
            new = self._new
            if self._last < _SETTLED and float(np.dot(new, new)) < self._silence_power * new.size:
                self.skipped_windows += 1
                self._score = self._last
            else:
                self._score = None

    def align(self, phase_samples: int) -> int:
        """Start a fresh stream ``phase_samples`` (mod one window) into its first window, the
        samples before it silence; returns that offset. Streams fed in step whose offsets match
        a common phase complete their windows on the same frames, so they can share one
        :func:`score_windows` call."""
        if self._filled or self._complete:
            raise ValueError("align() is for a stream that has not been fed yet")
        offset = phase_samples % self.window_samples
        self._new[:offset] = 0.0
        self._filled = offset
        return offset

    @property
    def needs_model(self) -> bool:
        """A completed window waits for the model (it was not silence)."""
        return self._complete and self._score is None

    def collect(self) -> list[float]:
        """Second half of :meth:`process`: the completed window's probability (scored now unless
        :func:`score_windows` did it), or nothing if no window completed."""
        if not self._complete:
            return []
        score = self._score
        if score is None:
            probability, state = self._session.run(_OUTPUT_NAMES, self._feeds)
            self._feeds["state"] = state
            score = self._last = float(probability[0, 0])
        # The window's tail is the next window's context.
        self._input[0, : self._context_samples] = self._input[0, -self._context_samples :]
        self._filled = 0
        self._complete = False
        self._score = None
        carry = self._carry
        if carry is not None:
            self._carry = None
            self._new[: len(carry)] = carry
            self._filled = len(carry)
        return [score]

    def reset(self) -> None:
        """Forget the stream: recurrent state, context and any partial window."""
        self._input.fill(0.0)
        self._feeds["state"] = _ZERO_STATE
        self._last = 1.0
        self._filled = 0
        self._complete = False
        self._score = None
        self._carry = None

    @staticmethod
    def _check(samples: npt.NDArray[np.int16] | npt.NDArray[np.float32]) -> None:
        if samples.dtype != np.int16 and samples.dtype != np.float32:
            raise TypeError(f"SileroVad takes int16 or float32 samples, got {samples.dtype}")
        if samples.ndim != 1:
            raise ValueError(f"SileroVad takes mono 1-D samples, got shape {samples.shape}")


def score_windows(detectors: Sequence[SileroVad]) -> int:
    """Score the completed windows of several streams in one model call per (model, rate).

    For callers that serve several calls on one loop: :meth:`SileroVad.feed` each stream, this,
    then :meth:`SileroVad.collect` each. Batching costs less per window than separate calls (82
    µs a window at three streams against 140 µs alone, here). A group of one window, and streams
    with none, are left to ``collect``. Returns how many windows were scored here.
    """
    groups: dict[tuple[int, int], list[SileroVad]] = {}
    for vad in detectors:
        if vad.needs_model:
            groups.setdefault((id(vad._session), vad.sample_rate), []).append(vad)
    scored = 0
    for group in groups.values():
        if len(group) < 2:
            continue
        first = group[0]
        feeds = {
            "input": np.concatenate([v._input for v in group]),
            "state": np.concatenate([v._feeds["state"] for v in group], axis=1),
            "sr": first._feeds["sr"],
        }
        probability, state = first._session.run(_OUTPUT_NAMES, feeds)
        for i, vad in enumerate(group):
            vad._feeds["state"] = np.ascontiguousarray(state[:, i : i + 1, :])
            vad._score = vad._last = float(probability[i, 0])
        scored += len(group)
    return scored


def _load_session(model_path: Path, threads: int) -> Any:
    if not model_path.is_file():
        raise ModelNotFoundError(f"Silero VAD model not found: {model_path}")
    stat = model_path.stat()
    return _cached_session(str(model_path.resolve()), stat.st_mtime_ns, stat.st_size, threads)


# A session costs ~30 ms and ~10 MB; hundreds of concurrent calls share one, since the stream state
# lives in each SileroVad and InferenceSession.run is thread-safe. The file's mtime and size are in
# the key so that a replaced model file is loaded afresh.
@functools.lru_cache(maxsize=8)
def _cached_session(model_path: str, mtime_ns: int, size: int, threads: int) -> Any:
    # Imported here so that the frame and codec code does not pay onnxruntime's import time.
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = threads
    options.log_severity_level = 3  # errors only: onnxruntime warnings would clutter the call logs
    try:
        session = ort.InferenceSession(model_path, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors share no base class short of Exception
        raise ModelError(f"cannot load Silero VAD model {model_path}: {exc}") from exc
    names = {i.name for i in session.get_inputs()}
    if names != _INPUT_NAMES:
        raise ModelError(
            f"{model_path} is not a Silero VAD v5 model: inputs {sorted(names)}, "
            f"expected {sorted(_INPUT_NAMES)}"
        )
    return session
