"""SipMediaService: a pjsua2 endpoint that answers and places calls for the agent, one process.

Methods named ``_pj_*`` run on the pjsip thread (:class:`PjsipThread`); everything else on the
event loop. Admission is counted on the pjsip thread, where INVITEs arrive, so a burst cannot
overshoot it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import pjsua2 as pj  # type: ignore[import-untyped]  # SWIG bindings without type information

from voiceagent.agents.definition import BargeInPolicy
from voiceagent.audio import SAMPLE_RATE, SileroVad
from voiceagent.bridges.sip.binding import PjBinding, binding
from voiceagent.bridges.sip.endpoint import PjsipThread
from voiceagent.bridges.sip.leg import CallDetails, SipCallLeg, sip_number
from voiceagent.bridges.sip.options import SipMediaOptions, source_allowed
from voiceagent.bridges.sip.pjcall import (
    IncomingInvite,
    PjCall,
    RegistrationStatus,
    ServiceAccount,
    TrunkAccount,
    reason_header,
)
from voiceagent.bridges.sip.port import CallAudioPort
from voiceagent.bridges.sip.trunks import SipTrunk, agent_for_number
from voiceagent.bridges.sip.waker import LoopWaker
from voiceagent.calllog import CallLogSink
from voiceagent.config import Settings
from voiceagent.engines.base import SpeechEngine, SpeechSession
from voiceagent.engines.events import SessionConfig
from voiceagent.errors import SipError
from voiceagent.media.session import CallSession
from voiceagent.store.writer import CallLogWriter

__all__ = ["SipMediaService", "tick_jitter"]

logger = logging.getLogger(__name__)

VadFactory = Callable[[], SileroVad]
_RETRY_AFTER_S = 5


class SipMediaService:
    """Answers INVITEs from allowed sources with the agent; places calls; owns every live call.

    ``on_new_call`` hears of each call as it is made (a live-call registry, a test).
    ``agent_engines`` maps agent names (from ``sip_trunks[*].numbers`` or ``X-VoiceAgent-Agent``)
    to engines of their own.
    """

    def __init__(
        self,
        engine: SpeechEngine,
        settings: Settings,
        options: SipMediaOptions,
        *,
        vad_factory: VadFactory = SileroVad.packaged,
        barge_in: BargeInPolicy | None = None,
        call_log: CallLogWriter | None = None,
        trunks: list[SipTrunk] | None = None,
        on_new_call: Callable[[SipCallLeg], None] | None = None,
        agent_engines: Mapping[str, SpeechEngine] | None = None,
        pjsua: PjBinding | None = None,
        waker: LoopWaker | None = None,
        register_trunks: bool = True,
    ) -> None:
        self.engine = engine
        # The pjsua2 copy this endpoint runs on (several endpoints share a process, binding.py),
        # and the waker that ticks its calls (shared by the process's endpoints, waker.py).
        self._binding = pjsua or binding(0)
        self.pj: Any = self._binding.pj
        self._shared_waker = waker
        # False on all but one endpoint of a process: their trunk accounts carry the credentials
        # for outbound calls but do not register (one registration per trunk, group.py).
        self._register_trunks = register_trunks
        # A called number routed to an agent with an engine of its own answers with it; any other
        # call (and an agent named but not loaded here) gets ``engine``.
        self.agent_engines = dict(agent_engines or {})
        self.settings = settings
        self.options = options
        self.trunks = {t.name: t for t in trunks or []}
        self.registrations: dict[str, RegistrationStatus] = {}
        self._vad_factory = vad_factory
        self._barge_in = barge_in
        self._call_log = call_log
        self._on_new_call = on_new_call
        self._legs: dict[str, SipCallLeg] = {}
        self._closers: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waker: LoopWaker | None = None
        self._thread: PjsipThread | None = None
        self._closing = False
        self.refused: dict[int, int] = {}
        # pjsip-thread state
        self._account: ServiceAccount | None = None
        self._trunk_accounts: dict[str, TrunkAccount] = {}
        self._pj_calls: set[PjCall] = set()
        self._admitted: set[PjCall] = set()
        self._ticks = 0
        # Every Call and port made, weakly: any still alive at teardown is referenced from somewhere
        # we do not control (a traceback, a test) and is disowned, because its C++ destructor would
        # abort the process if it ran after libDestroy.
        self._every_object: weakref.WeakSet[PjCall | CallAudioPort] = weakref.WeakSet()
        # Audio ports outlive their calls (CallAudioPort.reuse): free for the next call, or kept
        # for good where a call was still up when its leg let go. Dropped only after libDestroy.
        self._free_ports: list[CallAudioPort] = []
        self._kept_ports: list[CallAudioPort] = []
        self._ports_created = 0

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start pjsua2 and listen; raises SipError (port taken, bad address...)."""
        self._loop = asyncio.get_running_loop()
        self._waker = self._shared_waker or LoopWaker(self._loop)
        self._thread = PjsipThread(
            self.options,
            setup=self._pj_setup,
            teardown=self._pj_teardown,
            housekeeping=self._pj_housekeeping,
            pjsua=self._binding,
        )
        await asyncio.to_thread(self._thread.start)
        self._thread.register_current_thread("asyncio")
        logger.info("SIP media listening on %s:%d", self.options.bind_host, self.options.sip_port)

    async def aclose(self) -> None:
        """Hang up every call, close every session, stop pjsua2."""
        self._closing = True
        legs, self._legs = list(self._legs.values()), {}
        for leg in legs:
            await self._hangup_pj(leg, 503, "shutting down")
        await asyncio.gather(*(leg.aclose("shutdown") for leg in legs), return_exceptions=True)
        for leg in legs:
            if leg.bridge is not None:
                await leg.bridge.hang_up()
            await self._release(leg)
        while self._closers:
            await asyncio.gather(*list(self._closers), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.stop)

    @property
    def calls(self) -> Mapping[str, SipCallLeg]:
        return self._legs

    def stats(self) -> dict[str, Any]:
        return {
            "live_calls": len(self._legs),
            "max_calls": self.options.max_calls,
            "sip_port": self.options.sip_port,
            "refused": dict(self.refused),
            "registrations": {name: vars(status) for name, status in self.registrations.items()},
            "tick_jitter_ms": tick_jitter(list(self._legs.values()), self.options.frame_ms),
            "vad_windows": self._vad_windows(),
            # Audio ports are recycled, not destroyed (CallAudioPort.reuse): "created" stays at
            # the most calls the process had at once.
            "audio_ports": {"created": self._ports_created, "free": len(self._free_ports)},
        }

    def _vad_windows(self) -> dict[str, int]:
        """VAD windows that ran the model, and how many of them shared a batched model call."""
        waker = self._waker
        if waker is None:
            return {}
        return {"model": waker.model_windows, "batched": waker.batched_windows}

    # ---- pjsip thread: setup, INVITEs, housekeeping -------------------------------------------

    def _pj_setup(self, ep: pj.Endpoint) -> None:
        opt = self.options
        cfg = self.pj.AccountConfig()
        cfg.idUri = f"sip:agent@{opt.public_host or opt.bind_host}:{opt.sip_port}"
        self._media_config(cfg)
        self._account = self._binding.ServiceAccount(self._pj_on_invite)
        self._account.create(cfg, True)
        for trunk in self.trunks.values():
            if trunk.registers:
                self._pj_add_trunk(trunk)

    def _media_config(self, cfg: pj.AccountConfig) -> None:
        opt = self.options
        tc = cfg.mediaConfig.transportConfig
        tc.port = opt.rtp_ports[0]
        tc.portRange = opt.rtp_ports[1] - opt.rtp_ports[0]
        tc.boundAddress = opt.bind_host
        if opt.public_host:
            tc.publicAddress = opt.public_host
        if opt.outbound_proxy:
            cfg.sipConfig.proxies.append(opt.outbound_proxy)

    def _pj_add_trunk(self, trunk: SipTrunk) -> None:
        assert self._loop is not None
        pj = self.pj
        cfg = pj.AccountConfig()
        cfg.idUri = f"sip:{trunk.username}@{trunk.host}"
        cfg.regConfig.registrarUri = trunk.uri
        cfg.regConfig.timeoutSec = trunk.expires_s
        cfg.regConfig.retryIntervalSec = trunk.retry_s
        cfg.regConfig.firstRetryIntervalSec = trunk.retry_s
        cfg.regConfig.randomRetryIntervalSec = max(1, trunk.retry_s // 3)  # spread retries of many trunks
        cfg.regConfig.registerOnAdd = self._register_trunks
        cred = pj.AuthCredInfo("digest", trunk.realm, trunk.username or "", 0, trunk.password or "")
        cfg.sipConfig.authCreds.append(cred)
        self._media_config(cfg)
        status = RegistrationStatus(trunk=trunk.name)
        if self._register_trunks:
            self.registrations[trunk.name] = status
        account = self._binding.TrunkAccount(status, self._loop, self._on_registration, self._pj_on_invite)
        account.create(cfg, True)
        self._trunk_accounts[trunk.name] = account

    def _pj_teardown(self) -> None:
        self._admitted.clear()
        for call in self._pj_calls:
            call.port = None
        self._pj_calls.clear()
        for account in self._trunk_accounts.values():
            account.shutdown()
        self._trunk_accounts.clear()
        if self._account is not None:
            self._account.shutdown()
            self._account = None
        for leaked in list(self._every_object):
            leaked.thisown = False

    def _pj_housekeeping(self) -> None:
        self._ticks += 1
        every_second = self._ticks % 10 == 0
        timeout_s = self.options.rtp_timeout_s
        for call in list(self._admitted):
            if call.listener is None or not call.isActive():
                continue
            if self.options.strict_rtp:
                call.check_rtp_source()
            if not every_second:
                continue
            call.poll_rtp()
            if call.rx_idle_s >= timeout_s:
                logger.info("no RTP for %.0f s: hanging up", call.rx_idle_s)
                call.rx_idle_s = -1e9  # once
                self._pj_hangup(call, 408, "RTP timeout")

    def _pj_gone(self, call: PjCall) -> None:
        # Called from the call's own DISCONNECTED callback: drop it on the next pass, not inside it.
        assert self._thread is not None
        self._admitted.discard(call)

        def drop() -> None:
            self._pj_calls.discard(call)

        self._thread.submit(drop)

    def _pj_refuse(self, call: PjCall, code: int, text: str, *, retry: bool = False) -> None:
        op = self.pj.CallOpParam()
        op.statusCode = code
        op.txOption.headers.append(reason_header(self.pj, code, text))
        if retry:
            header = self.pj.SipHeader()
            header.hName, header.hValue = "Retry-After", str(_RETRY_AFTER_S)
            op.txOption.headers.append(header)
        call.answer(op)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._count_refusal, code)

    def _count_refusal(self, code: int) -> None:
        self.refused[code] = self.refused.get(code, 0) + 1

    def _pj_on_invite(self, prm: pj.OnIncomingCallParam) -> None:
        assert self._account is not None
        assert self._loop is not None
        rdata = prm.rdata
        source = str(rdata.srcAddress)
        call = self._binding.Call(self._account, self._loop, prm.callId, on_gone=self._pj_gone)
        self._every_object.add(call)
        self._pj_calls.add(call)
        if not source_allowed(source, self.options.allowed):
            logger.warning("INVITE from %s refused: source not allowed", source)
            self._pj_refuse(call, 403, "source not allowed")
            return
        if self._closing or len(self._admitted) >= self.options.max_calls:
            self._pj_refuse(call, 503, "call limit reached", retry=True)
            return
        info = call.getInfo()
        message = str(rdata.wholeMsg)
        invite = IncomingInvite(
            pj_call_id=int(prm.callId),
            source=source,
            from_uri=str(info.remoteUri),
            to_uri=str(info.localUri),
            request_uri_user=_request_uri_user(message),
            agent_header=_header(message, "X-VoiceAgent-Agent"),
            trunk_header=_header(message, "X-VoiceAgent-Trunk"),
        )
        port = self._pj_take_port()
        call.port = port
        self._admitted.add(call)
        op = self.pj.CallOpParam()
        op.statusCode = 180
        call.answer(op)
        self._loop.call_soon_threadsafe(self._on_invite, call, port, invite)

    def _pj_answer(self, call: PjCall, code: int, text: str = "") -> None:
        if not call.isActive():
            raise SipError("the caller hung up before we answered")
        op = self.pj.CallOpParam()
        op.statusCode = code
        if code >= 300:
            op.txOption.headers.append(reason_header(self.pj, code, text))
        call.answer(op)

    def _pj_refuse_if_active(self, call: PjCall, code: int, text: str) -> None:
        if call.isActive():
            self._pj_answer(call, code, text)

    def _pj_hangup(self, call: PjCall, code: int, text: str) -> None:
        if not call.isActive():
            return
        op = self.pj.CallOpParam()
        op.statusCode = code
        op.reason = text
        op.txOption.headers.append(reason_header(self.pj, code, text))
        call.hangup(op)

    # ---- loop: answering -----------------------------------------------------------------------

    def _on_invite(self, call: PjCall, port: CallAudioPort, invite: IncomingInvite) -> None:
        # Through the edge, a registered trunk's calls arrive with the trunk's name as the
        # Request-URI user and the DID in To (docs/sip-edge.md); direct calls carry the DID in the R-URI.
        number = (sip_number(invite.to_uri) or "") if invite.trunk_header else invite.request_uri_user
        agent = invite.agent_header or agent_for_number(list(self.trunks.values()), number)
        details = CallDetails(
            "inbound",
            invite.from_uri,
            invite.to_uri,
            agent=agent,
            trunk=invite.trunk_header,
            number=number or None,
        )
        task = asyncio.create_task(self._answer(call, port, details), name=f"sip-answer-{invite.pj_call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, call: PjCall, port: CallAudioPort, details: CallDetails) -> None:
        leg = self._new_leg(call, port, details)
        assert self._thread is not None
        try:
            session = await self._open_session(leg)
            await self._thread.run(lambda: self._pj_answer(call, 200))
        except BaseException as exc:
            logger.warning("cannot answer a SIP call: %s", exc, extra={"call_id": leg.call_id})
            self._legs.pop(leg.call_id, None)
            await leg.aclose("setup_failed")
            await self._release(leg)
            if self._thread.alive:
                # A caller who hung up (CANCEL) has nothing left to refuse; pjsua already freed the slot.
                await self._thread.run(lambda: self._pj_refuse_if_active(call, 500, "agent unavailable"))
            if not isinstance(exc, Exception):
                raise
            return
        await leg.start(session)
        if leg.state == "disconnected":
            leg.request_end("remote_hangup")

    def _new_leg(self, call: PjCall, port: CallAudioPort, details: CallDetails) -> SipCallLeg:
        call_id = f"call_{uuid.uuid4().hex[:20]}"
        sink = CallLogSink(self._call_log, call_id) if self._call_log is not None else None
        leg = SipCallLeg(call_id, call, port, details, end=self._end, call_log=sink)
        port.target = leg
        call.listener = leg
        self._legs[call_id] = leg
        if self._on_new_call is not None:
            self._on_new_call(leg)
        return leg

    async def _open_session(self, leg: SipCallLeg) -> CallSession:
        vad = await asyncio.to_thread(self._vad_factory)
        engine = self.agent_engines.get(leg.details.agent or "", self.engine)
        engine_session: SpeechSession = await engine.open_session(SessionConfig(SAMPLE_RATE, SAMPLE_RATE))
        leg.engine_session = engine_session
        leg.session = CallSession(
            call_id=leg.call_id,
            engine=engine_session,
            vad=vad,
            settings=self.settings,
            barge_in=self._barge_in,
            transcriber=getattr(engine, "transcribe", None),
            on_event=leg.on_timeline_event,
        )
        return leg.session

    # ---- loop: ending --------------------------------------------------------------------------

    def _end(self, leg: SipCallLeg, reason: str) -> None:
        if self._legs.get(leg.call_id) is not leg:
            return
        del self._legs[leg.call_id]
        task = asyncio.create_task(self._close_leg(leg, reason), name=f"{leg.call_id}:close")
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def _close_leg(self, leg: SipCallLeg, reason: str) -> None:
        if leg.bridge is not None:
            await leg.bridge.hang_up()
        if leg.state != "disconnected":
            await self._hangup_pj(leg, 200, "agent hung up")
        await leg.aclose(reason)
        await self._release(leg)

    async def _hangup_pj(self, leg: SipCallLeg, code: int, text: str) -> None:
        if self._thread is None or not self._thread.alive:
            return
        call = leg.pj_call
        try:
            await self._thread.run(lambda: self._pj_hangup(call, code, text))
        except SipError as exc:
            logger.info("hang-up failed: %s", exc, extra={"call_id": leg.call_id})

    async def _release(self, leg: SipCallLeg) -> None:
        """Hand the leg's pjsua2 objects to the pjsip thread: the call is destroyed there, its
        audio port kept for the next call."""
        objects = leg.detach()
        if self._thread is not None and self._thread.alive:
            self._thread.submit(lambda: self._pj_recycle(objects))

    def _pj_take_port(self) -> CallAudioPort:
        """An audio port for a new call: one a finished call left, or a new one (pjsip thread)."""
        if self._free_ports:
            free = self._free_ports.pop()
            free.reuse()
            return free
        assert self._waker is not None
        port: CallAudioPort = self._binding.AudioPort(self._waker, frame_ms=self.options.frame_ms)
        self._every_object.add(port)
        self._ports_created += 1
        port.create(f"agent{self._ports_created}")
        return port

    def _pj_recycle(self, objects: list[object]) -> None:
        """A finished call's objects: the call goes here (its destructor runs on this thread), its
        port back to the free ports (see :meth:`CallAudioPort.reuse` for why ports are never
        destroyed). A port whose call is somehow still up is never reused: audio could still flow."""
        still_up = any(isinstance(o, PjCall) and o.isActive() for o in objects)
        for port in (o for o in objects if isinstance(o, CallAudioPort)):
            (self._kept_ports if still_up else self._free_ports).append(port)
        objects.clear()

    async def hang_up(self, call_id: str, reason: str = "hangup") -> None:
        """End a live call now (BYE); raises SipError if there is no such call."""
        leg = self._legs.get(call_id)
        if leg is None:
            raise SipError(f"no live SIP call {call_id!r}")
        leg.request_end(reason)

    # ---- loop: placing calls, DTMF, transfer ----------------------------------------------------

    async def place_call(self, to: str, *, trunk: str | None = None, agent: str | None = None) -> str:
        """Call ``to`` (a number on ``trunk``, or a sip: URI) with the agent; returns the call id.

        Returns once the INVITE is sent; the media layer starts when the far end answers.
        Raises SipError: unknown trunk, bad target, call limit, pjsua2 refusing the call.
        """
        if self._closing:
            raise SipError("the SIP media service is shutting down")
        if trunk is not None and trunk not in self.trunks:
            raise SipError(f"no trunk named {trunk!r}; configured: {sorted(self.trunks)}")
        uri = self.trunks[trunk].target(to) if trunk is not None else to
        if not uri.startswith(("sip:", "sips:")) or "@" not in uri:
            raise SipError(f"call target must be a sip: URI (or a number with a trunk), got {to!r}")
        call, port = await self.thread.run(lambda: self._pj_new_outbound(trunk))
        assert port is not None
        local = f"sip:agent@{self.options.public_host or self.options.bind_host}:{self.options.sip_port}"
        leg = self._new_leg(call, port, CallDetails("outbound", local, uri, agent=agent, trunk=trunk))
        try:
            session = await self._open_session(leg)
            leg.on_confirmed = lambda: self._spawn(leg.start(session), f"{leg.call_id}:start")
            await self.thread.run(lambda: call.makeCall(uri, self.pj.CallOpParam(True)))
        except BaseException:
            self._legs.pop(leg.call_id, None)
            await leg.aclose("setup_failed")
            await self._release(leg)
            await self.thread.run(lambda: self._pj_forget(call))
            raise
        logger.info("calling %s", uri, extra={"call_id": leg.call_id})
        return leg.call_id

    def _pj_new_outbound(
        self, trunk: str | None, *, with_port: bool = True
    ) -> tuple[PjCall, CallAudioPort | None]:
        assert self._loop is not None
        assert self._account is not None
        if len(self._admitted) >= self.options.max_calls:
            raise SipError(f"all {self.options.max_calls} call slots of this media process are in use")
        account = self._trunk_accounts.get(trunk, self._account) if trunk is not None else self._account
        call = self._binding.Call(account, self._loop, on_gone=self._pj_gone)
        self._every_object.add(call)
        port = None
        if with_port:
            port = self._pj_take_port()
            call.port = port
        self._pj_calls.add(call)
        self._admitted.add(call)
        return call, port

    def _pj_forget(self, call: PjCall) -> None:
        self._admitted.discard(call)
        self._pj_calls.discard(call)

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _leg(self, call_id: str) -> SipCallLeg:
        leg = self._legs.get(call_id)
        if leg is None:
            raise SipError(f"no live SIP call {call_id!r}")
        return leg

    async def media_address(self, call_id: str) -> str:
        """Where this call receives RTP ("ip:port"), as pjsua bound it."""
        call = self._leg(call_id).pj_call

        def read() -> str:
            call.require_active()
            return str(call.getMedTransportInfo(0).localRtpName)

        return await self.thread.run(read)

    async def send_dtmf(self, call_id: str, digits: str, *, method: str = "rfc4733") -> None:
        """Send DTMF to the caller: RFC 4733 events in the RTP stream, or SIP INFO (dtmf-relay)."""
        if not digits or any(d not in "0123456789*#ABCDabcd" for d in digits):
            raise SipError(f"DTMF digits are 0-9 * # A-D, got {digits!r}")
        if method not in ("rfc4733", "info"):
            raise SipError(f"DTMF method is rfc4733 or info, got {method!r}")
        call = self._leg(call_id).pj_call
        param = self.pj.CallSendDtmfParam()
        param.digits = digits
        param.method = pj.PJSUA_DTMF_METHOD_RFC2833 if method == "rfc4733" else pj.PJSUA_DTMF_METHOD_SIP_INFO

        def send() -> None:
            call.require_active()
            call.sendDtmf(param)

        await self.thread.run(send)

    async def transfer(self, call_id: str, to: str) -> None:
        """Blind transfer by REFER; if the far end refuses REFER, the agent calls ``to`` itself and
        bridges the two calls (the agent leaves the audio path)."""
        leg = self._leg(call_id)
        if not to.startswith(("sip:", "sips:")):
            trunk = self.trunks.get(leg.details.trunk or "")
            if trunk is None:
                raise SipError(f"transfer target must be a sip: URI, got {to!r}")
            to = trunk.target(to)
        call = leg.pj_call
        leg.on_transfer_final = lambda code, reason: self._on_transfer_final(leg, to, code)

        def refer() -> None:
            call.require_active()
            call.xfer(to, self.pj.CallOpParam(True))

        try:
            await self.thread.run(refer)
        except SipError as exc:
            if call.ended:
                raise  # nothing left to transfer
            logger.info("REFER failed (%s): bridging instead", exc, extra={"call_id": call_id})
            await self._bridge_transfer(leg, to)

    def _on_transfer_final(self, leg: SipCallLeg, to: str, code: int) -> None:
        if 200 <= code < 300:
            leg.request_end("transferred")
        else:
            self._spawn(self._bridge_transfer(leg, to), f"{leg.call_id}:bridge")

    async def _bridge_transfer(self, leg: SipCallLeg, to: str) -> None:
        from voiceagent.bridges.sip.bridge import TransferBridge

        await TransferBridge(self, leg, to).start()

    def _on_registration(self, status: RegistrationStatus) -> None:
        self.registrations[status.trunk] = status
        logger.info("trunk %s registration: %d %s", status.trunk, status.code, status.reason)

    @property
    def thread(self) -> PjsipThread:
        if self._thread is None:
            raise SipError("the SIP media service is not started")
        return self._thread


def tick_jitter(legs: list[SipCallLeg], frame_ms: int) -> dict[str, float]:
    """How far the calls' clock ticks strayed from ``frame_ms``, as the loop saw them (p50, p99)."""
    gaps = sorted(abs(gap - frame_ms) for leg in legs for gap in leg.tick_gaps_ms)
    if not gaps:
        return {}
    return {
        "p50": round(gaps[len(gaps) // 2], 2),
        "p99": round(gaps[int(len(gaps) * 0.99)], 2),
        "n": len(gaps),
    }


def _header(message: str, name: str) -> str | None:
    prefix = name.lower() + ":"
    for line in message.split("\r\n\r\n", 1)[0].split("\r\n"):
        if line.lower().startswith(prefix):
            return line.split(":", 1)[1].strip() or None
    return None


def _request_uri_user(message: str) -> str:
    """The user part of the Request-URI: the called number (DID) after any proxy."""
    first = message.split("\r\n", 1)[0]
    parts = first.split(" ")
    if len(parts) < 2 or "@" not in parts[1]:
        return ""
    return parts[1].split(":", 1)[-1].split("@", 1)[0]
