"""The agent's outbound track, which is also the call's clock, and the caller's inbound consumer."""

from __future__ import annotations

import logging
from collections.abc import Callable

import av
import numpy as np
import numpy.typing as npt
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from voiceagent.bridges.webrtc.audio import FramePacer, InboundAudio, Layout, OutboundAudio

__all__ = ["AgentAudioTrack", "FrameSink", "Tick", "consume_inbound"]

logger = logging.getLogger(__name__)

# Called once per 20 ms slot; returns the slot's outbound frame (16 kHz mono, 320 samples).
Tick = Callable[[], npt.NDArray[np.int16]]
# Takes one inbound media-layer frame (16 kHz mono, 320 samples).
FrameSink = Callable[[npt.NDArray[np.int16]], None]


class AgentAudioTrack(MediaStreamTrack):
    """What the caller hears. aiortc's sender calls :meth:`recv` in a loop; each call waits for the
    next 20 ms slot, runs the call's ``tick`` and returns its frame at 48 kHz."""

    kind = "audio"

    def __init__(self, tick: Tick, *, layout: Layout = "mono", pacer: FramePacer | None = None) -> None:
        super().__init__()
        self._tick = tick
        self._pacer = pacer or FramePacer()
        self._audio = OutboundAudio(layout)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._pacer.wait()
        if self.readyState != "live":  # stopped while we slept
            raise MediaStreamError
        return self._audio.convert(self._tick())


async def consume_inbound(track: MediaStreamTrack, sink: FrameSink) -> None:
    """Read the caller's track until it ends, handing each 20 ms 16 kHz mono frame to ``sink``."""
    inbound = InboundAudio()
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if not isinstance(frame, av.AudioFrame):
            continue
        for pcm16 in inbound.push(frame):
            sink(pcm16)
