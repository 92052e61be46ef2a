"""The live-call registry (file, bridge and SIP calls), chart geometry and the console's CLI."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from voiceagent.cli import cli
from voiceagent.config import load_settings
from voiceagent.console.charts import bar_chart
from voiceagent.console.manage import add_admin
from voiceagent.console.sip import SipControlLiveSource, trunk_states
from voiceagent.console.throttle import LoginThrottle
from voiceagent.errors import LiveCallError
from voiceagent.media.live import LiveCall, LiveCallRegistry
from voiceagent.store import create_engine, session_factory
from voiceagent.store.console_models import Admin

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


class FakeBridge:
    """A LiveSource as a bridge would be one: its own calls, its own hang-up."""

    def __init__(self) -> None:
        self.calls = {"b1": LiveCall("b1", "webrtc", T0 - timedelta(seconds=5))}
        self.ended: list[tuple[str, str]] = []

    async def live_calls(self) -> list[LiveCall]:
        return list(self.calls.values())

    async def hang_up_live(self, call_id: str, reason: str) -> None:
        self.ended.append((call_id, reason))
        del self.calls[call_id]

    async def transfer_live(self, call_id: str, target: str) -> None:
        raise LiveCallError("browser calls cannot be transferred")


async def test_registered_calls_and_source_calls_are_listed_oldest_first_and_hung_up_by_their_owner() -> None:
    live = LiveCallRegistry()
    bridge = FakeBridge()
    live.attach(bridge)
    ended: list[str] = []

    async def hang_up(reason: str) -> None:
        ended.append(reason)

    turns = [0]
    with live.registered(LiveCall("f1", "file", T0), hang_up=hang_up, turns=lambda: turns[0]):
        turns[0] = 2
        assert [(c.call_id, c.turns) for c in await live.calls()] == [("b1", 0), ("f1", 2)]
        await live.hang_up("f1")
        await live.hang_up("b1", reason="admin")
        assert ended == ["console_hangup"]
        assert bridge.ended == [("b1", "admin")]
        with pytest.raises(LiveCallError, match="no live call 'b1'"):
            await live.hang_up("b1")
        with pytest.raises(LiveCallError, match="file calls cannot be transferred"):
            await live.transfer("f1", "sip:desk@example.com")
        with pytest.raises(LiveCallError, match="needs a target"):
            await live.transfer("f1", "  ")
        with pytest.raises(LiveCallError, match="already registered"):
            live.add(LiveCall("f1", "file", T0), hang_up=hang_up)
    assert await live.calls() == []  # the with block ended: the call is gone however it ended


async def test_a_registered_transfer_is_called_with_its_target() -> None:
    live = LiveCallRegistry()
    targets: list[str] = []

    async def transfer(target: str) -> None:
        targets.append(target)

    async def hang_up(reason: str) -> None:
        raise AssertionError("not expected")

    live.add(LiveCall("s1", "sip", T0, can_transfer=True), hang_up=hang_up, transfer=transfer)
    await live.transfer("s1", "+15550100")
    assert targets == ["+15550100"]


def test_bar_chart_scales_to_the_peak_and_keeps_few_bars_slim() -> None:
    chart = bar_chart(["a", "b"], [50.0, 100.0], unit=" ms", width=400, height=100)
    low, high = chart.bars
    assert high.height == pytest.approx(100 - 16 - 24)
    assert low.height == pytest.approx(high.height / 2)
    assert low.y + low.height == pytest.approx(chart.baseline)
    assert high.width == 56.0
    assert chart.max_text == "100 ms"
    assert low.text == "a: 50 ms"
    empty = bar_chart([], [])
    assert empty.bars == []
    assert empty.max_text == ""
    with pytest.raises(ValueError, match="one label per value"):
        bar_chart(["a"], [])


def test_admin_create_takes_the_password_from_stdin_and_refuses_bad_input(tmp_path: Path) -> None:
    env = {"VOICEAGENT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'admins.db'}"}
    runner = CliRunner()
    made = runner.invoke(
        cli,
        ["admin", "create", "--email", "Ops@Example.com", "--password-stdin"],
        input="a long password\n",
        env=env,
    )
    assert made.exit_code == 0, made.output
    assert "created admin ops@example.com" in made.output
    again = runner.invoke(
        cli,
        ["admin", "create", "--email", "ops@example.com", "--password-stdin"],
        input="a long password\n",
        env=env,
    )
    assert again.exit_code == 2
    assert "already exists" in again.output
    short = runner.invoke(
        cli,
        ["admin", "create", "--email", "v@example.com", "--role", "viewer", "--password-stdin"],
        input="short\n",
        env=env,
    )
    assert short.exit_code == 2
    assert "at least 10 characters" in short.output
    listed = runner.invoke(cli, ["admin", "list"], env=env)
    assert listed.exit_code == 0
    assert "ops@example.com" in listed.output
    assert "$argon2" not in listed.output


def test_stored_passwords_are_argon2id_hashes(tmp_path: Path) -> None:
    settings = load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")

    async def run() -> str:
        await add_admin(settings, email="a@example.com", password="a long password", role="admin")
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine)() as s:
                return (await s.scalars(select(Admin.password_hash))).one()
        finally:
            await engine.dispose()

    stored = asyncio.run(run())
    assert stored.startswith("$argon2id$")
    assert "a long password" not in stored


class StandInSipService:
    """What the SIP control endpoint asks of a media process, without pjsip: two calls, one trunk."""

    def __init__(self) -> None:
        inbound = SimpleNamespace(direction="inbound", to_uri="sip:+15550100@carrier.example")
        self.calls = {"sip1": SimpleNamespace(call_id="sip1", state="confirmed", details=inbound)}
        self.transfers: list[tuple[str, str]] = []
        self.hung_up: list[str] = []

    def stats(self) -> dict[str, Any]:
        registration = {"trunk": "carrier", "registered": True, "code": 200, "reason": "OK", "failures": 0}
        return {"live_calls": len(self.calls), "registrations": {"carrier": registration}}

    async def hang_up(self, call_id: str) -> None:
        self.hung_up.append(call_id)
        del self.calls[call_id]

    async def transfer(self, call_id: str, to: str) -> None:
        self.transfers.append((call_id, to))


def _control(service: StandInSipService) -> httpx.AsyncBaseTransport:
    control = pytest.importorskip("voiceagent.bridges.sip.control")  # needs the [sip] extra (pjsua2)
    return httpx.ASGITransport(app=control.control_app(cast(Any, service)))


async def test_sip_calls_are_listed_transferred_and_hung_up_through_the_control_endpoint() -> None:
    service = StandInSipService()
    live = LiveCallRegistry()
    live.attach(SipControlLiveSource(["http://sip-media-1/"], transport=_control(service)))
    (call,) = await live.calls()
    assert (call.call_id, call.channel, call.from_number, call.can_transfer) == (
        "sip1",
        "sip",
        "sip:+15550100@carrier.example",
        True,
    )
    await live.transfer("sip1", "sip:desk@example.com")
    assert service.transfers == [("sip1", "sip:desk@example.com")]
    await live.hang_up("sip1")
    assert service.hung_up == ["sip1"]
    assert await live.calls() == []
    with pytest.raises(LiveCallError, match="no live call"):
        await live.hang_up("sip1")


async def test_an_unreachable_media_process_lists_nothing_instead_of_failing() -> None:
    live = LiveCallRegistry()
    live.attach(SipControlLiveSource(["http://127.0.0.1:9"]))
    assert await live.calls() == []


async def test_trunks_show_their_registration_state() -> None:
    trunks = [
        {
            "name": "carrier",
            "host": "sip.carrier.example",
            "registers": True,
            "username": "u",
            "password": "p",
        },
        {"name": "pbx", "host": "10.0.0.5", "source_ips": ["10.0.0.5"], "numbers": {"+15550100": "sales"}},
    ]
    settings = load_settings(sip_trunks=trunks, sip_control_urls=["http://sip-media-1"])
    states, problem = await trunk_states(settings, transport=_control(StandInSipService()))
    assert problem is None
    assert [(t.name, t.state, t.ok, t.numbers) for t in states] == [
        ("carrier", "registered", True, 0),
        ("pbx", "IP-authenticated", None, 1),
    ]
    assert states[0].detail == "200 OK, 1/1 processes"
    down = load_settings(sip_trunks=trunks, sip_control_urls=["http://127.0.0.1:9"])
    states, _ = await trunk_states(down)
    assert (states[0].state, states[0].detail) == ("unknown", "no SIP media process answered")
    bad, problem = await trunk_states(load_settings(sip_trunks=[{"name": "x"}]))
    assert bad == []
    assert problem is not None
    assert "sip_trunks[0]" in problem


def test_the_login_throttle_counts_failures_per_account_and_per_address() -> None:
    now = [0.0]
    throttle = LoginThrottle(max_failures=3, window_s=60.0, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after_s("10.0.0.1", "a@example.com") == 0
        throttle.failed("10.0.0.1", "A@example.com")
    assert throttle.retry_after_s("10.0.0.1", "a@example.com") == 60.0
    assert throttle.retry_after_s("10.0.0.2", "a@example.com") == 0  # another address: its own count
    now[0] = 30.0
    assert throttle.retry_after_s("10.0.0.1", "a@example.com") == 30.0
    now[0] = 61.0
    assert throttle.retry_after_s("10.0.0.1", "a@example.com") == 0  # the window moved on
    for i in range(15):  # one address guessing many accounts is stopped too
        throttle.failed("10.0.0.3", f"u{i}@example.com")
    assert throttle.retry_after_s("10.0.0.3", "new@example.com") > 0
    throttle.failed("10.0.0.4", "b@example.com")
    throttle.succeeded("10.0.0.4", "b@example.com")
    assert throttle.retry_after_s("10.0.0.4", "b@example.com") == 0
