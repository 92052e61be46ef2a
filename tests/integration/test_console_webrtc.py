"""A real browser-style call (aiortc loopback peer) on the console's live list: listed, not
transferable, hung up through the registry exactly as the console's button does."""

import asyncio
import time
from collections.abc import Callable

import numpy as np
import pytest

from voiceagent.bridges.webrtc import WebRTCConfig, WebRTCService
from voiceagent.bridges.webrtc.client import LoopbackCaller
from voiceagent.bridges.webrtc.live import WebRTCLiveSource
from voiceagent.config import Settings
from voiceagent.errors import LiveCallError
from voiceagent.media.live import LiveCallRegistry
from voiceagent.testing import ScriptedEngine, ScriptedReply

from .corpus import silence

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


async def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


async def test_a_live_webrtc_call_is_listed_and_hung_up_from_the_console(settings: Settings) -> None:
    engine = ScriptedEngine([ScriptedReply("Hi.", np.zeros(3200, dtype=np.int16))], user_text="hello")
    service = WebRTCService(engine, settings, config=WebRTCConfig(max_calls=1, connect_timeout_s=5.0))
    live = LiveCallRegistry()
    live.attach(WebRTCLiveSource(service, agent="front-desk"))
    caller = LoopbackCaller(silence(20_000))

    async def signal(offer: dict[str, str]) -> dict[str, str]:
        answer = await service.offer(offer["sdp"], offer["type"])
        return answer.as_json()

    try:
        call_id = await caller.connect(signal)
        await _until(service.calls[call_id].connected.is_set, 10.0, "the call to connect")
        (listed,) = await live.calls()
        assert (listed.call_id, listed.channel, listed.agent, listed.can_transfer) == (
            call_id,
            "webrtc",
            "front-desk",
            False,
        )
        assert (await live.calls())[0].started_at == listed.started_at  # stable across polls
        with pytest.raises(LiveCallError, match="cannot be transferred"):
            await live.transfer(call_id, "sip:desk@example.com")
        session = service.calls[call_id].session
        await live.hang_up(call_id)
        assert call_id not in service.calls
        assert await live.calls() == []
        assert session is not None
        assert session.ended_reason == "console_hangup"
        with pytest.raises(LiveCallError, match="no live call"):
            await live.hang_up(call_id)
    finally:
        await caller.aclose()
        await service.aclose()
