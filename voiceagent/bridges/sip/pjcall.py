"""pjsua2 Call and Account subclasses. They live on the pjsip thread and only report to the loop.

Every callback reads what it needs from pjsua2 (``getInfo()`` into a variable first, DESIGN §3)
and hands plain values to a :class:`CallListener` with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pjsua2 as pj  # type: ignore[import-untyped]  # SWIG bindings without type information

from voiceagent.bridges.sip.endpoint import destroy_on_pjsip_thread
from voiceagent.bridges.sip.port import CallAudioPort
from voiceagent.bridges.sip.strict_rtp import parse_address, pin_rtp_source
from voiceagent.errors import SipError

__all__ = [
    "CallListener",
    "IncomingInvite",
    "PjCall",
    "RegistrationStatus",
    "ServiceAccount",
    "TrunkAccount",
    "reason_header",
]

logger = logging.getLogger(__name__)

_STATES = {
    pj.PJSIP_INV_STATE_CALLING: "calling",
    pj.PJSIP_INV_STATE_INCOMING: "incoming",
    pj.PJSIP_INV_STATE_EARLY: "early",
    pj.PJSIP_INV_STATE_CONNECTING: "connecting",
    pj.PJSIP_INV_STATE_CONFIRMED: "confirmed",
    pj.PJSIP_INV_STATE_DISCONNECTED: "disconnected",
}
_MEDIA = {
    pj.PJSUA_CALL_MEDIA_NONE: "none",
    pj.PJSUA_CALL_MEDIA_ACTIVE: "active",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "local_hold",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "remote_hold",
    pj.PJSUA_CALL_MEDIA_ERROR: "error",
}


# The classes below are mixins: :func:`voiceagent.bridges.sip.binding.binding` builds the real
# classes on the pjsua2 copy of each endpoint (``class PjCall(mixin, copy.Call)``), sets ``pj``
# to that copy's module, and everything made or caught in them comes from ``self.pj``. Constants
# (``pj.PJSIP_*``) are the same numbers in every copy, so they are read from the ordinary import.
_SwigBase: Any = object


def reason_header(module: Any, code: int, text: str) -> Any:
    """``Reason: SIP;cause=<code>;text="<text>"`` (RFC 3326), a ``SipHeader`` of ``module``."""
    header = module.SipHeader()
    header.hName = "Reason"
    header.hValue = f'SIP;cause={code};text="{text}"'
    return header


class CallListener(Protocol):
    """The loop-side half of a call; every method runs on the event loop."""

    def on_state(self, state: str, code: int, reason: str) -> None: ...
    def on_media(self, status: str) -> None: ...
    def on_dtmf(self, digit: str, method: str) -> None: ...
    def on_transfer_status(self, code: int, reason: str, final: bool) -> None: ...
    def on_rtp_source(self, source: str, stranger: bool) -> None: ...
    def on_rtp_pinned(self, peer: str, pinned: bool) -> None: ...


@dataclass(frozen=True)
class IncomingInvite:
    """What the loop learns of an INVITE it may answer."""

    pj_call_id: int
    source: str
    from_uri: str
    to_uri: str
    request_uri_user: str
    agent_header: str | None
    trunk_header: str | None


@dataclass
class RegistrationStatus:
    """A registering trunk as last heard (``code`` 200 means registered)."""

    trunk: str
    registered: bool = False
    code: int = 0
    reason: str = ""
    expires_s: int = 0
    failures: int = 0


class PjCall(_SwigBase):  # type: ignore[misc]  # pjsua2 has no type information
    """One SIP dialog with its audio port; the listener is attached once the loop side exists."""

    pj: Any  # this class's pjsua2 copy (set by binding())

    def __init__(
        self,
        account: Any,
        loop: asyncio.AbstractEventLoop,
        call_id: int = pj.PJSUA_INVALID_ID,
        *,
        on_gone: Callable[[PjCall], None],
    ) -> None:
        super().__init__(account, call_id)
        self.loop = loop
        self.listener: CallListener | None = None
        self.port: CallAudioPort | None = None
        self.rx_packets = 0
        self.rx_idle_s = 0.0
        self.confirmed = False
        self.peer_rtp: str | None = None  # the RTP address the SDP negotiated
        self._on_gone = on_gone
        self._connected_slot: int | None = None
        self.ended = False
        self._slot_id = _slot_id_cell(self, call_id)

    def isActive(self) -> bool:  # noqa: N802 (pjsua2's name)
        # After DISCONNECTED the C++ object no longer names a slot (see _forget_slot): asking
        # pjsua about slot -1 would trip its assertions.
        return not self.ended and bool(super().isActive())

    def require_active(self) -> None:
        """Raise SipError if the call is over (pjsip thread, before acting on it)."""
        if not self.isActive():
            raise SipError("the call has ended")

    def _forget_slot(self) -> None:
        """At DISCONNECTED (pjsip thread): the C++ object lets go of its pjsua slot number.

        pjsua reuses slots at once (round robin over 4), and pjsua2's ``Call`` destructor hangs up
        the call in "its" slot and clears that slot's user data. Our objects are freed later (the
        loop side closes first), by which time a new call may hold the slot: it was hung up (603
        or BYE) and orphaned from its callbacks. With the id set to PJSUA_INVALID_ID the
        destructor leaves pjsua alone.
        """
        self.ended = True
        cell = self._slot_id
        if cell is not None:
            cell.value = pj.PJSUA_INVALID_ID
        elif not _layout_warned:
            _warn_layout()

    def __del__(self) -> None:
        # The C++ destructor that runs next calls into pjlib: only on the pjsip thread.
        destroy_on_pjsip_thread(self)

    def _post(self, fn: Callable[..., None], *args: object) -> None:
        if self.listener is not None:
            self.loop.call_soon_threadsafe(fn, *args)

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802
        info = self.getInfo()
        state = _STATES.get(info.state, str(info.state))
        code, reason = int(info.lastStatusCode), str(info.lastReason)
        self.confirmed = info.state == pj.PJSIP_INV_STATE_CONFIRMED
        if self.listener is not None:
            self._post(self.listener.on_state, state, code, reason)
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            if self.port is not None:
                self.port.close()
            self._forget_slot()
            # Not deleted inside its own callback: the owner drops it on the next pass.
            self._on_gone(self)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        self.peer_rtp = None  # a new offer/answer may have moved the peer
        info = self.getInfo()
        status = "none"
        for media in info.media:
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            status = _MEDIA.get(media.status, "none")
            if media.status in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD):
                self._connect(media.index, media.audioConfSlot)
            break
        if self.listener is not None:
            self._post(self.listener.on_media, status)

    def _connect(self, index: int, slot: int) -> None:
        if self.port is None or self._connected_slot == slot:
            return
        audio = self.getAudioMedia(index)
        audio.startTransmit(self.port)
        self.port.startTransmit(audio)
        self._connected_slot = slot

    def connect_to(self, other: PjCall) -> None:
        """Bridge this call's audio straight to ``other`` (transfer fallback); the agent drops out."""
        self.require_active()
        other.require_active()
        mine, theirs = self.getAudioMedia(-1), other.getAudioMedia(-1)
        if self.port is not None:
            mine.stopTransmit(self.port)
            self.port.stopTransmit(mine)
        mine.startTransmit(theirs)
        theirs.startTransmit(mine)

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:  # noqa: N802
        method = "info" if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc4733"
        if self.listener is not None:
            self._post(self.listener.on_dtmf, str(prm.digit), method)

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:  # noqa: N802
        if self.listener is not None:
            self._post(
                self.listener.on_transfer_status, int(prm.statusCode), str(prm.reason), bool(prm.finalNotify)
            )
        prm.cont = not prm.finalNotify

    def check_rtp_source(self) -> None:
        """Strict RTP (pjsip thread, every 100 ms): mute the port while the latest RTP packet came
        from an address other than the negotiated one. pjmedia itself plays any source and, after
        10 packets, even switches its sending to it (NAT latching), so this is where we hold the line.
        """
        port = self.port
        if not self.confirmed or port is None:
            return
        try:
            if self.peer_rtp is None:
                self.peer_rtp = str(self.getStreamInfo(0).remoteRtpAddress)
                self._pin(str(self.getMedTransportInfo(0).localRtpName), self.peer_rtp)
            source = str(self.getMedTransportInfo(0).srcRtpName)
        except self.pj.Error:
            return
        if not source or source.startswith("0.0.0.0") or self.peer_rtp.startswith("0.0.0.0"):
            return
        stranger = source != self.peer_rtp
        if stranger != port.muted:
            port.muted = stranger
            if self.listener is not None:
                self._post(self.listener.on_rtp_source, source, stranger)

    def _pin(self, local_name: str, peer_name: str) -> None:
        local, peer = parse_address(local_name), parse_address(peer_name)
        if local is None or peer is None or peer[0] == "0.0.0.0":
            return
        pinned = pin_rtp_source(local, peer)
        if self.listener is not None:
            self._post(self.listener.on_rtp_pinned, peer_name, pinned)

    def poll_rtp(self) -> None:
        """Once a second on the pjsip thread: count RTP packets received, for the inactivity timeout."""
        if not self.confirmed:
            return
        try:
            stat = self.getStreamStat(0)
        except self.pj.Error:
            return
        packets = int(stat.rtcp.rxStat.pkt)
        if packets == self.rx_packets:
            self.rx_idle_s += 1.0
        else:
            self.rx_packets, self.rx_idle_s = packets, 0.0


