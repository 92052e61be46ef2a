"""The pjsua2 media process against SIPp: answering, refusing, DTMF, placing calls, hang-ups, RTP timeout."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path

import pytest

from voiceagent.bridges.sip.leg import SipCallLeg
from voiceagent.bridges.sip.trunks import SipTrunk
from voiceagent.calllog import open_call_log
from voiceagent.config import Settings, load_settings
from voiceagent.errors import SipError
from voiceagent.store import create_engine, repository, session_factory
from voiceagent.testing import ScriptedEngine, ScriptedReply

from .sip_support import (
    SIPP,
    SippResult,
    free_udp_port,
    run_sipp,
    scenario,
    sip_service,
    tone,
    ulaw_file,
    wait_for,
)

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp is not installed")


@pytest.fixture
def settings() -> Settings:
    return load_settings()


def _events(leg: SipCallLeg) -> list[tuple[str, dict[str, object]]]:
    assert leg.session is not None
    return [(e.kind, e.data) for e in leg.session.timeline.events]


async def test_work_handed_to_the_pjsip_thread_ends_its_poll(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pjsip thread polls for long stretches when idle; submitting work wakes it (a SIP
    keep-alive to its own port, which pjsip must ignore) instead of waiting for the poll to end."""
    from voiceagent.bridges.sip import endpoint

    monkeypatch.setattr(endpoint, "_POLL_MS", 30_000)
    async with sip_service(settings) as service:
        await asyncio.sleep(0.5)  # the thread is inside a 30 s poll now
        for _ in range(3):
            name = await asyncio.wait_for(service.thread.run(lambda: threading.current_thread().name), 5)
            assert name.startswith("pjsip-")
        assert service.calls == {}  # the keep-alives made no call, and nothing broke


async def test_calls_one_after_another_reuse_one_audio_port(settings: Settings, tmp_path: Path) -> None:
    """A finished call's audio port serves the next call: destroying one (pjsua2's destructor frees
    it while the 2.15.1 conference bridge removes it later, on its clock thread) killed media
    processes at call ends. Each call still hears its own caller."""
    audio = ulaw_file(tmp_path)
    legs: list[SipCallLeg] = []
    async with sip_service(settings, legs=legs) as service:
        for n in range(3):
            values = {"did": f"555{n}", "audio": audio.name, "talk_ms": 2000, "after_ms": 500, "digit": "1"}
            sc = scenario(tmp_path, "uac_speech.xml", **values)
            result = await run_sipp(
                f"127.0.0.1:{service.options.sip_port}", sc, port=free_udp_port(), timeout_s=20
            )
            assert result.returncode == 0, result.output
            assert await wait_for(lambda n=n: len(legs) > n and legs[n].end_reason is not None, 5)
            assert await wait_for(lambda: service.stats()["audio_ports"]["free"] == 1, 5)
        assert service.stats()["audio_ports"] == {"created": 1, "free": 1}
    assert [leg.end_reason for leg in legs] == ["remote_hangup"] * 3
    assert all(leg.inbound_frames > 50 for leg in legs)  # each call's caller reached its media layer


async def test_inbound_call_is_answered_hears_the_caller_and_gets_dtmf(
    settings: Settings, tmp_path: Path
) -> None:
    audio = ulaw_file(tmp_path)
    legs: list[SipCallLeg] = []
    async with sip_service(settings, legs=legs) as service:
        sc = scenario(
            tmp_path,
            "uac_speech.xml",
            did="5551234",
            audio=audio.name,
            talk_ms=4500,
            after_ms=1500,
            digit="5",
        )
        result = await run_sipp(
            f"127.0.0.1:{service.options.sip_port}", sc, port=free_udp_port(), timeout_s=20
        )
        assert result.returncode == 0, result.output
        assert await wait_for(lambda: bool(legs) and legs[0].end_reason is not None, 5)
    leg = legs[0]
    kinds = [kind for kind, _ in _events(leg)]
    assert leg.end_reason == "remote_hangup"
    assert leg.inbound_frames > 200  # about 6 s of caller audio reached the media layer
    assert leg.digits == ["5"]
    assert ("dtmf", {"digit": "5", "method": "info"}) in _events(leg)
    # The key reached the agent as a turn of its own, and the agent answered it.
    assert leg.session is not None
    keyed = [t for t in leg.session.turns if t.user_text == "[pressed 5]"]
    assert len(keyed) == 1
    assert keyed[0].response_id is not None
    # The caller's question was heard as a turn and the agent's (tone) answer was played to the line.
    assert "speech_started" in kinds
    assert leg.session is not None
    assert leg.session.turns
    assert leg.session.turns[0].first_audio_ms is not None
    assert any(kind == "sip_state" and data.get("state") == "disconnected" for kind, data in _events(leg))


