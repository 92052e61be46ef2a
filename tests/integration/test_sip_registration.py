"""A trunk that registers with digest auth, against a SIPp registrar."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from voiceagent.bridges.sip.trunks import SipTrunk
from voiceagent.config import load_settings

from .sip_support import SIPP, free_udp_port, run_sipp, scenario, sip_service, wait_for

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp is not installed")


def _trunk(port: int, password: str) -> SipTrunk:
    return SipTrunk(
        name="carrier",
        host=f"127.0.0.1:{port}",
        username="alice",
        password=password,
        registers=True,
        retry_s=60,
    )


async def test_trunk_registers_with_digest_auth_and_unregisters_on_close(tmp_path: Path) -> None:
    port = free_udp_port()
    registrar = asyncio.ensure_future(
        run_sipp(None, scenario(tmp_path, "uas_registrar.xml", user="alice", password="s3cret"), port=port)
    )
    await asyncio.sleep(0.3)
    async with sip_service(load_settings(), trunks=[_trunk(port, "s3cret")]) as service:
        assert await wait_for(lambda: service.registrations["carrier"].registered, 8)
        status = service.registrations["carrier"]
        assert status.code == 200
        assert status.expires_s > 0
        assert service.stats()["registrations"]["carrier"]["registered"] is True
    result = await registrar
    assert result.returncode == 0, result.output


async def test_a_wrong_password_leaves_the_trunk_unregistered(tmp_path: Path) -> None:
    port = free_udp_port()
    registrar = asyncio.ensure_future(
        run_sipp(None, scenario(tmp_path, "uas_registrar.xml", user="alice", password="s3cret"), port=port)
    )
    await asyncio.sleep(0.3)
    async with sip_service(load_settings(), trunks=[_trunk(port, "wrong")]) as service:
        assert await wait_for(lambda: service.registrations["carrier"].code == 403, 8)
        status = service.registrations["carrier"]
        assert not status.registered
        assert status.failures >= 1
    await registrar
