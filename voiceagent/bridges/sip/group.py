"""SipEndpointGroup: one media process's SIP endpoints, seen as one service.

A pjsua2 library holds at most 4 calls (docs/sip.md), so a process that is to serve more runs
several endpoints, each on its own pjsua2 copy (binding.py), SIP port and slice of the RTP range.
They share what is worth sharing: the event loop, the agent's engine, the call log and one paced
:class:`LoopWaker`, so every call of the process is ticked in one loop run and its VAD windows
are scored in one batched model call. Most of a call's CPU is the fixed cost of starting such a
run cold (docs/sip.md, "The bridge's tick"), and this spreads it over all the process's calls.

The control endpoint (control.py) drives a group like a single service: calls are found by id
in whichever endpoint holds them, outbound calls go to the endpoint with the most free slots.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from voiceagent.agents.definition import BargeInPolicy
from voiceagent.bridges.sip.binding import binding
from voiceagent.bridges.sip.leg import SipCallLeg
from voiceagent.bridges.sip.options import SipMediaOptions, endpoint_options
from voiceagent.bridges.sip.service import SipMediaService, tick_jitter
from voiceagent.bridges.sip.trunks import SipTrunk
from voiceagent.bridges.sip.waker import LoopWaker
from voiceagent.config import Settings
from voiceagent.engines.base import SpeechEngine
from voiceagent.errors import SipError
from voiceagent.store.writer import CallLogWriter

__all__ = ["SipEndpointGroup"]

logger = logging.getLogger(__name__)


class SipEndpointGroup:
    """``endpoints`` SIP endpoints (one :class:`SipMediaService` each) in this process.

    Registering trunks register from the first endpoint only (one registration per trunk, as with
    one endpoint); the others carry the trunk's credentials for outbound calls without registering.
    """

    def __init__(
        self,
        engine: SpeechEngine,
        settings: Settings,
        options: SipMediaOptions,
        *,
        endpoints: int = 1,
        barge_in: BargeInPolicy | None = None,
        call_log: CallLogWriter | None = None,
        trunks: list[SipTrunk] | None = None,
        agent_engines: Mapping[str, SpeechEngine] | None = None,
        on_new_call: Callable[[SipCallLeg], None] | None = None,
    ) -> None:
        if endpoints < 1:
            raise SipError(f"a media process runs at least one SIP endpoint, got {endpoints}")
        self.options = options
        self._per_endpoint = endpoint_options(options, endpoints)
        self._engine = engine
        self._settings = settings
        self._shared: dict[str, Any] = {
            "barge_in": barge_in,
            "call_log": call_log,
            "trunks": trunks,
            "agent_engines": agent_engines,
            "on_new_call": on_new_call,
        }
        self.services: list[SipMediaService] = []
        self._waker: LoopWaker | None = None

    async def start(self) -> None:
        """Load the pjsua2 copies and start every endpoint; raises SipError (all are stopped then)."""
        loop = asyncio.get_running_loop()
        frame_s = self.options.frame_ms / 1000
        # One endpoint keeps the waker that runs at once on its port's request (no added delay).
        self._waker = LoopWaker(loop, pace_s=frame_s if len(self._per_endpoint) > 1 else None)
        try:
            for index, opt in enumerate(self._per_endpoint):
                await asyncio.to_thread(binding, index)  # reads and maps ~10 MB: off the loop
                service = SipMediaService(
                    self._engine,
                    self._settings,
                    opt,
                    pjsua=binding(index),
                    waker=self._waker,
                    register_trunks=index == 0,
                    **self._shared,
                )
                self.services.append(service)
                await service.start()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Hang up every call of every endpoint and stop them."""
        await asyncio.gather(*(s.aclose() for s in self.services), return_exceptions=True)
        if self._waker is not None:
            self._waker.close()

    # ---- what the control endpoint uses ---------------------------------------------------------

    @property
    def sip_ports(self) -> list[int]:
        return [opt.sip_port for opt in self._per_endpoint]

    @property
    def calls(self) -> Mapping[str, SipCallLeg]:
        return {call_id: leg for s in self.services for call_id, leg in s.calls.items()}

    def _owner(self, call_id: str) -> SipMediaService:
        for service in self.services:
            if call_id in service.calls:
                return service
        raise SipError(f"no live SIP call {call_id!r}")

    async def place_call(self, to: str, *, trunk: str | None = None, agent: str | None = None) -> str:
        """Call ``to`` from the endpoint with the most free slots (see SipMediaService.place_call)."""
        free = [s for s in self.services if len(s.calls) < s.options.max_calls]
        if not free:
            raise SipError(f"all {self.max_calls} call slots of this media process are in use")
        service = min(free, key=lambda s: len(s.calls))
        return await service.place_call(to, trunk=trunk, agent=agent)

    async def hang_up(self, call_id: str, reason: str = "hangup") -> None:
        await self._owner(call_id).hang_up(call_id, reason)

    async def send_dtmf(self, call_id: str, digits: str, *, method: str = "rfc4733") -> None:
        await self._owner(call_id).send_dtmf(call_id, digits, method=method)

    async def transfer(self, call_id: str, to: str) -> None:
        await self._owner(call_id).transfer(call_id, to)

    async def media_address(self, call_id: str) -> str:
        return await self._owner(call_id).media_address(call_id)

    @property
    def max_calls(self) -> int:
        return sum(opt.max_calls for opt in self._per_endpoint)

    def stats(self) -> dict[str, Any]:
        """The control endpoint's ``/health``: the endpoints' figures added up."""
        each = [s.stats() for s in self.services]
        refused: dict[int, int] = {}
        registrations: dict[str, Any] = {}
        for one in each:
            for code, count in one["refused"].items():
                refused[code] = refused.get(code, 0) + count
            registrations.update(one["registrations"])
        waker = self._waker
        return {
            "live_calls": sum(one["live_calls"] for one in each),
            "max_calls": self.max_calls,
            "sip_port": self.options.sip_port,
            "sip_ports": self.sip_ports,
            "endpoints": len(self.services),
            "refused": refused,
            "registrations": registrations,
            "tick_jitter_ms": tick_jitter(list(self.calls.values()), self.options.frame_ms),
            "vad_windows": {}
            if waker is None
            else {"model": waker.model_windows, "batched": waker.batched_windows},
            "loop_runs": 0 if waker is None else waker.wakeups,
            "audio_ports": {
                "created": sum(one["audio_ports"]["created"] for one in each),
                "free": sum(one["audio_ports"]["free"] for one in each),
            },
        }
