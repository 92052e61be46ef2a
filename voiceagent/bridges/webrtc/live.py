"""The WebRTC service as a :class:`~voiceagent.media.live.LiveSource`, for the admin console."""

from __future__ import annotations

from datetime import UTC, datetime

from voiceagent.bridges.webrtc.service import CallNotFoundError, WebRTCService
from voiceagent.errors import LiveCallError
from voiceagent.media.live import LiveCall

__all__ = ["WebRTCLiveSource"]


class WebRTCLiveSource:
    """Lists the service's live browser calls; hang-up goes through the service, transfer is refused."""

    def __init__(self, service: WebRTCService, *, agent: str | None = None) -> None:
        self.service = service
        self.agent = agent
        # The service keeps no start time; the first listing after answer is within one poll of it.
        self._first_seen: dict[str, datetime] = {}

    async def live_calls(self) -> list[LiveCall]:
        calls = self.service.calls
        for gone in set(self._first_seen) - set(calls):
            del self._first_seen[gone]
        now = datetime.now(UTC)
        return [
            LiveCall(
                call_id=call_id,
                channel="webrtc",
                started_at=self._first_seen.setdefault(call_id, now),
                agent=self.agent,
                turns=len(call.session.turns) if call.session is not None else 0,
            )
            for call_id, call in calls.items()
        ]

    async def hang_up_live(self, call_id: str, reason: str) -> None:
        try:
            await self.service.hang_up(call_id, reason)
        except CallNotFoundError as exc:
            raise LiveCallError(str(exc)) from exc

    async def transfer_live(self, call_id: str, target: str) -> None:
        if call_id not in self.service.calls:
            raise LiveCallError(f"no live call {call_id!r}")
        raise LiveCallError(
            "browser (WebRTC) calls cannot be transferred: there is no phone line to hand over"
        )
