"""Blind transfer (REFER, and the bridge when REFER is refused) and RFC 4733 DTMF, against SIPp."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from voiceagent.bridges.sip.leg import SipCallLeg
from voiceagent.config import Settings, load_settings

from .sip_support import SIPP, SippResult, free_udp_port, run_sipp, scenario, sip_service, wait_for

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp is not installed")

_DTMF_PCAP = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")


@pytest.fixture
def settings() -> Settings:
    return load_settings()


def _far_end(sc: Path, port: int) -> asyncio.Future[SippResult]:
    return asyncio.ensure_future(run_sipp(None, sc, port=port, timeout_s=20))


def _kinds(leg: SipCallLeg) -> list[str]:
    assert leg.session is not None
    return [e.kind for e in leg.session.timeline.events]


async def test_blind_transfer_by_refer_ends_our_call(settings: Settings, tmp_path: Path) -> None:
    far_port = free_udp_port()
    target = "sip:desk@127.0.0.1:5999"
    far = _far_end(scenario(tmp_path, "uas_refer_accept.xml", target=target), far_port)
    await asyncio.sleep(0.3)  # SIPp binds its port
    async with sip_service(settings) as service:
        call_id = await service.place_call(f"sip:far@127.0.0.1:{far_port}")
        leg = service.calls[call_id]
        assert await wait_for(lambda: leg.started and leg.state == "confirmed", 5)
        await service.transfer(call_id, target)
        result = await far
        assert result.returncode == 0, result.output
        assert await wait_for(lambda: leg.end_reason is not None, 5)
    assert leg.end_reason == "transferred"
    assert leg.transfer_code == 200
    assert "transfer_status" in _kinds(leg)


async def test_refused_refer_falls_back_to_a_bridged_call(settings: Settings, tmp_path: Path) -> None:
    far_port, desk_port = free_udp_port(), free_udp_port()
    target = f"sip:desk@127.0.0.1:{desk_port}"
    far = _far_end(scenario(tmp_path, "uas_refer_refuse.xml", target=target), far_port)
    desk_dir = tmp_path / "desk"
    desk_dir.mkdir()
    desk = _far_end(scenario(desk_dir, "uas_answer.xml", info_optional="true", digit="0"), desk_port)
    await asyncio.sleep(0.3)
    async with sip_service(settings) as service:
        call_id = await service.place_call(f"sip:far@127.0.0.1:{far_port}")
        leg = service.calls[call_id]
        assert await wait_for(lambda: leg.started and leg.state == "confirmed", 5)
        await service.transfer(call_id, target)
        assert await wait_for(lambda: "transfer_bridged" in _kinds(leg), 8)
        await service.hang_up(call_id)  # both legs go: the caller's and the desk's
        far_result, desk_result = await far, await desk
        assert far_result.returncode == 0, far_result.output
        assert desk_result.returncode == 0, desk_result.output
    kinds = _kinds(leg)
    assert kinds.index("transfer_bridging") < kinds.index("transfer_bridged")


@pytest.mark.skipif(not _DTMF_PCAP.exists(), reason="SIPp's DTMF pcaps are not installed")
async def test_rfc4733_digits_from_the_caller_reach_the_call(settings: Settings, tmp_path: Path) -> None:
    legs: list[SipCallLeg] = []
    async with sip_service(settings, legs=legs) as service:
        sc = scenario(tmp_path, "uac_rfc4733.xml", did="200", pcap=str(_DTMF_PCAP), after_ms=1200)
        result = await run_sipp(f"127.0.0.1:{service.options.sip_port}", sc, port=free_udp_port())
        assert result.returncode == 0, result.output
        assert await wait_for(lambda: bool(legs) and legs[0].end_reason is not None, 5)
    assert legs[0].digits == ["1"]
    assert legs[0].session is not None
    dtmf = [e.data for e in legs[0].session.timeline.events if e.kind == "dtmf"]
    assert dtmf == [{"digit": "1", "method": "rfc4733"}]
