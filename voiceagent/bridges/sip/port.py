"""The audio port between a SIP call (conference bridge) and the event loop.

Its callbacks run on pjsip's media clock thread, once per 20 ms: they copy the caller's frame into
a bounded buffer, hand the oldest prepared agent frame to pjsip, and wake the loop with
``call_soon_threadsafe``. Nothing here blocks or touches the media layer.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import pjsua2 as pj  # type: ignore[import-untyped]  # SWIG bindings without type information

from voiceagent.bridges.sip.endpoint import CLOCK_RATE, FRAME_MS, destroy_on_pjsip_thread

__all__ = ["FRAME_BYTES", "CallAudioPort"]

FRAME_BYTES = CLOCK_RATE * FRAME_MS // 1000 * 2
_SILENCE = bytes(FRAME_BYTES)
# More queued caller frames than this means the loop stalled; the oldest go.
_INBOUND_BACKLOG = 25
# Agent frames prepared ahead of the clock: one is in flight, one absorbs loop jitter.
_OUTBOUND_AHEAD = 3


class CallAudioPort(pj.AudioMediaPort):  # type: ignore[misc]  # pjsua2 has no type information
    """16 kHz mono PCM16, 20 ms frames; ``wake`` (set once the loop side exists) runs on the loop
    once per clock tick."""

    def __init__(self, loop: asyncio.AbstractEventLoop, wake: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.inbound: deque[bytes] = deque(maxlen=_INBOUND_BACKLOG)
        self.outbound: deque[bytes] = deque(maxlen=_OUTBOUND_AHEAD)
        self.received_frames = 0
        self.requested_frames = 0
        self._loop = loop
        self.wake = wake
        self._closed = False
        # Strict RTP: set (on the pjsip thread) while the latest RTP comes from someone other than
        # the negotiated peer; what arrives meanwhile is not handed to the media layer.
        self.muted = False

    def create(self, name: str) -> None:
        """Register with the conference bridge (pjsip thread)."""
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, CLOCK_RATE, 1, FRAME_MS * 1000, 16)
        self.createPort(name, fmt)

    def __del__(self) -> None:
        # The C++ destructor that runs next calls into pjlib: only on the pjsip thread.
        destroy_on_pjsip_thread(self)

    def close(self) -> None:
        """No more wake-ups (the call is over); the port object itself is dropped on the pjsip thread."""
        self._closed = True

    # ---- media clock thread --------------------------------------------------------------------

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:  # noqa: N802 (pjsua2's name)
        if frame.type != pj.PJMEDIA_FRAME_TYPE_AUDIO or frame.size != FRAME_BYTES:
            return
        if self.muted:
            self.inbound.append(_SILENCE)
        else:
            # SWIG's ByteVector only converts element by element; a slice copies in C first.
            self.inbound.append(bytes(tuple(frame.buf[0:FRAME_BYTES])))
        self.received_frames += 1

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:  # noqa: N802 (pjsua2's name)
        try:
            data = self.outbound.popleft()
        except IndexError:
            data = _SILENCE
        frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        frame.buf = pj.ByteVector(data)
        frame.size = len(data)
        self.requested_frames += 1
        wake = self.wake
        if wake is not None and not self._closed:
            try:
                self._loop.call_soon_threadsafe(wake)
            except RuntimeError:  # the loop is closed: the process is going down
                self._closed = True
