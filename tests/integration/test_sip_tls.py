"""SIP over TLS: one media process calls another over TLS (both real ``voiceagent sip-media``)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from .sip_support import free_rtp_range, free_udp_port

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


@asynccontextmanager
async def _media_process(env: dict[str, str], control_port: int) -> AsyncIterator[None]:
    first, last = free_rtp_range(20)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voiceagent", "sip-media", "--sip-port", str(free_udp_port()),
        "--rtp-port-range", f"{first}-{last}", "--engine", "tone", "--no-log",
        "--control-port", str(control_port),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, "the media process exited"
            if b"sip-media ready" in line:
                break
        yield
    finally:
        proc.terminate()
        await proc.wait()


async def _get(url: str) -> dict[str, object]:
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            return dict((await client.get(url)).json())
    except httpx.HTTPError:
        return {}


async def test_a_call_over_tls_is_answered(tmp_path: Path) -> None:
    cert, key = await _self_signed(tmp_path)
    callee_tls, callee_control, caller_control = free_udp_port(), free_udp_port(), free_udp_port()
    tls_env = {"VOICEAGENT_SIP_TLS_CERT": str(cert), "VOICEAGENT_SIP_TLS_KEY": str(key)}
    callee_env = dict(os.environ, VOICEAGENT_SIP_TLS_PORT=str(callee_tls), **tls_env)
    caller_env = dict(os.environ, VOICEAGENT_SIP_TLS_PORT=str(free_udp_port()), **tls_env)
    async with _media_process(callee_env, callee_control), _media_process(caller_env, caller_control):
        caller, callee = f"http://127.0.0.1:{caller_control}", f"http://127.0.0.1:{callee_control}"
        for url in (caller, callee):
            health: dict[str, object] = {}
            for _ in range(60):
                health = await _get(f"{url}/health")
                if health:
                    break
                await asyncio.sleep(0.5)
            assert health, url
        async with httpx.AsyncClient(timeout=5.0) as client:
            placed = await client.post(
                f"{caller}/calls", json={"to": f"sip:agent@127.0.0.1:{callee_tls};transport=tls"}
            )
            assert placed.status_code == 201, placed.text
            call_id = placed.json()["call_id"]

            async def state() -> str:
                calls = (await client.get(f"{caller}/calls")).json()["calls"]
                return next((str(c["state"]) for c in calls if c["call_id"] == call_id), "gone")

            confirmed = False
            for _ in range(50):
                if await state() == "confirmed":
                    confirmed = True
                    break
                await asyncio.sleep(0.2)
            assert confirmed
            assert (await client.get(f"{callee}/health")).json()["live_calls"] == 1
            assert (await client.post(f"{caller}/calls/{call_id}/hangup")).status_code == 200
            gone = False
            for _ in range(50):
                if (await client.get(f"{callee}/health")).json()["live_calls"] == 0:
                    gone = True
                    break
                await asyncio.sleep(0.2)
            assert gone
