"""The loop side of one SIP call: its CallSession, its clock tick, and what SIP tells it.

The port's ``onFrameRequested`` has the process's LoopWaker tick the leg once per 20 ms: one agent
frame is prepared for the caller, then the caller frames that arrived are handed to the media
layer (the same order as the WebRTC and file bridges), in two steps per frame so that the
process's calls share one VAD model call. SIP events (state, hold, DTMF, transfer) become
timeline events, so they reach the call log.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from voiceagent.bridges.sip.pjcall import PjCall
from voiceagent.bridges.sip.port import FRAME_BYTES, CallAudioPort
from voiceagent.calllog import CallLogSink
from voiceagent.engines.base import SpeechSession
from voiceagent.errors import SipError
from voiceagent.media.session import CallSession
from voiceagent.media.timeline import CallEvent
from voiceagent.store.records import CallEnded, CallStarted

if TYPE_CHECKING:
    from voiceagent.audio import SileroVad
    from voiceagent.bridges.sip.bridge import TransferBridge

__all__ = ["CallDetails", "SipCallLeg", "sip_number"]

logger = logging.getLogger(__name__)

_GAPS_KEPT = 3000  # one minute of 20 ms ticks


@dataclass(frozen=True)
class CallDetails:
    """Who called whom, for the call log."""

    direction: str  # "inbound" | "outbound"
    from_uri: str
    to_uri: str
    agent: str | None = None
    trunk: str | None = None
    number: str | None = None  # the called number (DID) the call was routed by


def sip_number(uri: str) -> str | None:
    """The user part of a SIP URI (``"Bob" <sip:+4930@host>;tag=x`` -> ``+4930``), at most 64 characters."""
    inner = uri.split("<", 1)[1].split(">", 1)[0] if "<" in uri else uri.split(";", 1)[0]
    user = inner.split(":", 1)[-1].split("@", 1)[0] if "@" in inner else ""
    return user[:64] or None


class SipCallLeg:
    """A live SIP call as the media layer sees it. ``end(leg, reason)`` asks the owner to close it."""

    def __init__(
        self,
        call_id: str,
        pj_call: PjCall,
        port: CallAudioPort,
        details: CallDetails,
        *,
        end: Callable[[SipCallLeg, str], None],
        call_log: CallLogSink | None = None,
    ) -> None:
        self.call_id = call_id
        self._pj_call: PjCall | None = pj_call
        self._port: CallAudioPort | None = port
        self.details = details
        self.session: CallSession | None = None
        # Closed by the session once it starts; by aclose if the call ends before that.
        self.engine_session: SpeechSession | None = None
        self.state = "new"
        self.media_status = "none"
        self.sip_code = 0
        self.sip_reason = ""
        self.digits: list[str] = []
        self.transfer_code: int | None = None
        self.on_transfer_final: Callable[[int, str], None] | None = None
        self.bridge: TransferBridge | None = None  # set while a transfer bridges this call
        # Outbound calls start their media layer when the far end answers.
        self.on_confirmed: Callable[[], None] | None = None
        self.end_reason: str | None = None
        self.started = False
        self.ticks = 0
        self.inbound_frames = 0
        # Gaps between clock ticks as the loop saw them (ms): the jitter the media layer lives with.
        self.tick_gaps_ms: deque[float] = deque(maxlen=_GAPS_KEPT)
        self._last_tick_s: float | None = None
        self._end = end
        self._call_log = call_log
        self._closed = False
        self._log_extra = {"call_id": call_id}

    @property
    def pj_call(self) -> PjCall:
        if self._pj_call is None:
            raise SipError(f"call {self.call_id} is over")
        return self._pj_call

    @property
    def port(self) -> CallAudioPort:
        if self._port is None:
            raise SipError(f"call {self.call_id} is over")
        return self._port

    def detach(self) -> list[object]:
        """Give up the pjsua2 objects (their last reference must go on the pjsip thread)."""
        objects: list[object] = [o for o in (self._pj_call, self._port) if o is not None]
        if self._pj_call is not None:
            self._pj_call.listener = None  # breaks the call <-> leg cycle
        if self._port is not None:
            self._port.target = None
            self._port.close()
        self._pj_call = self._port = None
        return objects

    # ---- the clock -----------------------------------------------------------------------------

    def tick_start(self) -> bool:
        """Hand pjsip the agent's next frame and stage the oldest caller frame; True if one is
        staged (its VAD window, if complete, is scored before :meth:`tick_next`)."""
        session = self.session
        port = self._port
        if session is None or port is None or not self.started or self._closed:
            return False
        if self.ticks == 0:
            # The queued caller frames arrived on the ticks before this one: start the VAD's
            # windows where every other call of the process has its window boundaries.
            frames_before = port.clock_ticks * port.frames_per_tick - len(port.inbound)
            session.align_vad(frames_before * FRAME_BYTES // 2)
        self.ticks += 1
        now = time.monotonic()
        if self._last_tick_s is not None:
            self.tick_gaps_ms.append(1000.0 * (now - self._last_tick_s))
        self._last_tick_s = now
        # join() of one frame returns it as it is: a 20 ms tick costs no copy.
        frames = [session.pull_outbound().tobytes() for _ in range(port.frames_per_tick)]
        port.outbound.append(b"".join(frames))
        return self._stage_next(session, port)

    def tick_next(self) -> bool:
        """Finish the staged caller frame and stage the next one queued; True if there is one."""
        session = self.session
        port = self._port
        if session is None or port is None or self._closed:
            return False
        session.finish_inbound()
        self.inbound_frames += 1
        return self._stage_next(session, port)

    @property
    def vad(self) -> SileroVad | None:
        return None if self.session is None else self.session.vad

    def _stage_next(self, session: CallSession, port: CallAudioPort) -> bool:
        if port.inbound:
            session.stage_inbound(np.frombuffer(port.inbound.popleft(), dtype=np.int16))
            return True
        if session.ended_reason is not None and not session.agent_audio_pending:
            self.request_end(session.ended_reason)
        return False

    async def start(self, session: CallSession) -> None:
        """Start the media layer (the call is answered or was answered)."""
        self.session = session
        await session.start()
        self.started = True
        if self._call_log is not None:
            # Straight to the writer: the sink's started() has no trunk, and the log keeps numbers
            # (the URIs' user parts), not whole SIP URIs.
            d, now = self.details, datetime.now(UTC)
            self._call_log.writer.submit(
                CallStarted(
                    id=self.call_id,
                    direction=d.direction,
                    channel="sip",
                    started_at=now,
                    answered_at=now,
                    agent=d.agent,
                    trunk=d.trunk,
                    from_number=sip_number(d.from_uri),
                    to_number=d.number or sip_number(d.to_uri),
                )
            )
        self.note("sip_state", state=self.state, code=self.sip_code)

    def on_timeline_event(self, event: CallEvent) -> None:
        if self._call_log is not None:
            self._call_log.event(event)

    def note(self, kind: str, **data: object) -> None:
        """A SIP event on the call's timeline (and so in the call log)."""
        if self.session is not None and self.started:
            self.session.timeline.add(kind, self.session.media_ms, **data)

    # ---- SIP events (CallListener) ---------------------------------------------------------------

    def on_state(self, state: str, code: int, reason: str) -> None:
        self.state, self.sip_code, self.sip_reason = state, code, reason
        self.note("sip_state", state=state, code=code, reason=reason)
        if state == "confirmed" and self.on_confirmed is not None:
            self.on_confirmed()
            self.on_confirmed = None
        if state == "disconnected":
            self.request_end(f"sip_{code}" if code and code != 200 else "remote_hangup")

    def on_media(self, status: str) -> None:
        previous, self.media_status = self.media_status, status
        if status != previous:
            kind = {"local_hold": "hold", "remote_hold": "hold", "active": "media_active"}.get(
                status, "media"
            )
            self.note(kind, status=status)

    def on_dtmf(self, digit: str, method: str) -> None:
        self.digits.append(digit)
        if self.session is not None and self.started:
            # The agent hears the key as a turn ("press 0 for an operator"); press() logs it.
            self.session.press(digit, method=method)
        logger.info("caller pressed %s (%s)", digit, method, extra=self._log_extra)

    def on_transfer_status(self, code: int, reason: str, final: bool) -> None:
        self.note("transfer_status", code=code, reason=reason, final=final)
        if final:
            self.transfer_code = code
            if self.on_transfer_final is not None:
                self.on_transfer_final(code, reason)

    def on_rtp_source(self, source: str, stranger: bool) -> None:
        self.note("rtp_source", source=source, stranger=stranger)
        if stranger:
            logger.warning("RTP from %s, not the negotiated peer: muted", source, extra=self._log_extra)

    def on_rtp_pinned(self, peer: str, pinned: bool) -> None:
        self.note("rtp_pinned", peer=peer, pinned=pinned)

    # ---- ending --------------------------------------------------------------------------------

    def request_end(self, reason: str) -> None:
        if self.end_reason is not None or self._closed:
            return
        self.end_reason = reason
        self._end(self, reason)

    async def aclose(self, reason: str) -> None:
        """Close the media layer and write the call's end; the SIP side is hung up by the owner."""
        if self._closed:
            return
        self._closed = True
        if self._port is not None:
            self._port.close()
        session = self.session
        if session is not None and self.started:
            await session.aclose(reason)
        elif self.engine_session is not None:
            await self.engine_session.aclose()
        if self._call_log is not None and self.started:
            if session is not None:
                self._call_log.turns(session.turns, session.played_ms)
            ended = session.ended_reason if session and session.ended_reason else reason
            cause = self.sip_code if self.sip_code >= 300 else None
            self._call_log.writer.submit(
                CallEnded(
                    call_id=self.call_id, ended_at=datetime.now(UTC), end_reason=ended[:64], sip_cause=cause
                )
            )
        logger.info("SIP call ended: %s", reason, extra=self._log_extra)
