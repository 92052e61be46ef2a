"""Browser calls through two aiortc peers in one process: the agent's side and a caller's side.

Everything runs on loopback with no ICE servers. The caller plays a shipped question as its
microphone; what it hears comes back over Opus and is checked with an independent Whisper.
"""

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import numpy as np
import pytest
import pytest_asyncio
from aiortc import RTCConfiguration, RTCPeerConnection
from fastapi import FastAPI

from voiceagent.bridges.webrtc import WebRTCConfig, WebRTCService, webrtc_router
from voiceagent.bridges.webrtc.client import LoopbackCaller
from voiceagent.config import Settings
from voiceagent.engines.cascade import CascadeEngine
from voiceagent.engines.cascade.asr import WhisperAsr
from voiceagent.testing import ScriptedEngine, ScriptedReply

from .corpus import question, read_pcm, silence, word_overlap

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

_TONE = (np.sin(np.arange(8000) * 2 * np.pi * 440 / 16000) * 8000).astype(np.int16)


async def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


async def _no_new_tasks(before: set[asyncio.Task[Any]], timeout_s: float = 5.0) -> None:
    def leaked() -> set[asyncio.Task[Any]]:
        return asyncio.all_tasks() - before - {asyncio.current_task()}

    try:
        await _until(lambda: not leaked(), timeout_s, "every task of the call to finish")
    except AssertionError:
        raise AssertionError(f"leaked tasks: {sorted(repr(t.get_coro()) for t in leaked())}") from None


class Server:
    """A WebRTC service behind its router, reached through httpx without a socket."""

    def __init__(self, service: WebRTCService) -> None:
        self.service = service
        app = FastAPI()
        app.include_router(webrtc_router(service))
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://webrtc.test")

    async def signal(self, offer: dict[str, str]) -> dict[str, Any]:
        response = await self.http.post("/v1/webrtc/offer", json=offer)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def aclose(self) -> None:
        await self.service.aclose()
        await self.http.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def scripted(settings: Settings) -> AsyncIterator[Server]:
    engine = ScriptedEngine([ScriptedReply("A tone.", _TONE)], user_text="hello")
    server = Server(WebRTCService(engine, settings, config=WebRTCConfig(max_calls=2, connect_timeout_s=1.0)))
    yield server
    await server.aclose()


async def test_caller_hears_the_opening_hours(
    engine: CascadeEngine, settings: Settings, answers: dict[str, str], transcriber: WhisperAsr
) -> None:
    q = question("opening-hours")
    server = Server(WebRTCService(engine, settings))
    caller = LoopbackCaller(np.concatenate([read_pcm(q.path()), silence(20_000)]))
    try:
        call_id = await caller.connect(server.signal)
        call = server.service.calls[call_id]

        def answered() -> bool:
            session = call.session
            return (
                session is not None
                and bool(session.turns)
                and session.turns[0].status == "done"
                and not session.agent_audio_pending
            )

        await _until(answered, 40.0, "the agent's answer to be played out")
        await asyncio.sleep(0.5)  # the last frames are still on their way to the caller
        heard = caller.recording()
        response = await server.http.delete(f"/v1/webrtc/calls/{call_id}")
        assert response.status_code == 204
        assert (await server.http.delete(f"/v1/webrtc/calls/{call_id}")).status_code == 404
        assert call_id not in server.service.calls
    finally:
        await caller.aclose()
        await server.aclose()

    text = await asyncio.to_thread(transcriber.transcribe, heard)
    expected = answers[q.intent]
    assert word_overlap(expected, text) >= 0.6, f"heard {text!r}, expected {expected!r}"
    events = [json.loads(m) for m in caller.messages]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "call"
    assert "user" in kinds
    assert "saturday" in next(e["text"] for e in events if e["type"] == "user").lower()
    latency = next(e for e in events if e["type"] == "latency")
    assert 0 < latency["first_audio_ms"] < 5000
    assert any(e["type"] == "agent" and e["final"] and e["text"] for e in events)


async def test_a_peer_that_goes_away_ends_the_call(scripted: Server) -> None:
    before = asyncio.all_tasks()
    caller = LoopbackCaller(silence(5_000))
    call_id = await caller.connect(scripted.signal)
    call = scripted.service.calls[call_id]
    await _until(call.connected.is_set, 10.0, "the call to connect")
    await _until(lambda: call.ticks > 5, 5.0, "the outbound clock to run")
    await caller.aclose()  # no DELETE: the peer just closes
    await _until(lambda: call_id not in scripted.service.calls, 10.0, "the call to end")
    await _no_new_tasks(before)
    assert call.track.readyState == "ended"
    assert call.pc.connectionState == "closed"
    assert call.session is not None
    assert call.session.ended_reason in ("peer_closed", "peer_failed")


