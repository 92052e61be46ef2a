"""Offer checks, the signaling routes' refusals, the call page, and the page's event messages.

No peer connection is made here: every offer below is refused before aiortc is asked to answer.
"""

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from voiceagent.audio import SileroVad
from voiceagent.bridges.webrtc import (
    CallLimitError,
    OfferError,
    RenegotiationError,
    WebRTCConfig,
    WebRTCService,
    check_offer,
    webrtc_router,
)
from voiceagent.bridges.webrtc import __all__ as public_names
from voiceagent.bridges.webrtc.events import CallEventChannel, page_events
from voiceagent.config import Settings
from voiceagent.media.session import TurnRecord
from voiceagent.media.timeline import CallEvent
from voiceagent.testing import ScriptedEngine, ScriptedReply

FINGERPRINT = "sha-256 " + ":".join(["AB"] * 32)
AUDIO = f"""m=audio 9 UDP/TLS/RTP/SAVPF 96 0
c=IN IP4 0.0.0.0
a=sendrecv
a=mid:0
a=rtcp-mux
a=rtpmap:96 opus/48000/2
a=rtpmap:0 PCMU/8000
a=ice-ufrag:42F3
a=ice-pwd:dmmXZIzDt9InHoyoHHB36n
a=fingerprint:{FINGERPRINT}
a=setup:actpass
"""
DATA = f"""m=application 9 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 0.0.0.0
a=mid:1
a=sctp-port:5000
a=ice-ufrag:42F3
a=ice-pwd:dmmXZIzDt9InHoyoHHB36n
a=fingerprint:{FINGERPRINT}
a=setup:actpass
"""
HEAD = "v=0\no=- 1 1 IN IP4 0.0.0.0\ns=-\nt=0 0\na=group:BUNDLE 0 1\n"


def sdp(*sections: str) -> str:
    return "\r\n".join((HEAD + "".join(sections)).splitlines()) + "\r\n"


def test_public_names_are_sorted_and_complete() -> None:
    import voiceagent.bridges.webrtc as package

    assert sorted(public_names, key=lambda n: (not n[0].isupper(), n)) == list(public_names)
    assert all(hasattr(package, name) for name in public_names)


def test_a_browser_like_offer_passes() -> None:
    check_offer(sdp(AUDIO, DATA), "offer")


@pytest.mark.parametrize(
    ("text", "sdp_type", "message"),
    [
        (sdp(AUDIO), "answer", 'type "offer"'),
        ("", "offer", "no SDP"),
        ("hello", "offer", 'start with "v=0"'),
        ("v=0\r\nm=audio nonsense\r\n", "offer", "malformed SDP"),
        (sdp(AUDIO).replace("96 0", "96 999"), "offer", "malformed SDP"),
        (sdp(DATA), "offer", "no audio m-line"),
        (sdp(AUDIO.replace("a=sendrecv", "a=recvonly")), "offer", "sendrecv"),
        (sdp(AUDIO.replace("a=ice-pwd:dmmXZIzDt9InHoyoHHB36n\n", "")), "offer", "ICE credentials"),
        (sdp(AUDIO.replace(f"a=fingerprint:{FINGERPRINT}\n", "")), "offer", "DTLS fingerprint"),
        ("v=0\r\n" + "a=x\r\n" * 20_000, "offer", "longer than"),
    ],
)
def test_offers_we_cannot_answer_are_refused_with_a_reason(text: str, sdp_type: str, message: str) -> None:
    with pytest.raises(OfferError, match=message):
        check_offer(text, sdp_type)


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="max_calls"):
        WebRTCConfig(max_calls=0)
    with pytest.raises(ValueError, match="connect_timeout_s"):
        WebRTCConfig(connect_timeout_s=0)


# ---- the routes ---------------------------------------------------------------------------------


def no_vad() -> SileroVad:
    raise AssertionError("a refused offer must not build anything for a call")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    engine = ScriptedEngine([ScriptedReply("hi", np.zeros(320, dtype=np.int16))])
    service = WebRTCService(engine, Settings(), vad_factory=no_vad)
    app = FastAPI()
    app.include_router(webrtc_router(service))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client
    await service.aclose()


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        ({"sdp": "v=0\r\nm=audio x\r\n", "type": "offer"}, None, "malformed SDP"),
        ({"sdp": sdp(DATA), "type": "offer"}, None, "no audio m-line"),
        ({"sdp": 42, "type": "offer"}, None, "must be strings"),
        ([1, 2], None, "JSON object"),
        ("not json", {"content-type": "application/json"}, "neither JSON nor application/sdp"),
        ("m=audio", {"content-type": "application/sdp"}, 'start with "v=0"'),
    ],
)
async def test_bad_offers_get_400_with_a_message(
    http: httpx.AsyncClient, body: Any, headers: dict[str, str] | None, message: str
) -> None:
    if isinstance(body, str):
        response = await http.post("/v1/webrtc/offer", content=body, headers=headers)
    else:
        response = await http.post("/v1/webrtc/offer", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_offer"
    assert message in response.json()["message"]


async def test_hanging_up_an_unknown_call_is_404(http: httpx.AsyncClient) -> None:
    response = await http.delete("/v1/webrtc/calls/call_nope")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "no live call 'call_nope'", "details": []}


