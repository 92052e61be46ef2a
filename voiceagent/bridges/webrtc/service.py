"""WebRTCService: answers browser offers with calls to the agent and owns every live call.

VoiceAgentError                     (voiceagent.errors)
└── WebRTCError
    ├── OfferError            400   not an SDP offer we can answer (malformed, no audio, ...)
    ├── CallLimitError        503   ``max_calls`` calls are live already, or the service is closing
    ├── CallNotFoundError     404   no live call has that id
    └── RenegotiationError    409   a second offer on a live call (a call takes one offer)
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from aiortc.sdp import SessionDescription

from voiceagent.agents.definition import BargeInPolicy
from voiceagent.audio import SAMPLE_RATE, SileroVad
from voiceagent.bridges.webrtc.audio import Layout
from voiceagent.bridges.webrtc.call import WebRTCCall
from voiceagent.calllog import CallLogSink
from voiceagent.config import Settings
from voiceagent.engines.base import SpeechEngine, SpeechSession
from voiceagent.engines.events import SessionConfig
from voiceagent.errors import VoiceAgentError
from voiceagent.media.session import CallSession
from voiceagent.store.writer import CallLogWriter

__all__ = [
    "CallLimitError",
    "CallNotFoundError",
    "OfferError",
    "RenegotiationError",
    "WebRTCAnswer",
    "WebRTCConfig",
    "WebRTCError",
    "WebRTCService",
    "check_offer",
]

logger = logging.getLogger(__name__)

_MAX_SDP_CHARS = 64 * 1024
_UNANSWERABLE = (ValueError, InvalidAccessError, InvalidStateError, OperationError)


class WebRTCError(VoiceAgentError):
    """A browser call that cannot be made or found."""


class OfferError(WebRTCError):
    """The offer is not an SDP offer with an audio stream we can answer."""


class CallLimitError(WebRTCError):
    """No room for another call."""


class CallNotFoundError(WebRTCError):
    """No live call has this id."""


class RenegotiationError(WebRTCError):
    """A second offer on a live call: a call takes one offer and is never renegotiated."""


@dataclass(frozen=True)
class WebRTCConfig:
    """How browser calls are answered.

    ``ice_servers``: STUN/TURN URLs handed to aiortc; empty means host candidates only (aiortc's
    own default would add a public Google STUN server, so it is never left to it).
    """

    max_calls: int = 20
    connect_timeout_s: float = 15.0
    ice_servers: tuple[str, ...] = ()
    outbound_layout: Layout = "mono"

    def __post_init__(self) -> None:
        if self.max_calls < 1:
            raise ValueError(f"max_calls must be at least 1, got {self.max_calls}")
        if self.connect_timeout_s <= 0:
            raise ValueError(f"connect_timeout_s must be positive, got {self.connect_timeout_s}")


@dataclass(frozen=True)
class WebRTCAnswer:
    """Our SDP answer and the id of the call it made."""

    sdp: str
    type: str
    call_id: str

    def as_json(self) -> dict[str, str]:
        return {"sdp": self.sdp, "type": self.type, "call_id": self.call_id}


VadFactory = Callable[[], SileroVad]


class WebRTCService:
    """The engine, a VAD per call, the settings, and the set of live calls.

    ``engine`` is shared by every call (each call opens its own engine session); ``vad_factory``
    makes one VAD per call (the VAD holds the stream's state). ``call_log``, if given, records
    every call like the other bridges do.
    """

    def __init__(
        self,
        engine: SpeechEngine,
        settings: Settings,
        *,
        config: WebRTCConfig | None = None,
        vad_factory: VadFactory = SileroVad.packaged,
        barge_in: BargeInPolicy | None = None,
        call_log: CallLogWriter | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.config = config or WebRTCConfig()
        self._vad_factory = vad_factory
        self._barge_in = barge_in
        self._call_log = call_log
        self._calls: dict[str, WebRTCCall] = {}
        # Calls being set up count against max_calls too, or a burst of offers would overshoot it.
        self._reserved: set[str] = set()
        self._closers: set[asyncio.Task[None]] = set()
        self._closing = False
        self._draining = False
        self._owns_engine = False

    @classmethod
    async def load(
        cls,
        settings: Settings,
        *,
        config: WebRTCConfig | None = None,
        call_log: CallLogWriter | None = None,
    ) -> WebRTCService:
        """A service on the engine (``settings.engine``) and the agent of ``settings`` (loaded here, closed by
        :meth:`aclose`): what ``voiceagent serve`` runs."""
        from voiceagent.agents import builtin_agent_path, load_agent
        from voiceagent.engines.loading import load_engine

        agent = load_agent(settings.agent_path or builtin_agent_path())
        engine = await load_engine(settings, agent)  # settings.engine: cascade here, or realtime workers
        # Fail at start, not on the first call, if the VAD model is missing.
        await asyncio.to_thread(SileroVad.packaged)
        service = cls(engine, settings, config=config, barge_in=agent.barge_in, call_log=call_log)
        service._owns_engine = True
        return service

    @property
    def calls(self) -> Mapping[str, WebRTCCall]:
        """Live calls by id."""
        return self._calls

    # ---- making calls --------------------------------------------------------------------------

    async def offer(self, sdp: str, sdp_type: str = "offer") -> WebRTCAnswer:
        """Answer a browser's offer with a new call; raises OfferError or CallLimitError."""
        if self._closing:
            raise CallLimitError("the WebRTC service is shutting down")
        if self._draining:
            raise CallLimitError("this node is draining: it finishes its calls and takes no new ones")
        check_offer(sdp, sdp_type)
        if len(self._calls) + len(self._reserved) >= self.config.max_calls:
            raise CallLimitError(f"all {self.config.max_calls} call slots are in use; try again later")
        call_id = f"call_{uuid.uuid4().hex[:20]}"
        self._reserved.add(call_id)
        try:
            call = await self._open_call(call_id, RTCSessionDescription(sdp=sdp, type=sdp_type))
        finally:
            self._reserved.discard(call_id)
        description = call.pc.localDescription
        assert description is not None  # set by WebRTCCall.answer
        return WebRTCAnswer(sdp=description.sdp, type=description.type, call_id=call_id)

    async def _open_call(self, call_id: str, offer: RTCSessionDescription) -> WebRTCCall:
        servers = [RTCIceServer(urls=url) for url in self.config.ice_servers]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        sink = CallLogSink(self._call_log, call_id) if self._call_log is not None else None
        call = WebRTCCall(call_id, pc, end=self._end, layout=self.config.outbound_layout, call_log=sink)
        engine_session: SpeechSession | None = None
        try:
            vad = await asyncio.to_thread(self._vad_factory)
            engine_session = await self.engine.open_session(SessionConfig(SAMPLE_RATE, SAMPLE_RATE))
            session = CallSession(
                call_id=call_id,
                engine=engine_session,
                vad=vad,
                settings=self.settings,
                barge_in=self._barge_in,
                transcriber=getattr(self.engine, "transcribe", None),
                on_event=call.on_timeline_event,
            )
            await call.answer(offer, session)
        except BaseException as exc:
            await call.aclose("setup_failed")
            if engine_session is not None and not call.started:
                await engine_session.aclose()  # a session never started does not close its engine side
            if isinstance(exc, _UNANSWERABLE):
                # aiortc's ways of saying it cannot answer this offer (no common codec, bad DTLS ...).
                raise OfferError(f"cannot answer this offer: {exc}") from exc
            raise
        if self._closing:
            await call.aclose("shutdown")
            raise CallLimitError("the WebRTC service is shutting down")
        self._calls[call_id] = call
        if call.end_reason is not None:
            self._end(call, call.end_reason)  # the peer gave up while we were answering
        else:
            call.watch_connection(self.config.connect_timeout_s)
        logger.info("call answered", extra={"call_id": call_id})
        return call

    def renegotiate(self, call_id: str) -> None:
        """A second offer on a live call: always refused (RenegotiationError, or CallNotFoundError)."""
        if call_id not in self._calls:
            raise CallNotFoundError(f"no live call {call_id!r}")
        raise RenegotiationError(
            f"call {call_id!r} is already set up, and a call takes one offer: renegotiation is not"
            f" supported; hang up (DELETE /v1/webrtc/calls/{call_id}) and call again with a new offer"
        )

    # ---- ending calls --------------------------------------------------------------------------

    async def hang_up(self, call_id: str, reason: str = "hangup") -> None:
        """End a live call now; raises CallNotFoundError."""
        call = self._calls.pop(call_id, None)
        if call is None:
            raise CallNotFoundError(f"no live call {call_id!r}")
        await call.aclose(reason)

    def _end(self, call: WebRTCCall, reason: str) -> None:
        """A call asks to be ended (from a peer event or its clock): close it on a task we own."""
        if self._calls.get(call.call_id) is not call:
            return  # already ended, or still being set up (setup looks at call.end_reason)
        del self._calls[call.call_id]
        task = asyncio.create_task(call.aclose(reason), name=f"{call.call_id}:close")
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    @property
    def draining(self) -> bool:
        return self._draining

    def drain(self) -> None:
        """Take no new calls from now on (503); the live ones go on until they end."""
        self._draining = True

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no call is live or being set up; False if ``timeout_s`` passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._calls or self._reserved:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))
        return True

    async def aclose(self) -> None:
        """Hang up every call and await every task; new offers are refused from now on."""
        self._closing = True
        calls, self._calls = list(self._calls.values()), {}
        await asyncio.gather(*(c.aclose("shutdown") for c in calls), return_exceptions=True)
        while self._closers:
            await asyncio.gather(*list(self._closers), return_exceptions=True)
        if self._owns_engine:
            await self.engine.aclose()

    def stats(self) -> dict[str, Any]:
        return {
            "live_calls": len(self._calls),
            "max_calls": self.config.max_calls,
            "draining": self._draining,
        }