def _spawn_sipp(target: str | None, sc: Path, port: int | None = None) -> asyncio.Future[SippResult]:
    """SIPp running in the background while the test drives the other side."""
    return asyncio.ensure_future(run_sipp(target, sc, port=port or free_udp_port(), timeout_s=20))


async def test_a_call_past_the_limit_gets_503_with_a_reason(settings: Settings, tmp_path: Path) -> None:
    audio = ulaw_file(tmp_path)
    async with sip_service(settings, max_calls=1) as service:
        target = f"127.0.0.1:{service.options.sip_port}"
        busy = _spawn_sipp(
            target,
            scenario(
                tmp_path, "uac_speech.xml", did="100", audio=audio.name, talk_ms=2500, after_ms=0, digit="1"
            ),
        )
        assert await wait_for(lambda: len(service.calls) == 1, 5)
        refused = await run_sipp(
            target, scenario(tmp_path, "uac_refused.xml", code=503), port=free_udp_port()
        )
        assert refused.returncode == 0, refused.output
        assert (await busy).returncode == 0
        assert service.refused == {503: 1}


async def test_a_source_outside_the_allowed_networks_gets_403(settings: Settings, tmp_path: Path) -> None:
    async with sip_service(settings, allowed=("10.99.0.0/16",)) as service:
        target = f"127.0.0.1:{service.options.sip_port}"
        refused = await run_sipp(
            target, scenario(tmp_path, "uac_refused.xml", code=403), port=free_udp_port()
        )
        assert refused.returncode == 0, refused.output
        assert service.refused == {403: 1}
        assert not service.calls


async def test_outbound_call_sends_info_dtmf_and_the_agent_hangs_up(
    settings: Settings, tmp_path: Path
) -> None:
    far_port = free_udp_port()
    far = asyncio.ensure_future(
        run_sipp(None, scenario(tmp_path, "uas_answer.xml", info_optional="false", digit="7"), port=far_port)
    )
    await asyncio.sleep(0.3)  # SIPp binds its port
    async with sip_service(settings) as service:
        call_id = await service.place_call(f"sip:far@127.0.0.1:{far_port}")
        leg = service.calls[call_id]
        assert await wait_for(lambda: leg.started and leg.state == "confirmed", 5)
        await service.send_dtmf(call_id, "7", method="info")
        await asyncio.sleep(0.5)
        await service.hang_up(call_id)
        result = await far
        assert result.returncode == 0, result.output
        assert await wait_for(lambda: call_id not in service.calls, 5)
    assert leg.end_reason == "hangup"
    states = [d.get("state") for k, d in _events(leg) if k == "sip_state"]
    assert "confirmed" in states


async def test_outbound_call_to_nobody_fails_cleanly(settings: Settings) -> None:
    async with sip_service(settings) as service:
        with pytest.raises(SipError):
            await service.place_call("tel:123")
        with pytest.raises(SipError):
            await service.place_call("123", trunk="missing")
        with pytest.raises(SipError):
            await service.send_dtmf("call_nope", "1")
        # pjsua refuses this one after the call objects exist; the traceback keeps them alive past
        # libDestroy, which must not abort the process (they are disowned at teardown).
        with pytest.raises(SipError, match="PJSIP_EUNSUPTRANSPORT"):
            await service.place_call("sip:x@127.0.0.1:5999;transport=tls")
        assert not service.calls


async def test_rtp_timeout_hangs_up_a_silent_call(settings: Settings, tmp_path: Path) -> None:
    far_port = free_udp_port()
    far = asyncio.ensure_future(
        run_sipp(None, scenario(tmp_path, "uas_answer.xml", info_optional="true", digit="0"), port=far_port)
    )
    await asyncio.sleep(0.3)
    async with sip_service(settings, rtp_timeout_s=2.0) as service:
        call_id = await service.place_call(f"sip:far@127.0.0.1:{far_port}")
        leg = service.calls[call_id]
        # SIPp's uas sends no RTP: after 2 s without packets we send BYE ourselves.
        result = await far
        assert result.returncode == 0, result.output
        assert await wait_for(lambda: leg.end_reason is not None, 5)
    assert leg.end_reason is not None


async def test_a_called_number_is_routed_to_its_agent(settings: Settings, tmp_path: Path) -> None:
    audio = ulaw_file(tmp_path)
    sales = ScriptedEngine([ScriptedReply("sales here", tone(0.5, 880))], user_text="(caller)")
    trunk = SipTrunk(name="carrier", host="127.0.0.1", numbers={"+4930100": "sales"})
    legs: list[SipCallLeg] = []
    async with sip_service(settings, legs=legs, trunks=[trunk], agent_engines={"sales": sales}) as service:
        target = f"127.0.0.1:{service.options.sip_port}"
        for did in ("+4930100", "+4930999"):
            sc = scenario(
                tmp_path, "uac_speech.xml", did=did, audio=audio.name, talk_ms=4500, after_ms=0, digit="1"
            )
            result = await run_sipp(target, sc, port=free_udp_port(), timeout_s=20)
            assert result.returncode == 0, result.output
        assert await wait_for(lambda: len(legs) == 2 and all(leg.end_reason for leg in legs), 5)
    assert [leg.details.agent for leg in legs] == ["sales", None]
    replies = [leg.session.turns[0].reply_text if leg.session and leg.session.turns else "" for leg in legs]
    assert replies == ["sales here", "a tone"]