# pjsua2's ``Call`` keeps [vtable, Account&, pjsua_call_id id, ...]: the id is the int 16 bytes in
# (x86-64). Checked on every call object against the id it was made with before it is written.
_CALL_ID_OFFSET = 16


_layout_warned = False


def _warn_layout() -> None:
    global _layout_warned
    _layout_warned = True
    logger.warning(
        "pjsua2's Call layout is not the expected one: a finished call's object freed late may hang"
        " up the call that took its slot"
    )


def _slot_id_cell(call: Any, call_id: int) -> ctypes.c_int | None:
    """The C++ object's ``id`` member, or None if it is not where the layout says."""
    try:
        cell = ctypes.c_int.from_address(int(call.this) + _CALL_ID_OFFSET)
    except (TypeError, ValueError, AttributeError):
        return None
    return cell if cell.value == call_id else None


class ServiceAccount(_SwigBase):  # type: ignore[misc]
    """The local account every INVITE to this endpoint lands on; ``on_invite`` decides."""

    pj: Any

    def __init__(self, on_invite: Callable[[pj.OnIncomingCallParam], None]) -> None:
        super().__init__()
        self._on_invite = on_invite

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802
        self._on_invite(prm)


class TrunkAccount(_SwigBase):  # type: ignore[misc]
    """A registering trunk; pjsua re-registers before expiry and retries after failures."""

    pj: Any

    def __init__(
        self,
        status: RegistrationStatus,
        loop: asyncio.AbstractEventLoop,
        on_change: Callable[[RegistrationStatus], None],
        on_invite: Callable[[pj.OnIncomingCallParam], None],
    ) -> None:
        super().__init__()
        self.status = status
        self._loop = loop
        self._on_change = on_change
        self._on_invite = on_invite

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # noqa: N802
        info = self.getInfo()
        code = int(prm.code)
        self.status.code = code
        self.status.reason = str(prm.reason)
        self.status.registered = bool(info.regIsActive) and code // 100 == 2
        self.status.expires_s = int(info.regExpiresSec) if self.status.registered else 0
        if not self.status.registered:
            self.status.failures += 1
        snapshot = RegistrationStatus(**vars(self.status))
        self._loop.call_soon_threadsafe(self._on_change, snapshot)

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802
        self._on_invite(prm)
