"""Media checks with RTP sent by the test itself: strict RTP (only the negotiated peer is heard),
and hold/unhold without losing the session."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from voiceagent.audio.g711 import ulaw_encode
from voiceagent.bridges.sip.leg import SipCallLeg
from voiceagent.config import Settings, load_settings

from .sip_support import SIPP, free_udp_port, run_sipp, scenario, sip_service, wait_for

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp is not installed")


@pytest.fixture
def settings() -> Settings:
    return load_settings()


def _rtp_packets(ssrc: int, count: int, amplitude: int, *, seq0: int) -> list[bytes]:
    t = np.arange(160 * count) / 8000
    payload = ulaw_encode((amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.int16)).tobytes()
    return [
        struct.pack("!BBHII", 0x80, 0, seq0 + n, (seq0 + n) * 160, ssrc) + payload[n * 160 : (n + 1) * 160]
        for n in range(count)
    ]


async def _send(sock: socket.socket, target: tuple[str, int], packets: list[bytes]) -> None:
    for packet in packets:
        sock.sendto(packet, target)
        await asyncio.sleep(0.02)


def _frames(leg: SipCallLeg, since_sample: int, low: int, high: int) -> int:
    """Inbound frames since ``since_sample`` whose peak lies in [low, high)."""
    assert leg.session is not None
    inbound = leg.session.recorder.inbound()[since_sample:]
    peaks = np.abs(inbound[: inbound.size // 320 * 320].reshape(-1, 320).astype(np.int32)).max(axis=1)
    return int(((peaks >= low) & (peaks < high)).sum())


async def test_rtp_from_a_stranger_is_not_played_but_the_peer_is(settings: Settings, tmp_path: Path) -> None:
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    stranger.bind(("127.0.0.1", 0))
    legs: list[SipCallLeg] = []
    try:
        async with sip_service(settings, legs=legs) as service:
            peer_port = peer.getsockname()[1]
            sc = scenario(tmp_path, "uac_own_media.xml", did="300", rtp_port=peer_port, talk_ms=4000)
            call = asyncio.ensure_future(
                run_sipp(f"127.0.0.1:{service.options.sip_port}", sc, port=free_udp_port())
            )
            assert await wait_for(lambda: bool(legs) and legs[0].started, 5)
            leg = legs[0]
            local = await service.media_address(leg.call_id)
            port = local.rsplit(":", 1)[1]
            ours = ("127.0.0.1", int(port))
            assert leg.session is not None
            # The peer talks quietly for 3 s; in the middle a stranger blasts a loud tone for 1 s.
            talk = asyncio.ensure_future(_send(peer, ours, _rtp_packets(0x2222, 150, 1500, seq0=7000)))
            await asyncio.sleep(1.0)
            mark = leg.session.recorder.inbound().size
            await _send(stranger, ours, _rtp_packets(0x1111, 50, 12000, seq0=100))
            from_stranger = _frames(leg, mark, 6000, 1 << 16)
            mark = leg.session.recorder.inbound().size
            await talk
            from_peer = _frames(leg, mark, 400, 6000)
            result = await call
            assert result.returncode == 0, result.output
    finally:
        peer.close()
        stranger.close()
    assert from_peer >= 30, (from_peer, from_stranger)
    # The kernel drops the stranger's datagrams: the socket is connected to the peer.
    assert from_stranger == 0, (from_peer, from_stranger)
    pinned = [e.data for e in leg.session.timeline.events if e.kind == "rtp_pinned"]
    assert pinned == [{"peer": f"127.0.0.1:{peer_port}", "pinned": True}]


async def test_hold_and_unhold_keep_the_call_and_its_session(settings: Settings, tmp_path: Path) -> None:
    legs: list[SipCallLeg] = []
    async with sip_service(settings, legs=legs) as service:
        sc = scenario(tmp_path, "uac_hold.xml", did="400", rtp_port=free_udp_port(), talk_ms=500)
        result = await run_sipp(f"127.0.0.1:{service.options.sip_port}", sc, port=free_udp_port())
        assert result.returncode == 0, result.output
        assert await wait_for(lambda: bool(legs) and legs[0].end_reason is not None, 5)
    leg = legs[0]
    assert leg.end_reason == "remote_hangup"
    assert leg.session is not None
    media = [
        (e.kind, e.data.get("status"))
        for e in leg.session.timeline.events
        if "hold" in e.kind or "media" in e.kind
    ]
    assert ("hold", "remote_hold") in media
    assert media[-1] == ("media_active", "active"), media  # taken back off hold
    assert leg.ticks > 50  # the media layer kept its clock through the hold
