"""The media process's control endpoint and the SIP message helpers, over a stand-in service."""

from __future__ import annotations

from typing import Any, cast

import httpx

from voiceagent.bridges.sip.control import control_app
from voiceagent.bridges.sip.leg import sip_number
from voiceagent.bridges.sip.service import SipMediaService, _header, _request_uri_user
from voiceagent.errors import SipError

_INVITE = (
    "INVITE sip:+4930123@10.0.0.5:5070;transport=udp SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060\r\n"
    "X-VoiceAgent-Agent: sales\r\n"
    "Content-Length: 0\r\n\r\nX-VoiceAgent-Trunk: not-a-header"
)


def test_invite_helpers_read_the_did_and_our_headers() -> None:
    assert _request_uri_user(_INVITE) == "+4930123"
    assert _header(_INVITE, "x-voiceagent-agent") == "sales"
    assert _header(_INVITE, "X-VoiceAgent-Trunk") is None  # a body line is not a header
    assert _request_uri_user("INVITE sip:10.0.0.5 SIP/2.0\r\n") == ""
    assert sip_number('"Bob" <sip:+4930555@carrier.example;user=phone>;tag=1') == "+4930555"
    assert sip_number("sip:desk@10.0.0.1:5060;transport=tcp") == "desk"
    assert sip_number("<sip:10.0.0.1>") is None
    assert sip_number(f"sip:{'9' * 100}@h") == "9" * 64


class _Service:
    def __init__(self) -> None:
        self.calls: dict[str, Any] = {}
        self.placed: list[tuple[str, str | None, str | None]] = []

    def stats(self) -> dict[str, Any]:
        return {"live_calls": 0, "max_calls": 3}

    async def hang_up(self, call_id: str) -> None:
        raise AssertionError("no call is live")

    async def place_call(self, to: str, *, trunk: str | None = None, agent: str | None = None) -> str:
        if not to.startswith("sip:"):
            raise SipError("call target must be a sip: URI")
        self.placed.append((to, trunk, agent))
        return "call_1"


async def test_control_places_calls_and_refuses_bad_input() -> None:
    fake = _Service()
    app = control_app(cast(SipMediaService, fake))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://media") as client:
        assert (await client.get("/health")).json() == {"live_calls": 0, "max_calls": 3}
        ok = await client.post("/calls", json={"to": "sip:a@b", "agent": "sales"})
        assert ok.status_code == 201
        assert ok.json() == {"call_id": "call_1", "status": "calling"}
        assert fake.placed == [("sip:a@b", None, "sales")]
        bad = await client.post("/calls", json={"to": "123"})
        assert bad.status_code == 400
        assert "sip: URI" in bad.json()["error"]
        assert (await client.post("/calls", content=b"{nope")).status_code == 400
        assert (await client.post("/calls", json=["to"])).status_code == 400
        assert (await client.post("/calls", json={"to": 5})).status_code == 400
        assert (await client.post("/calls/call_x/hangup")).status_code == 404
        assert (await client.get("/calls")).json() == {"calls": []}