async def test_options_pings_are_answered(settings: Settings) -> None:
    """The edge's dispatcher probes media processes with OPTIONS."""
    async with sip_service(settings) as service:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            port = sock.getsockname()[1]
            ping = (
                f"OPTIONS sip:agent@127.0.0.1:{service.options.sip_port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-ping-1;rport\r\n"
                f"From: <sip:edge@127.0.0.1:{port}>;tag=ping1\r\n"
                f"To: <sip:agent@127.0.0.1:{service.options.sip_port}>\r\n"
                "Call-ID: ping-1@127.0.0.1\r\nCSeq: 1 OPTIONS\r\n"
                "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            )
            await loop.sock_sendto(sock, ping.encode(), ("127.0.0.1", service.options.sip_port))
            reply = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
    assert reply.startswith(b"SIP/2.0 200"), reply[:80]


async def test_sip_calls_are_written_to_the_call_log(tmp_path: Path) -> None:
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}", spool_dir=tmp_path / "spool"
    )
    audio = ulaw_file(tmp_path)
    legs: list[SipCallLeg] = []
    async with open_call_log(settings) as writer:
        assert writer is not None
        async with sip_service(settings, legs=legs, call_log=writer) as service:
            sc = scenario(
                tmp_path,
                "uac_speech.xml",
                did="+4930777",
                audio=audio.name,
                talk_ms=3000,
                after_ms=300,
                digit="9",
            )
            result = await run_sipp(
                f"127.0.0.1:{service.options.sip_port}", sc, port=free_udp_port(), timeout_s=20
            )
            assert result.returncode == 0, result.output
            assert await wait_for(lambda: bool(legs) and legs[0].end_reason is not None, 5)
            await asyncio.sleep(0.2)  # the closer task writes the end
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as s:
            call = await repository.get_call(s, call_id=legs[0].call_id)
    finally:
        await engine.dispose()
    assert call is not None
    assert (call.channel, call.direction, call.to_number, call.from_number) == (
        "sip",
        "inbound",
        "+4930777",
        "caller",
    )
    assert call.end_reason == "remote_hangup"
    kinds = [e.kind for e in call.events]
    assert "sip_state" in kinds
    assert {"kind": "dtmf", "digit": "9"} in [
        {"kind": e.kind, "digit": e.data.get("digit")} for e in call.events
    ]
    assert kinds[-1] == "call_ended"


async def test_a_finished_calls_object_freed_late_leaves_the_next_call_in_its_slot_alone(
    settings: Settings, tmp_path: Path
) -> None:
    """pjsua reuses call slots (round robin over 4), and pjsua2's Call destructor hangs up "its"
    call by slot number and clears that slot's user data. A finished call's object freed after a
    new call took its slot (a reference held a while: a traceback, a slow close) must not end or
    orphan the new call."""
    audio = ulaw_file(tmp_path)
    legs: list[SipCallLeg] = []
    kept: list[object] = []
    async with sip_service(settings, legs=legs) as service:
        target = f"127.0.0.1:{service.options.sip_port}"
        for n in range(4):  # slots 0, 1, 2, 3, one call after another
            values = {"did": f"60{n}", "audio": audio.name, "talk_ms": 600, "after_ms": 0, "digit": "1"}
            call = _spawn_sipp(target, scenario(tmp_path, "uac_speech.xml", **values))
            assert await wait_for(lambda n=n: len(legs) > n, 5)
            if n == 0:
                kept.append(legs[0].pj_call)  # outlives its call
            assert (await call).returncode == 0
            assert await wait_for(lambda n=n: legs[n].end_reason is not None, 5)
        values = {"did": "604", "audio": audio.name, "talk_ms": 3000, "after_ms": 500, "digit": "1"}
        fifth = _spawn_sipp(target, scenario(tmp_path, "uac_speech.xml", **values))  # slot 0 again
        assert await wait_for(lambda: len(legs) == 5 and legs[4].state == "confirmed", 5)
        await service.thread.run(kept.clear)  # the old call's object goes now, on the pjsip thread
        result = await fifth
        assert result.returncode == 0, result.output
        assert await wait_for(lambda: legs[4].end_reason is not None, 5)
    assert legs[4].end_reason == "remote_hangup"  # the caller hung up, not us
    assert legs[4].inbound_frames > 100
