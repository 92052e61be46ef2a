"""The audio port between a SIP call (conference bridge) and the event loop.

Its callbacks run on pjsip's media clock thread, once per 20 ms: they copy the caller's frame into
a bounded buffer, hand the oldest prepared agent frame to pjsip, and wake the loop with
``call_soon_threadsafe``. Nothing here blocks or touches the media layer.
"""

from __future__ import annotations

import ctypes
from collections import deque
from typing import Any

import pjsua2 as pj  # type: ignore[import-untyped]  # SWIG bindings without type information

from voiceagent.bridges.sip.endpoint import CLOCK_RATE, FRAME_MS, destroy_on_pjsip_thread
from voiceagent.bridges.sip.waker import LoopWaker, TickTarget

__all__ = ["FRAME_BYTES", "AgentFrameWriter", "CallAudioPort", "frame_bytes"]

# The media layer's frame: a port carrying 40 ms ticks splits and joins two of them.
FRAME_BYTES = CLOCK_RATE * FRAME_MS // 1000 * 2
_SILENCE = bytes(FRAME_BYTES)
# More queued caller frames (20 ms) than this means the loop stalled; the oldest go.
_INBOUND_BACKLOG = 25
# Agent ticks prepared ahead of the clock: one is in flight, one absorbs loop jitter.
_OUTBOUND_AHEAD = 3
_TWO_POINTERS = ctypes.c_void_p * 2


def _vector_bytes_fast(vector: pj.ByteVector, size: int) -> bytes | None:
    """The first ``size`` bytes of a ByteVector in one memcpy, or None where that is not safe.

    SWIG's ByteVector hands Python one element at a time (~300 µs for a 640-byte frame, a third of
    a media process's CPU). libstdc++ keeps a ``std::vector`` as [start, finish, end of storage]
    pointers, and SWIG's ``this`` is the vector's address: the bytes are read straight from start.
    """
    start, finish = _TWO_POINTERS.from_address(int(vector.this))
    if start is None or finish is None or finish - start < size:
        return None
    return ctypes.string_at(start, size)


def _vector_bytes_slow(vector: pj.ByteVector, size: int) -> bytes:
    return bytes(tuple(vector[0:size]))


def _vector_start(vector: pj.ByteVector) -> int | None:
    """Address of a ByteVector's first byte (same layout assumption), or None if it is empty."""
    start: int | None = _TWO_POINTERS.from_address(int(vector.this))[0]
    return start


def _fast_copy_works() -> bool:
    """The layout assumption, checked once against SWIG's own element-by-element copy."""
    probe = bytes(range(256)) * 3
    try:
        return _vector_bytes_fast(pj.ByteVector(probe), FRAME_BYTES) == probe[:FRAME_BYTES]
    except (TypeError, ValueError, AttributeError):
        return False


_FAST_COPY = _fast_copy_works()


def frame_bytes(frame: pj.MediaFrame) -> bytes:
    """A received frame's PCM bytes (``frame.size`` of them)."""
    vector, size = frame.buf, frame.size
    if _FAST_COPY:
        data = _vector_bytes_fast(vector, size)
        if data is not None:
            return data
    return _vector_bytes_slow(vector, size)


class AgentFrameWriter:
    """Puts agent frames of ``size`` bytes into pjsip's frames through one ByteVector,
    overwritten in place: building a ByteVector from ``bytes`` converts element by element (~17 µs
    a frame)."""

    def __init__(self, size: int = FRAME_BYTES, *, module: Any = pj) -> None:
        self.size = size
        self._module = module  # the pjsua2 copy whose frames this writes (binding.py)
        self._vector = module.ByteVector(bytes(size))
        self._start = _vector_start(self._vector) if _FAST_COPY else None
        self.fast = self._start is not None

    def write(self, frame: pj.MediaFrame, data: bytes) -> None:
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        start = self._start
        if start is not None and len(data) == self.size:
            ctypes.memmove(start, data, self.size)
            frame.buf = self._vector  # copied into the frame's own vector (std::vector's =)
        else:
            frame.buf = self._module.ByteVector(data)
        frame.size = len(data)


