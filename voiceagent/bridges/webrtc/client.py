"""An aiortc caller for tests and benchmarks: plays PCM as its microphone and records what it hears.

It speaks the same signaling as the call page (``{"sdp", "type"}`` → ``{"sdp", "type", "call_id"}``),
through whatever ``post`` you give it: an httpx client on a real server, or the service itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from voiceagent.audio import FRAME_MS, FRAME_SAMPLES, Framer
from voiceagent.bridges.webrtc.audio import FramePacer, OutboundAudio
from voiceagent.bridges.webrtc.tracks import consume_inbound

__all__ = ["LoopbackCaller", "PcmTrack", "Signal"]

# (offer as {"sdp", "type"}) -> answer as {"sdp", "type", "call_id"}
Signal = Callable[[dict[str, str]], Awaitable[dict[str, Any]]]


class PcmTrack(MediaStreamTrack):
    """Plays 16 kHz mono PCM16 in real time as a 48 kHz track, then silence for as long as asked."""

    kind = "audio"

    def __init__(self, pcm16: npt.NDArray[np.int16]) -> None:
        super().__init__()
        framer = Framer(FRAME_SAMPLES)
        self._frames = framer.push(pcm16)
        last = framer.flush()
        if last is not None:
            self._frames.append(last)
        self._index = 0
        self._pacer = FramePacer()
        self._audio = OutboundAudio("mono")
        self._silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        self.started_at: float | None = None  # monotonic time of the first frame sent

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._pacer.wait()
        if self.started_at is None:
            self.started_at = time.monotonic()
        frame = self._frames[self._index] if self._index < len(self._frames) else self._silence
        self._index += 1
        return self._audio.convert(frame)

    def sent_at(self, sample: int) -> float | None:
        """Monotonic time at which ``sample`` (16 kHz index into the PCM) went out."""
        if self.started_at is None:
            return None
        return self.started_at + sample / FRAME_SAMPLES * FRAME_MS / 1000


class LoopbackCaller:
    """One call from an aiortc peer: ``await connect(signal)``, wait, then ``await aclose()``.

    ``heard`` collects what the agent said (16 kHz mono frames) with the monotonic time each
    frame arrived, so latency can be measured where a caller would hear it.
    """

    def __init__(self, pcm16: npt.NDArray[np.int16]) -> None:
        # No ICE servers: loopback host candidates only, nothing leaves the machine.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.microphone = PcmTrack(pcm16)
        self.heard: list[tuple[float, npt.NDArray[np.int16]]] = []
        self.messages: list[str] = []
        self.call_id: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._remote: list[MediaStreamTrack] = []
        self.pc.add_listener("track", self._on_track)

    async def connect(self, signal: Signal) -> str:
        """Offer, let ``signal`` carry it to the server, apply the answer; returns the call id."""
        self.pc.addTrack(self.microphone)
        channel = self.pc.createDataChannel("events")
        channel.add_listener("message", self.messages.append)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        local = self.pc.localDescription
        assert local is not None
        answer = await signal({"sdp": local.sdp, "type": local.type})
        self.call_id = str(answer["call_id"])
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        return self.call_id

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio":
            return
        self._remote.append(track)
        task = asyncio.create_task(consume_inbound(track, self._on_frame), name="caller:heard")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_frame(self, pcm16: npt.NDArray[np.int16]) -> None:
        self.heard.append((time.monotonic(), pcm16))

    def recording(self) -> npt.NDArray[np.int16]:
        """Everything heard so far, 16 kHz mono."""
        if not self.heard:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate([frame for _, frame in self.heard])

    def first_audio_after(self, at: float, *, peak: int = 300) -> float | None:
        """Monotonic time of the first frame heard after ``at`` whose peak reaches ``peak``."""
        for arrived, frame in self.heard:
            if arrived > at and int(np.abs(frame.astype(np.int32)).max()) >= peak:
                return arrived
        return None

    async def aclose(self) -> None:
        self.microphone.stop()
        for track in self._remote:
            track.stop()
        await self.pc.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
