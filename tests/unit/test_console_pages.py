"""The console in process (httpx ASGITransport) on a migrated SQLite file: auth, CSRF, roles, pages."""

import asyncio
import re
import shutil
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from voiceagent.api import create_app
from voiceagent.api.deps import ApiState
from voiceagent.bridges.webrtc import WebRTCService
from voiceagent.config import load_settings
from voiceagent.console.admins import create_admin
from voiceagent.console.install import PREFIX, ROUTERS
from voiceagent.console.throttle import LoginThrottle
from voiceagent.media.live import LiveCall, LiveCallRegistry
from voiceagent.memory import InProcessMemory
from voiceagent.store import (
    CallEnded,
    CallStarted,
    EventRecord,
    RecordingRecord,
    TurnRecord,
    agents_repo,
    create_engine,
    session_factory,
)
from voiceagent.store import repository as repo
from voiceagent.store.migrate import upgrade_async
from voiceagent.testing import ScriptedEngine, ScriptedReply

NOW = datetime.now(UTC).replace(microsecond=0)
PASSWORD = "correct horse battery"
AGENT = {
    "name": "front-desk",
    "fallback": "Sorry.",
    "intents": [{"name": "hours", "keywords": ["open"], "answer": "Nine to five."}],
}
# Reachable without a login on purpose: the login form itself and the CSS/JS it needs.
PUBLIC = {("GET", "/console/login"), ("POST", "/console/login")}
# Browser calls: anyone who can open the call page may start a call (like dialling a number), and
# a call's unguessable id is what lets its caller end it (a WHIP-style resource URL). Listing the
# live ids needs a key (checked below with the rest of /v1).
PUBLIC_CALLING = {
    ("POST", "/v1/webrtc/offer"),
    ("DELETE", "/v1/webrtc/calls/{call_id}"),
    ("PATCH", "/v1/webrtc/calls/{call_id}"),
    ("POST", "/v1/webrtc/calls/{call_id}/offer"),
}


@dataclass
class Console:
    app: FastAPI
    client: httpx.AsyncClient
    live: LiveCallRegistry
    hung_up: list[str] = field(default_factory=list)

    @property
    def state(self) -> ApiState:
        state: ApiState = self.app.state.api
        return state

    async def login(self, email: str = "admin@example.com", password: str = PASSWORD) -> str:
        """Log in; returns the session's CSRF token (as the pages embed it)."""
        form = await self.client.get("/console/login")
        token = _login_csrf(form.text)
        response = await self.client.post(
            "/console/login", data={"email": email, "password": password, "csrf_token": token}
        )
        assert response.status_code == 303, response.text
        page = await self.client.get("/console/live")
        return _page_csrf(page.text)