def check_offer(sdp: str, sdp_type: str) -> None:
    """Refuse what aiortc would choke on, with a message a client developer can act on."""
    if sdp_type != "offer":
        raise OfferError(f'expected an SDP of type "offer", got {sdp_type!r}')
    if not sdp.strip():
        raise OfferError("the offer has no SDP")
    if len(sdp) > _MAX_SDP_CHARS:
        raise OfferError(f"the SDP is longer than {_MAX_SDP_CHARS} characters")
    if not sdp.lstrip().startswith("v=0"):
        raise OfferError('malformed SDP: it must start with "v=0"')
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser fails with assert, ValueError, KeyError, IndexError...
        raise OfferError(f"malformed SDP: {type(exc).__name__} {exc}".rstrip()) from exc
    audio = [m for m in parsed.media if m.kind == "audio"]
    if not audio:
        raise OfferError("the offer has no audio m-line; a call needs the caller's microphone")
    if not any(m.direction in (None, "sendrecv") for m in audio):
        raise OfferError("the offer's audio must be sendrecv: the caller both talks and listens")
    for media in audio:
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise OfferError("the offer's audio has no ICE credentials (a=ice-ufrag / a=ice-pwd)")
        if media.dtls is None or not media.dtls.fingerprints:
            raise OfferError("the offer's audio has no DTLS fingerprint (a=fingerprint)")