async def test_live_calls_are_listed(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/webrtc/calls")
    assert response.json() == {"live_calls": 0, "max_calls": 20, "draining": False, "calls": []}


@pytest.mark.parametrize("path", ["/call", "/"])
async def test_the_call_page_is_served(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="call"' in response.text
    assert 'id="hangup"' in response.text
    # Nothing is fetched from elsewhere.
    assert "http://" not in response.text
    assert "https://" not in response.text


@pytest.mark.parametrize(("name", "kind"), [("call.js", "text/javascript"), ("call.css", "text/css")])
async def test_the_page_assets_are_served(http: httpx.AsyncClient, name: str, kind: str) -> None:
    response = await http.get(f"/call/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(kind)
    assert "http://" not in response.text
    assert "https://" not in response.text


async def test_only_the_page_assets_are_served(http: httpx.AsyncClient) -> None:
    assert (await http.get("/call/index.py")).status_code == 404
    assert (await http.get("/call/..%2Fservice.py")).status_code == 404


async def test_a_closed_service_refuses_offers_with_503() -> None:
    service = WebRTCService(ScriptedEngine([ScriptedReply("hi", np.zeros(320, dtype=np.int16))]), Settings())
    await service.aclose()
    with pytest.raises(CallLimitError, match="shutting down"):
        await service.offer(sdp(AUDIO), "offer")


# ---- page events --------------------------------------------------------------------------------


class FakeSession:
    def __init__(self, turns: list[TurnRecord]) -> None:
        self.turns = turns


def event(kind: str, **data: Any) -> CallEvent:
    return CallEvent(kind, 0.0, 0.0, data)


def test_timeline_events_become_page_messages() -> None:
    turn = TurnRecord(index=0, speech_start_ms=100.0, user_text="what time", reply_text=" We open at nine.")
    turn.response_id, turn.status = "resp_1", "speaking"
    session: Any = FakeSession([turn])
    assert page_events(event("speech_started"), session) == [{"type": "speech", "state": "started"}]
    assert page_events(event("transcript", text="what time"), session) == [
        {"type": "user", "turn": 0, "text": "what time"}
    ]
    assert page_events(event("agent_audio_started", turn=0, first_audio_ms=640.0), session) == [
        {"type": "agent", "turn": 0, "text": "We open at nine.", "final": False},
        {"type": "latency", "turn": 0, "first_audio_ms": 640.0},
    ]
    turn.status = "done"
    assert page_events(event("response_done", response_id="resp_1"), session) == [
        {"type": "agent", "turn": 0, "text": "We open at nine.", "final": True}
    ]
    assert page_events(event("response_done", response_id="resp_other"), session) == []
    assert page_events(event("echo_ignored"), session) == []
    assert page_events(event("call_ended", reason="hangup"), session)[0]["state"] == "ended"


class FakeChannel:
    def __init__(self) -> None:
        self.readyState = "connecting"
        self.sent: list[str] = []
        self.listeners: dict[str, Callable[[], None]] = {}

    def add_listener(self, name: str, fn: Callable[[], None]) -> None:
        self.listeners[name] = fn

    def send(self, text: str) -> None:
        self.sent.append(text)

    def open(self) -> None:
        self.readyState = "open"
        self.listeners["open"]()


def test_messages_wait_for_the_channel_to_open() -> None:
    events = CallEventChannel("call_1")
    events.send({"type": "call", "state": "connected"})
    channel = FakeChannel()
    events.attach(channel)  # type: ignore[arg-type]
    events.send({"type": "speech", "state": "started"})
    assert channel.sent == []
    channel.open()
    assert [json.loads(m)["type"] for m in channel.sent] == ["call", "speech"]
    assert all(json.loads(m)["call_id"] == "call_1" for m in channel.sent)
    events.send({"type": "speech", "state": "stopped"})
    assert len(channel.sent) == 3


# ---- renegotiation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/webrtc/calls/call_nope/offer"), ("PATCH", "/v1/webrtc/calls/call_nope")],
)
async def test_a_second_offer_on_an_unknown_call_is_404(
    http: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await http.request(method, path, json={"sdp": sdp(AUDIO), "type": "offer"})
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "no live call 'call_nope'", "details": []}


class LiveCallService(WebRTCService):
    """A service that believes one call is live, without making a peer connection."""

    def __init__(self) -> None:
        super().__init__(ScriptedEngine([ScriptedReply("hi", np.zeros(320, dtype=np.int16))]), Settings())
        self._calls["call_live"] = cast(Any, object())


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    [
        ("POST", "/v1/webrtc/calls/call_live/offer", json.dumps({"sdp": sdp(AUDIO), "type": "offer"}), None),
        ("PATCH", "/v1/webrtc/calls/call_live", sdp(AUDIO), {"content-type": "application/sdp"}),
    ],
)
async def test_a_second_offer_on_a_live_call_is_409(
    method: str, path: str, body: str, headers: dict[str, str] | None
) -> None:
    service = LiveCallService()
    app = FastAPI()
    app.include_router(webrtc_router(service))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.request(method, path, content=body, headers=headers)
    service._calls.clear()
    await service.aclose()
    assert response.status_code == 409
    payload = response.json()
    assert payload["code"] == "renegotiation_unsupported"
    assert payload["details"] == []
    assert "one offer" in payload["message"]
    assert "hang up" in payload["message"]


def test_renegotiate_raises() -> None:
    service = LiveCallService()
    with pytest.raises(RenegotiationError, match="one offer"):
        service.renegotiate("call_live")
    service._calls.clear()
