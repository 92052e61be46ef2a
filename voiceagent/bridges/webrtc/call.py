"""One browser call: its peer connection, its tracks and its :class:`CallSession`.

The outbound track's ``recv`` is the call's clock. Each 20 ms slot pulls one frame for the caller
and then hands the media layer every caller frame that arrived since the last slot, so both legs
advance on one clock (as in the file bridge: what a frame triggers is heard from the next slot on).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import numpy.typing as npt
from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from voiceagent.audio import FRAME_SAMPLES
from voiceagent.bridges.webrtc.audio import Layout
from voiceagent.bridges.webrtc.events import CallEventChannel
from voiceagent.bridges.webrtc.tracks import AgentAudioTrack, consume_inbound
from voiceagent.calllog import CallLogSink
from voiceagent.media.session import CallSession
from voiceagent.media.timeline import CallEvent

__all__ = ["WebRTCCall"]

logger = logging.getLogger(__name__)

# Caller frames waiting for the next slot; more means the clock stalled, and the oldest go.
_INBOUND_BACKLOG_FRAMES = 25
# The caller's leg may lag the clock this much (jitter) before the gap is filled with silence.
_INBOUND_LAG_FRAMES = 10
_SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.int16)


class WebRTCCall:
    """A live call. Made and ended by :class:`~voiceagent.bridges.webrtc.WebRTCService`.

    ``end(call, reason)`` is how the call asks its owner to end it (the peer went away, it never
    connected, the agent hung up); the owner then awaits :meth:`aclose`.
    """

    def __init__(
        self,
        call_id: str,
        pc: RTCPeerConnection,
        *,
        end: Callable[[WebRTCCall, str], None],
        layout: Layout = "mono",
        call_log: CallLogSink | None = None,
    ) -> None:
        self.call_id = call_id
        self.pc = pc
        self.events = CallEventChannel(call_id)
        self.session: CallSession | None = None
        self.connected = asyncio.Event()
        self.started = False  # the session runs (and closing it closes the engine session)
        self.ticks = 0
        self.inbound_frames = 0
        self.filled_frames = 0
        self._end = end
        self._call_log = call_log
        self._inbound: deque[npt.NDArray[np.int16]] = deque(maxlen=_INBOUND_BACKLOG_FRAMES)
        self._tasks: set[asyncio.Task[None]] = set()
        self._remote_tracks: list[MediaStreamTrack] = []
        self.end_reason: str | None = None
        self._closed = False
        self._log_extra = {"call_id": call_id}
        self.track = AgentAudioTrack(self.tick, layout=layout)
        pc.add_listener("track", self._on_track)
        pc.add_listener("datachannel", self._on_datachannel)
        pc.add_listener("connectionstatechange", self._on_connection_state)

    # ---- setup ---------------------------------------------------------------------------------

    async def answer(self, offer: RTCSessionDescription, session: CallSession) -> RTCSessionDescription:
        """Apply the caller's offer and return our answer (ICE candidates gathered, inline)."""
        self.session = session
        self.events.session = session
        await self.pc.setRemoteDescription(offer)
        # Goes onto the offer's audio transceiver, so we answer sendrecv on the same m-line.
        self.pc.addTrack(self.track)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await session.start()
        self.started = True
        if self._call_log is not None:
            self._call_log.started(channel="webrtc")
        description = self.pc.localDescription
        assert description is not None  # set just above
        return description

    def on_timeline_event(self, event: CallEvent) -> None:
        """The session's timeline listener: the page and the call log hear of every event."""
        self.events.on_event(event)
        if self._call_log is not None:
            self._call_log.event(event)

    def watch_connection(self, timeout_s: float) -> None:
        """End the call unless ICE and DTLS complete within ``timeout_s``."""
        self._spawn(self._watchdog(timeout_s), "connect-watchdog")

    async def _watchdog(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), timeout_s)
        except TimeoutError:
            logger.info("peer did not connect within %.1f s", timeout_s, extra=self._log_extra)
            self.request_end("connect_timeout")

    # ---- the clock -----------------------------------------------------------------------------

    def tick(self) -> npt.NDArray[np.int16]:
        """One 20 ms slot: the caller's next frame out, then what the caller sent in."""
        session = self.session
        if session is None or self._closed:
            return _SILENCE
        outbound = session.pull_outbound()
        self.ticks += 1
        while self._inbound:
            session.push_inbound(self._inbound.popleft())
            self.inbound_frames += 1
        # A gap on the caller's leg (packet loss, a late start, a muted microphone): silence keeps
        # the two legs on one clock, which is what the latency and truncation figures count on.
        while self.ticks - self.inbound_frames - self.filled_frames > _INBOUND_LAG_FRAMES:
            session.push_inbound(_SILENCE)
            self.filled_frames += 1
        if session.ended_reason is not None and not session.agent_audio_pending:
            self.request_end(session.ended_reason)
        return outbound

    def _on_inbound_frame(self, pcm16: npt.NDArray[np.int16]) -> None:
        self._inbound.append(pcm16)

    # ---- peer events ---------------------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio" or self._remote_tracks:
            return  # one caller voice per call; a second audio track is not listened to
        self._remote_tracks.append(track)
        self._spawn(consume_inbound(track, self._on_inbound_frame), "inbound")

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        self.events.attach(channel)

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        logger.debug("connection state %s", state, extra=self._log_extra)
        if state == "connected" and not self.connected.is_set():
            self.connected.set()
            if self.session is not None:
                self.session.timeline.add("webrtc_connected", self.session.media_ms)
            self.events.send({"type": "call", "state": "connected"})
        elif state in ("failed", "closed"):
            self.request_end(f"peer_{state}")

    def request_end(self, reason: str) -> None:
        """Ask the owner to end the call (once); ``end_reason`` keeps the first reason."""
        if self.end_reason is not None or self._closed:
            return
        self.end_reason = reason
        self._end(self, reason)

    # ---- teardown ------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=f"{self.call_id}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self, reason: str = "completed") -> None:
        """Stop the tracks, close the peer connection and the session, await every task; idempotent."""
        if self._closed:
            return
        self._closed = True
        session = self.session
        if session is not None:
            # Ends the timeline with call_ended, which the page hears before the channel closes.
            await session.aclose(reason)
        self.track.stop()
        for track in self._remote_tracks:
            track.stop()
        await self.pc.close()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._call_log is not None:
            if session is not None:
                self._call_log.turns(session.turns, session.played_ms)
            self._call_log.ended(session.ended_reason if session and session.ended_reason else reason)
        logger.info("call ended: %s", reason, extra=self._log_extra)
