"""Several SIP endpoints in one media process (a pjsua2 copy each, binding.py) against SIPp:
more calls than one pjsua2 holds, each heard and answered, ticked together on one loop."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from voiceagent.bridges.sip.group import SipEndpointGroup
from voiceagent.bridges.sip.leg import SipCallLeg
from voiceagent.bridges.sip.options import SipMediaOptions, parse_networks
from voiceagent.config import Settings, load_settings
from voiceagent.errors import SipError
from voiceagent.testing import ScriptedEngine, ScriptedReply

from .ports import free_port_block
from .sip_support import (
    SIPP,
    free_rtp_range,
    free_udp_port,
    run_sipp,
    scenario,
    sip_group,
    tone,
    ulaw_file,
    wait_for,
)

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp is not installed")


@pytest.fixture
def settings() -> Settings:
    return load_settings()


async def test_two_endpoints_in_one_process_answer_six_calls_at_once(
    settings: Settings, tmp_path: Path
) -> None:
    """One pjsua2 holds 4 calls; two endpoints in one process take 3 each, at the same time. Every
    caller is heard and answered (the agent's first audio went out), and all six calls are
    ticked by the process's one paced loop timer, with VAD windows of calls on different
    endpoints scored in shared model calls."""
    audio = ulaw_file(tmp_path)
    legs: list[SipCallLeg] = []
    async with sip_group(settings, 2, legs=legs) as group:
        assert group.stats()["endpoints"] == 2
        runs = []
        for n, port in enumerate(group.sip_ports):
            values = {"did": f"70{n}", "audio": audio.name, "talk_ms": 5000, "after_ms": 1000, "digit": "1"}
            work = tmp_path / f"endpoint{n}"  # a scenario file each: SIPp runs side by side
            work.mkdir()
            (work / audio.name).write_bytes(audio.read_bytes())
            sc = scenario(work, "uac_speech.xml", **values)
            runs.append(
                asyncio.ensure_future(
                    run_sipp(f"127.0.0.1:{port}", sc, port=free_udp_port(), calls=3, timeout_s=30)
                )
            )
        assert await wait_for(lambda: group.stats()["live_calls"] == 6, 10), group.stats()
        busiest = group.stats()
        results = await asyncio.gather(*runs)
        assert all(r.returncode == 0 for r in results), [r.output for r in results]
        assert await wait_for(lambda: len(legs) == 6 and all(leg.end_reason for leg in legs), 10)
        stats = group.stats()
    assert busiest["max_calls"] == 6
    assert [len(s.calls) for s in group.services] == [0, 0]
    assert [leg.end_reason for leg in legs] == ["remote_hangup"] * 6
    for leg in legs:
        assert leg.inbound_frames > 150  # about 5 s of each caller reached its media layer
        assert leg.session is not None
        assert leg.session.turns
        assert leg.session.turns[0].first_audio_ms is not None
    assert stats["audio_ports"]["created"] == 6
    assert stats["vad_windows"]["batched"] > 0
    # One paced timer for the process: one loop run per 20 ms for all six calls (ticks / 6; 314
    # runs for 1803 call ticks when written). Woken by each port, the two endpoints' unrelated
    # clocks would make it about one run per endpoint tick (ticks / 3).
    ticks = sum(leg.ticks for leg in legs)
    assert stats["loop_runs"] < ticks / 4, (stats["loop_runs"], ticks)


async def test_an_outbound_call_goes_to_the_endpoint_with_free_slots(
    settings: Settings, tmp_path: Path
) -> None:
    """place_call picks the least busy endpoint: with one call on the first, the second (a pjsua2
    copy) places it, and DTMF and the hang-up reach that call through the group."""
    audio = ulaw_file(tmp_path)
    far_port = free_udp_port()
    far = asyncio.ensure_future(
        run_sipp(None, scenario(tmp_path, "uas_answer.xml", info_optional="false", digit="7"), port=far_port)
    )
    await asyncio.sleep(0.3)  # SIPp binds its port
    async with sip_group(settings, 2) as group:
        values = {"did": "701", "audio": audio.name, "talk_ms": 3000, "after_ms": 0, "digit": "1"}
        inbound = asyncio.ensure_future(
            run_sipp(
                f"127.0.0.1:{group.sip_ports[0]}",
                scenario(tmp_path, "uac_speech.xml", **values),
                port=free_udp_port(),
                timeout_s=20,
            )
        )
        assert await wait_for(lambda: len(group.services[0].calls) == 1, 5)
        call_id = await group.place_call(f"sip:far@127.0.0.1:{far_port}")
        assert call_id in group.services[1].calls
        leg = group.calls[call_id]
        assert await wait_for(lambda: leg.started and leg.state == "confirmed", 5)
        await group.send_dtmf(call_id, "7", method="info")
        await asyncio.sleep(0.5)
        await group.hang_up(call_id)
        result = await far
        assert result.returncode == 0, result.output
        assert (await inbound).returncode == 0
        assert await wait_for(lambda: not group.calls, 5)
    assert leg.end_reason == "hangup"


async def test_an_endpoint_that_cannot_start_stops_the_others_with_a_clear_error(settings: Settings) -> None:
    """The second endpoint's SIP port is taken: starting the process fails with the port named,
    and the first endpoint, already listening, is stopped again (its port is free afterwards)."""
    first = free_port_block(2, tcp=True)
    options = SipMediaOptions(
        sip_port=first, rtp_ports=free_rtp_range(80), allowed=parse_networks(["127.0.0.1"])
    )
    group = SipEndpointGroup(
        ScriptedEngine([ScriptedReply("a tone", tone())]), settings, options, endpoints=2
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", first + 1))
        with pytest.raises(SipError, match=str(first + 1)):
            await group.start()
    assert len(group.services) == 2
    assert not any(s.thread.alive for s in group.services)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", first))  # the first endpoint let its port go