def _login_csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def _page_csrf(html: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert found is not None
    return found.group(1)


def _stereo_wav(path: Path, seconds: float) -> None:
    samples = (np.sin(np.arange(int(16000 * seconds)) / 8) * 3000).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(np.repeat(samples, 2).tobytes())


async def _seed(state: ApiState, recordings: Path) -> None:
    await asyncio.to_thread(recordings.mkdir, parents=True, exist_ok=True)
    await asyncio.to_thread(_stereo_wav, recordings / "c1.wav", 1.5)
    async with state.sessions() as s, s.begin():
        await agents_repo.create_agent(s, name="front-desk", definition=AGENT, agent_id="agt_1")
        await repo.record_calls_started(
            s,
            calls=[
                CallStarted("c1", "inbound", "webrtc", NOW - timedelta(minutes=5), agent="front-desk"),
                CallStarted("c2", "inbound", "sip", NOW - timedelta(minutes=4), from_number="+15550001"),
            ],
        )
        await repo.add_turns(
            s,
            turns=[
                TurnRecord("c1", 0, "caller", "When are you open?", 0.0, 1000.0),
                TurnRecord("c1", 1, "agent", "Nine to five, Monday to", 1400.0, 2400.0, True, 1000.0),
                TurnRecord("c1", 2, "caller", "Thanks, bye.", 2500.0, 3000.0),
                TurnRecord("c1", 3, "agent", "Goodbye.", 3800.0, 4400.0),
            ],
        )
        await repo.add_events(
            s,
            events=[
                EventRecord("c1", 0, "call_started", NOW, 0.0),
                EventRecord("c1", 1, "agent_paused", NOW, 2090.0, {"onset_ms": 2000.0}),
                EventRecord("c1", 2, "barge_in", NOW, 2300.0, {"onset_ms": 2000.0, "reason": "speech"}),
                EventRecord("c1", 3, "engine_error", NOW, 2350.0, {"code": "x"}),
            ],
        )
        await repo.add_recording(s, recording=RecordingRecord("c1", "both", "c1.wav", 1.5))
        await repo.record_call_ended(s, call=CallEnded("c1", NOW - timedelta(minutes=4), "completed"))


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated database with the two admins per module; each test gets a copy of the file."""
    path = tmp_path_factory.mktemp("console") / "migrated.db"

    async def migrate() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade_async(engine)
            async with session_factory(engine)() as s, s.begin():  # argon2 is slow on purpose: once
                await create_admin(s, email="admin@example.com", password=PASSWORD, role="admin")
                await create_admin(s, email="viewer@example.com", password=PASSWORD, role="viewer")
        finally:
            await engine.dispose()

    asyncio.run(migrate())
    return path


@pytest.fixture
async def console(tmp_path: Path, migrated_db: Path) -> AsyncIterator[Console]:
    await asyncio.to_thread(shutil.copyfile, migrated_db, tmp_path / "calls.db")
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}", recordings_dir=tmp_path / "rec"
    )
    live = LiveCallRegistry()
    # With the WebRTC service too, so that the route walk covers /v1/webrtc as `voiceagent serve` has it.
    webrtc = WebRTCService(ScriptedEngine([ScriptedReply("hi", np.zeros(320, dtype=np.int16))]), settings)
    app = create_app(settings, memory_factory=lambda _settings: InProcessMemory(), live=live, webrtc=webrtc)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as client,
    ):
        console = Console(app, client, live)
        await _seed(console.state, settings.recordings_dir)
        yield console


def _routes(app: FastAPI, prefix: str) -> list[tuple[str, str]]:
    if prefix == "/console":  # not in the OpenAPI schema: walk the console's own routers
        return sorted(
            (method, PREFIX + route.path)
            for router in ROUTERS
            for route in router.routes
            if isinstance(route, APIRoute)
            for method in route.methods or ()
            if method != "HEAD"
        )
    paths = app.openapi()["paths"]
    return sorted((m.upper(), path) for path, ops in paths.items() if path.startswith(prefix) for m in ops)


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "c1", path)


# --- nobody logged in ------------------------------------------------------------------------------


async def test_every_console_and_v1_route_refuses_an_anonymous_request(console: Console) -> None:
    everything = _routes(console.app, "/console") + _routes(console.app, "/v1")
    assert set(everything) >= PUBLIC_CALLING
    assert ("GET", "/v1/webrtc/calls") in everything
    routes = [r for r in everything if r not in PUBLIC | PUBLIC_CALLING]
    assert len(routes) >= 25
    for method, path in sorted(PUBLIC_CALLING):
        # Without a real offer or a live call's id these reveal nothing and change nothing.
        response = await console.client.request(method, _concrete(path), json={})
        assert response.status_code in (400, 404, 409, 415, 422), (method, path, response.status_code)
    for method, path in routes:
        page = await console.client.request(method, _concrete(path), headers={"Accept": "text/html"})
        if path.startswith("/v1"):
            assert page.status_code == 401, (method, path)
        elif method == "GET":
            assert page.status_code == 303, (method, path)
            assert page.headers["location"].startswith("/console/login?next=")
        else:
            assert page.status_code == 401, (method, path)
        fetch = await console.client.request(method, _concrete(path), headers={"Accept": "application/json"})
        assert fetch.status_code == 401, (method, path)


async def test_wrong_password_unknown_email_and_a_forged_login_are_refused(console: Console) -> None:
    form = await console.client.get("/console/login")
    token = _login_csrf(form.text)
    for email, password in [("admin@example.com", "wrong password!"), ("nobody@example.com", PASSWORD)]:
        page = await console.client.post(
            "/console/login", data={"email": email, "password": password, "csrf_token": token}
        )
        assert page.status_code == 401
        assert "Wrong email or password." in page.text
        token = _login_csrf(page.text)  # each form comes with a fresh token
    # Another site posting the form cannot know the token in our cookie.
    forged = await console.client.post(
        "/console/login", data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": "guess"}
    )
    assert forged.status_code == 403
    assert "va_console" not in forged.cookies


async def test_repeated_failed_logins_are_throttled(console: Console) -> None:
    console.app.state.console_throttle = LoginThrottle(max_failures=2)
    statuses = []
    token = _login_csrf((await console.client.get("/console/login")).text)
    for password in ("wrong password 1", "wrong password 2", PASSWORD):
        page = await console.client.post(
            "/console/login", data={"email": "admin@example.com", "password": password, "csrf_token": token}
        )
        statuses.append(page.status_code)
        token = _login_csrf(page.text)
    # Even the right password waits: the throttle answers before the password is checked.
    assert statuses == [401, 401, 429]
    assert int(page.headers["retry-after"]) > 0
    assert "Too many failed logins" in page.text


async def test_the_session_cookie_is_httponly_lax_and_secure_over_https(console: Console) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=console.app), base_url="https://c") as c:
        form = await c.get("/console/login")
        response = await c.post(
            "/console/login",
            data={"email": "admin@example.com", "password": PASSWORD, "csrf_token": _login_csrf(form.text)},
        )
    cookie = next(
        v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith("va_console=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" in cookie
    assert response.headers["location"] == "/console/live"


async def test_logout_ends_the_session_on_the_server(console: Console) -> None:
    csrf = await console.login()
    cookie = console.client.cookies["va_console"]
    assert (await console.client.post("/console/logout", data={"csrf_token": csrf})).status_code == 303
    console.client.cookies.set("va_console", cookie)  # a copied cookie is worthless now
    again = await console.client.get("/console/live", headers={"Accept": "text/html"})
    assert again.status_code == 303


# --- roles and CSRF --------------------------------------------------------------------------------


async def test_a_viewer_gets_403_on_every_post(console: Console) -> None:
    csrf = await console.login("viewer@example.com")
    posts = [
        p
        for m, p in _routes(console.app, "/console")
        if m == "POST" and p not in ("/console/login", "/console/logout")
    ]
    assert len(posts) >= 6
    for path in posts:
        response = await console.client.post(
            _concrete(path),
            data={"csrf_token": csrf, "definition": "name: x", "name": "k", "scopes": "admin"},
        )
        assert response.status_code == 403, path
    async with console.state.sessions() as s:
        agent = await agents_repo.get_agent(s, agent_id="agt_1")
    assert agent is not None
    assert agent.definition == AGENT
    # Looking is allowed.
    assert (await console.client.get("/console/agents/agt_1")).status_code == 200


async def test_a_post_without_the_csrf_token_is_refused(console: Console) -> None:
    csrf = await console.login()
    calls = 0

    async def hang_up(reason: str) -> None:
        nonlocal calls
        calls += 1

    console.live.add(LiveCall("live1", "file", NOW), hang_up=hang_up)
    assert (await console.client.post("/console/live/live1/hangup")).status_code == 403
    wrong = await console.client.post(
        "/console/live/live1/hangup", headers={"X-CSRF-Token": csrf[:-2] + "xx"}
    )
    assert wrong.status_code == 403
    assert calls == 0
    ok = await console.client.post("/console/live/live1/hangup", headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200
    assert calls == 1


# --- pages -----------------------------------------------------------------------------------------


async def test_live_calls_json_lists_registered_calls_and_transfer_is_refused_for_file_calls(
    console: Console,
) -> None:
    csrf = await console.login()
    ended: list[str] = []

    async def hang_up(reason: str) -> None:
        ended.append(reason)
        console.live.discard("live1")

    console.live.add(LiveCall("live1", "file", NOW, agent="front-desk"), hang_up=hang_up, turns=lambda: 3)
    listed = (await console.client.get("/console/live.json")).json()
    assert [(c["call_id"], c["turns"], c["can_transfer"]) for c in listed["calls"]] == [("live1", 3, False)]
    transfer = await console.client.post(
        "/console/live/live1/transfer",
        data={"target": "sip:desk@example.com"},
        headers={"X-CSRF-Token": csrf},
    )
    assert transfer.status_code == 409
    assert "cannot be transferred" in transfer.json()["message"]
    await console.client.post("/console/live/live1/hangup", headers={"X-CSRF-Token": csrf})
    assert ended == ["console_hangup"]
    assert (await console.client.get("/console/live.json")).json()["calls"] == []
    gone = await console.client.post("/console/live/live1/hangup", headers={"X-CSRF-Token": csrf})
    assert gone.status_code == 404


async def test_history_searches_and_filters(console: Console) -> None:
    await console.login()
    everything = await console.client.get("/console/calls")
    assert "/console/calls/c1" in everything.text
    assert "/console/calls/c2" in everything.text
    by_number = await console.client.get("/console/calls", params={"q": "5550001"})
    assert "/console/calls/c2" in by_number.text
    assert "/console/calls/c1" not in by_number.text
    by_channel = await console.client.get("/console/calls", params={"channel": "webrtc"})
    assert "/console/calls/c1" in by_channel.text
    assert "/console/calls/c2" not in by_channel.text
    tomorrow = (NOW + timedelta(days=1)).date().isoformat()
    none = await console.client.get("/console/calls", params={"since": tomorrow, "q": "%_\\"})
    assert "No calls match." in none.text
    bad_cursor = await console.client.get("/console/calls", params={"cursor": "nonsense"})
    assert bad_cursor.status_code == 200
    assert "no longer valid" in bad_cursor.text


async def test_call_detail_shows_barge_in_timeline_latency_and_plays_the_recording(console: Console) -> None:
    await console.login()
    page = await console.client.get("/console/calls/c1")
    assert page.status_code == 200
    assert 'class="turn agent barged"' in page.text
    assert "heard 1,000 ms" in page.text
    assert page.text.count('<rect class="bar"') == 2  # two answered turns: 400 ms and 800 ms
    assert "#1: 400 ms" in page.text
    assert "#2: 800 ms" in page.text
    assert "<code>barge_in</code>" in page.text
    assert 'src="/console/calls/c1/recording"' in page.text
    audio = await console.client.get("/console/calls/c1/recording")
    assert audio.status_code == 200
    assert audio.headers["content-type"] == "audio/wav"
    assert audio.content[:4] == b"RIFF"
    missing = await console.client.get("/console/calls/c2/recording")
    assert missing.status_code == 404
    assert (await console.client.get("/console/calls/nope")).status_code == 404


async def test_agent_edit_validates_before_saving(console: Console) -> None:
    csrf = await console.login()
    bad = await console.client.post(
        "/console/agents/agt_1",
        data={
            "csrf_token": csrf,
            "definition": "name: front-desk\nintents:\n  - name: hours\n    answr: x\n",
        },
    )
    assert bad.status_code == 422
    assert "intents.0.answr" in bad.text
    assert "Not saved" in bad.text
    not_yaml = await console.client.post(
        "/console/agents/agt_1", data={"csrf_token": csrf, "definition": "a: [b"}
    )
    assert not_yaml.status_code == 422
    assert "not valid YAML" in not_yaml.text
    good = await console.client.post(
        "/console/agents/agt_1",
        data={"csrf_token": csrf, "definition": "name: front-desk\ngreeting: Hi there!\nfallback: Sorry.\n"},
    )
    assert good.status_code == 303
    async with console.state.sessions() as s:
        agent = await agents_repo.get_agent(s, agent_id="agt_1")
    assert agent is not None
    assert agent.definition["greeting"] == "Hi there!"
    made = await console.client.post(
        "/console/agents/new", data={"csrf_token": csrf, "definition": "name: sales\nfallback: Sorry.\n"}
    )
    assert made.status_code == 303
    taken = await console.client.post(
        "/console/agents/new", data={"csrf_token": csrf, "definition": "name: sales\nfallback: Sorry.\n"}
    )
    assert taken.status_code == 422
    assert "already exists" in taken.text


async def test_api_keys_are_shown_once_work_and_can_be_revoked(console: Console) -> None:
    csrf = await console.login()
    made = await console.client.post(
        "/console/keys", data={"csrf_token": csrf, "name": "crm", "scopes": ["calls:read"]}
    )
    key = re.search(r'<pre id="new-key">([^<]+)</pre>', made.text)
    assert key is not None
    auth = {"Authorization": f"Bearer {key.group(1)}"}
    assert (await console.client.get("/v1/calls", headers=auth)).status_code == 200
    assert key.group(1) not in (await console.client.get("/console/keys")).text
    key_id = key.group(1).split("_")[1]
    await console.client.post(f"/console/keys/{key_id}/revoke", data={"csrf_token": csrf})
    assert (await console.client.get("/v1/calls", headers=auth)).status_code == 401
    no_scope = await console.client.post("/console/keys", data={"csrf_token": csrf, "name": "x"})
    assert no_scope.status_code == 422
    assert "at least one scope" in no_scope.text


async def test_metrics_come_from_the_call_log(console: Console) -> None:
    await console.login()
    page = await console.client.get("/console/metrics")
    assert page.status_code == 200
    stats = re.findall(r'<span class="value">([^<]+)</span>', page.text)
    # calls; first audio p50/p95 over 400 and 800 ms; barge-in stop 90 ms (the pause, not the flush).
    assert stats[:5] == ["2", "600 ms", "780 ms", "90 ms", "90 ms"]
    assert stats[5] == "1 / 0"
    assert "<svg" in page.text
    assert "Calls per hour" in page.text


async def test_trunks_page_has_an_empty_state(console: Console) -> None:
    await console.login()
    page = await console.client.get("/console/trunks")
    assert "No SIP trunks configured" in page.text


async def test_pages_carry_a_strict_content_security_policy(console: Console) -> None:
    login = await console.client.get("/console/login")
    policy = login.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert login.headers["x-frame-options"] == "DENY"
    # Nothing on a page comes from elsewhere: every src and href is a path on this server.
    await console.login()
    for path in ("/console/live", "/console/calls/c1", "/console/metrics", "/console/webhooks"):
        page = (await console.client.get(path)).text
        assert re.findall(r'(?:src|href)="(?!/|#|\?)([^"]*)"', page) == [], path
        assert "<script>" not in page
        assert " style=" not in page


class _Receiver:
    """A loopback HTTP receiver that answers 204 and keeps each request's webhook-id."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
        await reader.readexactly(int(headers.get("content-length", headers.get("Content-Length", "0"))))
        self.ids.append(headers.get("webhook-id", headers.get("Webhook-Id", "")))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        # Polling the page, as a person would: there is no event to wait on from outside the app.
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def test_add_a_webhook_endpoint_see_its_deliveries_and_resend_one(console: Console) -> None:
    receiver = _Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        csrf = await console.login()
        added = await console.client.post(
            "/console/webhooks",
            data={"csrf_token": csrf, "url": f"http://127.0.0.1:{port}/hooks", "events": ["call.ended"]},
        )
        assert added.status_code == 200
        assert re.search(r'<pre id="new-secret">whsec_', added.text)
        # Events go to the endpoints that exist when they happen: a call ends after the endpoint.
        async with console.state.sessions() as s, s.begin():
            await repo.record_call_ended(s, call=CallEnded("c2", NOW, "completed"))

        async def delivered() -> bool:
            page = await console.client.get("/console/webhooks", params={"status": "succeeded"})
            return "call.ended:c2" in page.text

        await _until(delivered)
        assert receiver.ids.count("call.ended:c2") == 1
        page = await console.client.get("/console/webhooks")
        delivery_id = re.search(
            r'data-delivery-id="(\d+)"><td>\d+</td><td><code>call.ended</code>'
            r'<div class="hint">call.ended:c2</div>',
            page.text,
        )
        assert delivery_id is not None
        resent = await console.client.post(
            f"/console/webhooks/deliveries/{delivery_id.group(1)}/resend", data={"csrf_token": csrf}
        )
        assert resent.status_code == 303

        async def sent_again() -> bool:
            return receiver.ids.count("call.ended:c2") == 2  # the same message id: receivers dedupe

        await _until(sent_again)
        bad = await console.client.post(
            "/console/webhooks/deliveries/999999/resend", data={"csrf_token": csrf}
        )
        assert bad.status_code == 404
        refused = await console.client.post(
            "/console/webhooks", data={"csrf_token": csrf, "url": "ftp://x", "events": ["call.ended"]}
        )
        assert refused.status_code == 422
    finally:
        server.close()
        await server.wait_closed()