# A mixin, like the classes of pjcall.py: binding() builds the port class on each pjsua2 copy.
_SwigBase: Any = object


class CallAudioPort(_SwigBase):  # type: ignore[misc]  # pjsua2 has no type information
    """16 kHz mono PCM16 in ``frame_ms`` ticks (20 or 40; the bridge's ``audioFramePtime``);
    ``target`` (the call's loop side, set once it exists) is ticked on the loop once per clock
    tick, through the process's :class:`LoopWaker`. ``inbound`` holds 20 ms caller frames,
    ``outbound`` whole ticks of agent audio (``frames_per_tick`` frames joined).

    Made as ``binding(n).AudioPort(...)``, on the pjsua2 copy of the endpoint it serves."""

    pj: Any  # this class's pjsua2 copy (set by binding())

    def __init__(
        self, waker: LoopWaker, target: TickTarget | None = None, *, frame_ms: int = FRAME_MS
    ) -> None:
        # Checked before the C++ object exists: a half-made one would be destroyed here, off the
        # pjsip thread, and pjlib aborts the process for that.
        if frame_ms % FRAME_MS:
            raise ValueError(f"a port's tick must be a multiple of {FRAME_MS} ms, got {frame_ms}")
        super().__init__()
        self.frame_ms = frame_ms
        self.frames_per_tick = frame_ms // FRAME_MS
        self._tick_bytes = FRAME_BYTES * self.frames_per_tick
        self._tick_silence = bytes(self._tick_bytes)
        self.inbound: deque[bytes] = deque(maxlen=_INBOUND_BACKLOG)
        self.outbound: deque[bytes] = deque(maxlen=_OUTBOUND_AHEAD)
        self.received_frames = 0
        self.requested_frames = 0
        self._waker = waker
        self.target = target
        self._closed = False
        self._writer = AgentFrameWriter(self._tick_bytes, module=self.pj)
        # Strict RTP: set (on the pjsip thread) while the latest RTP comes from someone other than
        # the negotiated peer; what arrives meanwhile is not handed to the media layer.
        self.muted = False

    def create(self, name: str) -> None:
        """Register with the conference bridge (pjsip thread)."""
        fmt = self.pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, CLOCK_RATE, 1, self.frame_ms * 1000, 16)
        self.createPort(name, fmt)

    @property
    def clock_ticks(self) -> int:
        """The process's media clock ticks so far (all its calls' ports share the clock)."""
        return self._waker.clock_ticks

    def __del__(self) -> None:
        # The C++ destructor that runs next calls into pjlib: only on the pjsip thread.
        destroy_on_pjsip_thread(self)

    def close(self) -> None:
        """No more wake-ups (the call is over); the owner keeps the port for the next call."""
        self._closed = True

    def reuse(self) -> None:
        """Ready the port of a call that is over for the next call (pjsip thread).

        Ports are recycled, never destroyed while the Endpoint lives: since pjsip 2.15.1 the
        conference bridge removes a port asynchronously, on its clock thread's next tick, while
        pjsua2's ``AudioMediaPort`` destructor releases the port's memory right after asking for the
        removal; the clock thread then ran freed memory, and media processes died of it (SIGSEGV
        at call ends under load).
        """
        self.target = None
        self.inbound.clear()
        self.outbound.clear()
        self.received_frames = self.requested_frames = 0
        self.muted = False
        self._closed = False

    # ---- media clock thread --------------------------------------------------------------------

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:  # noqa: N802 (pjsua2's name)
        if frame.type != pj.PJMEDIA_FRAME_TYPE_AUDIO or frame.size != self._tick_bytes:
            return
        if self.muted:
            self.inbound.extend([_SILENCE] * self.frames_per_tick)
        else:  # a whole-frame slice of bytes is the same object: a 20 ms tick is not copied
            data = frame_bytes(frame)
            self.inbound.extend(data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES))
        self.received_frames += self.frames_per_tick

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:  # noqa: N802 (pjsua2's name)
        try:
            data = self.outbound.popleft()
        except IndexError:
            data = self._tick_silence
        self._writer.write(frame, data)
        self.requested_frames += self.frames_per_tick
        target = self.target
        if target is not None and not self._closed:
            self._waker.wake(target)