async def test_a_second_offer_on_a_live_call_is_409_and_the_call_goes_on(scripted: Server) -> None:
    caller = LoopbackCaller(silence(5_000))
    call_id = await caller.connect(scripted.signal)
    call = scripted.service.calls[call_id]
    await _until(call.connected.is_set, 10.0, "the call to connect")
    other = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    other.addTransceiver("audio", direction="sendrecv")
    await other.setLocalDescription(await other.createOffer())
    assert other.localDescription is not None
    offer = other.localDescription.sdp
    try:
        responses = [
            await scripted.http.post(
                f"/v1/webrtc/calls/{call_id}/offer", json={"sdp": offer, "type": "offer"}
            ),
            await scripted.http.patch(
                f"/v1/webrtc/calls/{call_id}", content=offer, headers={"content-type": "application/sdp"}
            ),
        ]
        for response in responses:
            assert response.status_code == 409
            body = response.json()
            assert body["code"] == "renegotiation_unsupported"
            assert "one offer" in body["message"]
            assert body["details"] == []
        # The call is untouched: still live, still on its own peer connection.
        assert scripted.service.calls.get(call_id) is call
        assert call.pc.connectionState == "connected"
        assert (await scripted.http.delete(f"/v1/webrtc/calls/{call_id}")).status_code == 204
        missing = await scripted.http.post(
            f"/v1/webrtc/calls/{call_id}/offer", json={"sdp": offer, "type": "offer"}
        )
        assert missing.status_code == 404
    finally:
        await other.close()
        await caller.aclose()


async def test_a_peer_that_never_connects_is_cleaned_up(scripted: Server) -> None:
    before = asyncio.all_tasks()
    silent_peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    silent_peer.addTransceiver("audio", direction="sendrecv")
    await silent_peer.setLocalDescription(await silent_peer.createOffer())
    assert silent_peer.localDescription is not None
    # The answer is never applied: no ICE checks, no DTLS.
    answer = await scripted.signal({"sdp": silent_peer.localDescription.sdp, "type": "offer"})
    call = scripted.service.calls[answer["call_id"]]
    await _until(lambda: not scripted.service.calls, 5.0, "the connect timeout to end the call")
    assert call.session is not None
    assert call.session.ended_reason == "connect_timeout"
    assert call.pc.connectionState == "closed"
    await silent_peer.close()
    await _no_new_tasks(before)


async def test_calls_past_max_calls_are_refused_with_503(scripted: Server) -> None:
    callers = [LoopbackCaller(silence(3_000)) for _ in range(3)]
    try:
        for caller in callers[:2]:
            await caller.connect(scripted.signal)
        # Connected before they hang up: aioice starts consent checks after a close that races
        # an ICE check still in flight, and they then outlive the call by up to 30 s.
        live = list(scripted.service.calls.values())
        await _until(lambda: all(c.connected.is_set() for c in live), 10.0, "both calls to connect")
        refused = callers[2]
        refused.pc.addTrack(refused.microphone)
        await refused.pc.setLocalDescription(await refused.pc.createOffer())
        assert refused.pc.localDescription is not None
        response = await scripted.http.post(
            "/v1/webrtc/offer", json={"sdp": refused.pc.localDescription.sdp, "type": "offer"}
        )
        assert response.status_code == 503
        assert response.json()["code"] == "call_limit"
        assert "2 call slots" in response.json()["message"]
        assert response.headers["retry-after"]
    finally:
        for caller in callers:
            await caller.aclose()


async def test_aclose_ends_every_call_and_task(settings: Settings) -> None:
    before = asyncio.all_tasks()
    engine = ScriptedEngine([ScriptedReply("A tone.", _TONE)])
    server = Server(WebRTCService(engine, settings))
    callers = [LoopbackCaller(silence(3_000)) for _ in range(2)]
    for caller in callers:
        await caller.connect(server.signal)
    calls = list(server.service.calls.values())
    await _until(lambda: all(c.connected.is_set() for c in calls), 10.0, "both calls to connect")
    await server.aclose()
    assert not server.service.calls
    assert all(c.pc.connectionState == "closed" and c.track.readyState == "ended" for c in calls)
    for caller in callers:
        await caller.aclose()
    await _no_new_tasks(before)
    with pytest.raises(Exception, match="shutting down"):
        await server.service.offer("v=0\r\n", "offer")


async def test_load_builds_a_service_on_the_settings_agent_and_closes_its_engine(settings: Settings) -> None:
    service = await WebRTCService.load(settings, config=WebRTCConfig(max_calls=3))
    assert isinstance(service.engine, CascadeEngine)
    assert service.config.max_calls == 3
    await service.aclose()
    with pytest.raises(Exception, match="shutting down"):
        await service.offer("v=0\r\n", "offer")


async def test_an_offer_aiortc_cannot_answer_is_400_and_leaves_nothing(scripted: Server) -> None:
    before = asyncio.all_tasks()
    peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    peer.addTransceiver("audio", direction="sendrecv")
    await peer.setLocalDescription(await peer.createOffer())
    assert peer.localDescription is not None
    # Only a codec aiortc does not speak: it parses, but there is nothing to answer with.
    offer = re.sub(r"(m=audio \d+ UDP/TLS/RTP/SAVPF) [\d ]+", r"\1 96", peer.localDescription.sdp)
    offer = re.sub(r"a=rtpmap:(9|0|8) .*\r\n", "", offer).replace("opus/48000/2", "iLBC/8000")
    response = await scripted.http.post("/v1/webrtc/offer", json={"sdp": offer, "type": "offer"})
    await peer.close()
    assert response.status_code == 400, response.text
    assert "cannot answer" in response.json()["message"]
    assert not scripted.service.calls
    await _no_new_tasks(before)
