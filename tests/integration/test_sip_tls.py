"""SIP over TLS: a media process with a TLS transport answers a call placed over TLS by another."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest

from voiceagent.bridges.sip.leg import SipCallLeg
from voiceagent.config import load_settings

from .sip_support import free_rtp_range, free_udp_port, sip_service, wait_for

OPENSSL = shutil.which("openssl")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")]


async def _self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    proc = await asyncio.create_subprocess_exec(
        str(OPENSSL), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
        "-days", "1", "-subj", "/CN=127.0.0.1",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await proc.wait() == 0
    return cert, key


async def test_a_call_over_tls_is_answered(tmp_path: Path) -> None:
    cert, key = await _self_signed(tmp_path)
    sip_port, tls_port = free_udp_port(), free_udp_port()
    first, last = free_rtp_range(20)
    env = dict(
        os.environ,
        VOICEAGENT_SIP_TLS_PORT=str(tls_port),
        VOICEAGENT_SIP_TLS_CERT=str(cert),
        VOICEAGENT_SIP_TLS_KEY=str(key),
    )
    callee = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voiceagent", "sip-media", "--sip-port", str(sip_port),
        "--rtp-port-range", f"{first}-{last}", "--engine", "tone", "--no-log",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert callee.stdout is not None
        ready = b""
        while b"sip-media ready" not in ready:
            line = await asyncio.wait_for(callee.stdout.readline(), 30)
            assert line, "the media process exited"
            ready = line
        legs: list[SipCallLeg] = []
        async with sip_service(load_settings(), legs=legs, tls=(cert, key)) as caller:
            call_id = await caller.place_call(f"sip:agent@127.0.0.1:{tls_port};transport=tls")
            leg = caller.calls[call_id]
            assert await wait_for(lambda: leg.state == "confirmed", 10), leg.state
            assert await wait_for(lambda: leg.inbound_frames > 25, 5)  # media flows (RTP, not TLS)
            await caller.hang_up(call_id)
            assert await wait_for(lambda: leg.end_reason is not None, 5)
    finally:
        callee.terminate()
        await callee.wait()
    states = (
        [e.data.get("state") for e in leg.session.timeline.events if e.kind == "sip_state"]
        if leg.session
        else []
    )
    assert "confirmed" in states
