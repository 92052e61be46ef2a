"""SipMediaSupervisor: real ``voiceagent sip-media`` processes, one killed and brought back."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from voiceagent.bridges.sip.supervisor import SipMediaSupervisor, plan_processes
from voiceagent.config import load_settings

from .sip_support import SIPP, free_rtp_range, free_udp_port, run_sipp, scenario, ulaw_file, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.skipif(SIPP is None, reason="sipp is not installed")]


async def _healthy(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            return (await client.get(f"{url}/health")).status_code == 200
    except httpx.HTTPError:
        return False


async def _wait_healthy(urls: list[str], timeout_s: float = 40.0) -> bool:
    import asyncio

    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if all([await _healthy(u) for u in urls]):
            return True
        await asyncio.sleep(0.5)
    return False


async def test_supervisor_runs_two_media_processes_and_restarts_a_dead_one(tmp_path: Path) -> None:
    first, last = free_rtp_range(40)
    sip_base = free_udp_port()
    settings = load_settings(sip_port=sip_base, sip_rtp_ports=f"{first}-{last}")
    specs = plan_processes(settings, 2, control_base=free_udp_port())
    specs = [s.__class__(s.index, free_udp_port(), s.rtp_ports, free_udp_port()) for s in specs]
    env = dict(os.environ, VOICEAGENT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}")
    supervisor = SipMediaSupervisor(specs, engine="tone", env=env)
    await supervisor.start()
    try:
        assert await _wait_healthy(supervisor.control_urls)
        victim = supervisor.status()[0]["pid"]
        assert isinstance(victim, int)
        os.kill(victim, signal.SIGKILL)
        assert await wait_for(lambda: supervisor.status()[0]["restarts"] == 1, 10)
        assert await _wait_healthy(supervisor.control_urls)
        assert supervisor.status()[0]["pid"] not in (None, victim)
        # The restarted process answers calls again.
        audio = ulaw_file(tmp_path)
        sc = scenario(
            tmp_path, "uac_speech.xml", did="1", audio=audio.name, talk_ms=1000, after_ms=200, digit="2"
        )
        result = await run_sipp(supervisor.sip_targets[0], sc, port=free_udp_port())
        assert result.returncode == 0, result.output
    finally:
        await supervisor.aclose()
    assert all(s["pid"] is None for s in supervisor.status())
