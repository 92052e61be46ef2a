"""Transfer when the far end refuses REFER: call the target ourselves and bridge the two calls.

The second call has no audio port: once it answers, the caller's audio goes straight to it on
pjsip's conference bridge (and back), and the agent's port is disconnected from the caller. When
either side hangs up, the other is hung up too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from voiceagent.bridges.sip.pjcall import PjCall
from voiceagent.errors import SipError

if TYPE_CHECKING:
    from voiceagent.bridges.sip.leg import SipCallLeg
    from voiceagent.bridges.sip.service import SipMediaService

__all__ = ["TransferBridge"]

logger = logging.getLogger(__name__)


class TransferBridge:
    """The CallListener of the second call; made and started by ``SipMediaService.transfer``."""

    def __init__(self, service: SipMediaService, leg: SipCallLeg, target: str) -> None:
        self.service = service
        self.leg = leg
        self.target = target
        self.call: PjCall | None = None
        self.bridged = False

    async def start(self) -> None:
        service, leg = self.service, self.leg
        leg.note("transfer_bridging", target=self.target)
        call, _ = await service.thread.run(
            lambda: service._pj_new_outbound(leg.details.trunk, with_port=False)
        )
        self.call = call
        call.listener = self
        leg.bridge = self
        try:
            await service.thread.run(lambda: call.makeCall(self.target, service.pj.CallOpParam(True)))
        except SipError:
            call.listener = None
            await service.thread.run(lambda: service._pj_forget(call))
            leg.note("transfer_failed", target=self.target)
            raise

    async def hang_up(self) -> None:
        call = self.call
        if call is not None:
            self.call = None
            call.listener = None
            await self.service.thread.run(lambda: self.service._pj_hangup(call, 200, "transfer ended"))

    # ---- CallListener (on the loop) ------------------------------------------------------------

    def on_state(self, state: str, code: int, reason: str) -> None:
        self.leg.note("transfer_leg_state", state=state, code=code)
        if state == "disconnected":
            self.call = None
            self.leg.request_end("transfer_ended" if self.bridged else f"transfer_failed_{code}")

    def on_media(self, status: str) -> None:
        call, a = self.call, self.leg
        if status != "active" or self.bridged or call is None:
            return
        self.bridged = True
        caller = a.pj_call
        self.service._spawn(self._connect(caller, call), f"{a.call_id}:bridge-connect")

    async def _connect(self, caller: PjCall, callee: PjCall) -> None:
        try:
            await self.service.thread.run(lambda: caller.connect_to(callee))
        except SipError as exc:  # one side hung up meanwhile: its own state change ends the call
            logger.info("transfer not bridged: %s", exc, extra={"call_id": self.leg.call_id})
            return
        self.leg.note("transfer_bridged", target=self.target)
        logger.info("transfer bridged to %s", self.target, extra={"call_id": self.leg.call_id})

    def on_dtmf(self, digit: str, method: str) -> None:
        pass

    def on_transfer_status(self, code: int, reason: str, final: bool) -> None:
        pass

    def on_rtp_source(self, source: str, stranger: bool) -> None:
        pass

    def on_rtp_pinned(self, peer: str, pinned: bool) -> None:
        pass
