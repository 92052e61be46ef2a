"""Audio at the WebRTC edge: aiortc's 48 kHz frames to the media layer's 16 kHz 20 ms frames and back.

aiortc hands received audio over as ``av.AudioFrame`` objects, 48 kHz stereo s16 for Opus (20 ms
each, but nothing guarantees the size), and its encoders take any layout at 48 kHz. Both
directions go through :class:`~voiceagent.audio.FrameResampler`, whose delay is fixed at about a
millisecond; soxr's stream resampler would add its block (tens of ms) to every reply.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any, Literal

import av
import numpy as np
import numpy.typing as npt

from voiceagent.audio import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE, Framer, FrameResampler

__all__ = ["WIRE_RATE", "WIRE_SAMPLES", "FramePacer", "InboundAudio", "OutboundAudio", "downmix"]

# aiortc's Opus runs at 48 kHz; 20 ms of it is 960 samples.
WIRE_RATE = 48000
WIRE_SAMPLES = WIRE_RATE * FRAME_MS // 1000

Layout = Literal["mono", "stereo"]


def downmix(frame: av.AudioFrame) -> npt.NDArray[np.int16]:
    """The frame as mono int16 (channels averaged), whatever its sample format and layout."""
    channels = len(frame.layout.channels)
    data: npt.NDArray[Any] = frame.to_ndarray()  # packed: (1, n * channels); planar: (channels, n)
    if data.dtype == np.int16 and channels == 1:
        return data.reshape(-1).copy()
    samples = data.astype(np.float64)
    if not frame.format.is_planar:
        samples = samples.reshape(-1, channels).T  # (channels, n)
    mixed: npt.NDArray[np.float64] = samples.mean(axis=0)
    if np.issubdtype(data.dtype, np.floating):
        mixed *= 32768.0
    elif data.dtype == np.int32:
        mixed /= 65536.0
    return np.clip(np.round(mixed), -32768, 32767).astype(np.int16)


class InboundAudio:
    """Received frames of any rate aiortc decodes (8–48 kHz) → 320-sample 16 kHz mono frames."""

    def __init__(self) -> None:
        self._resampler: FrameResampler | None = None
        self._framer = Framer(FRAME_SAMPLES)

    def push(self, frame: av.AudioFrame) -> list[npt.NDArray[np.int16]]:
        """Every media-layer frame now complete (zero, one or more)."""
        rate = frame.sample_rate
        if self._resampler is None or self._resampler.in_rate != rate:
            # A new rate (a codec change mid-call) restarts the filter; the framer keeps its samples.
            self._resampler = FrameResampler(rate, SAMPLE_RATE)
        return self._framer.push(self._resampler.process(downmix(frame)))


class OutboundAudio:
    """Media-layer frames (16 kHz mono, 320 samples) → 48 kHz ``av.AudioFrame`` with running pts.

    pts counts samples at 48 kHz from 0 with ``time_base`` 1/48000, as aiortc's own tracks do; the
    encoder turns them into RTP timestamps, so they only ever grow by one frame per frame.
    """

    def __init__(self, layout: Layout = "mono") -> None:
        self.layout: Layout = layout
        self._resampler = FrameResampler(SAMPLE_RATE, WIRE_RATE)
        self._time_base = fractions.Fraction(1, WIRE_RATE)
        self.pts = 0

    def convert(self, pcm16: npt.NDArray[np.int16]) -> av.AudioFrame:
        if pcm16.shape != (FRAME_SAMPLES,):
            raise ValueError(f"expected a ({FRAME_SAMPLES},) frame, got shape {pcm16.shape}")
        wire = self._resampler.process(pcm16)  # (960,): the filter's fixed ratio keeps 3 per 1
        if self.layout == "stereo":
            wire = np.repeat(wire, 2)  # interleaved L R L R
        frame = av.AudioFrame.from_ndarray(wire.reshape(1, -1), format="s16", layout=self.layout)
        frame.sample_rate = WIRE_RATE
        frame.pts = self.pts
        frame.time_base = self._time_base
        self.pts += WIRE_SAMPLES
        return frame


class FramePacer:
    """The call's 20 ms clock: :meth:`wait` returns once per frame slot, on a monotonic schedule.

    Slots are fixed from the first call on, so a late wake-up is made up by the next one instead
    of drifting. After a stall longer than ``max_lag_ms`` (a paused process, a long GC) the
    schedule restarts from now rather than bursting the backlog onto the line.
    """

    def __init__(self, frame_ms: float = FRAME_MS, *, max_lag_ms: float = 200.0) -> None:
        self.frame_s = frame_ms / 1000
        self.max_lag_s = max_lag_ms / 1000
        self._next: float | None = None
        self.resyncs = 0

    async def wait(self) -> None:
        now = time.monotonic()
        if self._next is None:
            self._next = now
        elif now - self._next > self.max_lag_s:
            self._next = now
            self.resyncs += 1
        delay = self._next - now
        if delay > 0:
            await asyncio.sleep(delay)
        self._next += self.frame_s
