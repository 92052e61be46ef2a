"""Helpers for the SIP media tests: free ports, SIPp runs from templated scenarios, a started service."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voiceagent.audio import float_to_pcm16, read_audio
from voiceagent.audio.g711 import ulaw_encode
from voiceagent.bridges.sip.group import SipEndpointGroup
from voiceagent.bridges.sip.options import SipMediaOptions, parse_networks
from voiceagent.bridges.sip.service import SipMediaService
from voiceagent.bridges.sip.trunks import SipTrunk
from voiceagent.config import Settings
from voiceagent.testing import ScriptedEngine, ScriptedReply

from .ports import free_port_block

SCENARIOS = Path(__file__).parent / "sip_scenarios"
AUDIO = Path(__file__).resolve().parents[2] / "examples" / "audio"
SIPP = shutil.which("sipp")


def free_udp_port() -> int:
    """A port free for UDP and TCP on 127.0.0.1 (SIP listens on both)."""
    return free_port_block(tcp=True)


def free_rtp_range(span: int = 40) -> tuple[int, int]:
    """An even-aligned range of ``span`` UDP ports that are free now."""
    base = free_port_block(span, even=True)
    return base, base + span - 1


def ulaw_file(tmp: Path, name: str = "opening-hours-8k.wav") -> Path:
    """A shipped 8 kHz caller question as raw mu-law (what SIPp's rtp_stream plays)."""
    clip = read_audio(AUDIO / name)
    assert clip.sample_rate == 8000, clip.sample_rate
    path = tmp / (Path(name).stem + ".ulaw")
    path.write_bytes(ulaw_encode(float_to_pcm16(clip.samples)).tobytes())
    return path


def scenario(tmp: Path, name: str, **values: Any) -> Path:
    """Scenario ``name`` from sip_scenarios/ with its %(placeholders)s filled in."""
    text = (SCENARIOS / name).read_text(encoding="utf-8") % values
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class SippResult:
    returncode: int
    output: str


async def run_sipp(
    target: str | None,
    scenario_path: Path,
    *,
    port: int,
    timeout_s: float = 30.0,
    calls: int = 1,
    extra: tuple[str, ...] = (),
) -> SippResult:
    """Run SIPp to completion (``-m calls``); returncode 0 means every call passed."""
    assert SIPP is not None
    media_port = free_port_block(4, even=True)  # SIPp binds RTP and video, each with RTCP
    args = [
        SIPP, "-sf", str(scenario_path), "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1",
        "-mp", str(media_port), "-m", str(calls), "-l", str(calls), "-timeout", f"{int(timeout_s)}s",
        "-timeout_error", "-nostdin", "-trace_err", "-error_file", str(scenario_path.with_suffix(".err")),
        *extra,
    ]  # fmt: skip
    if target is not None:
        args.append(target)
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=scenario_path.parent
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s + 10)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    err_file = scenario_path.with_suffix(".err")
    errors = err_file.read_text(errors="replace") if err_file.exists() else ""
    return SippResult(
        proc.returncode if proc.returncode is not None else -1,
        out.decode(errors="replace")[-3000:] + errors[-3000:],
    )


def tone(seconds: float = 1.0, hz: float = 440.0) -> np.ndarray[Any, np.dtype[np.int16]]:
    t = np.arange(int(16000 * seconds)) / 16000
    return (6000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


@contextlib.asynccontextmanager
async def sip_service(
    settings: Settings,
    *,
    max_calls: int = 3,
    allowed: tuple[str, ...] = ("127.0.0.1",),
    rtp_timeout_s: float = 30.0,
    trunks: list[SipTrunk] | None = None,
    engine: Any = None,
    call_log: Any = None,
    legs: list[Any] | None = None,
    tls: tuple[Path, Path] | None = None,
    agent_engines: dict[str, Any] | None = None,
    frame_ms: int = 20,
) -> AsyncIterator[SipMediaService]:
    """A started in-process media service on free ports, answering with a tone (ScriptedEngine)."""
    options = SipMediaOptions(
        sip_port=free_udp_port(),
        rtp_ports=free_rtp_range(),
        max_calls=max_calls,
        allowed=parse_networks(list(allowed)),
        rtp_timeout_s=rtp_timeout_s,
        frame_ms=frame_ms,
        tls_port=free_udp_port() if tls else None,
        tls_cert=str(tls[0]) if tls else None,
        tls_key=str(tls[1]) if tls else None,
    )
    speech = engine or ScriptedEngine([ScriptedReply("a tone", tone())], user_text="(caller)")
    service = SipMediaService(
        speech,
        settings,
        options,
        trunks=trunks,
        call_log=call_log,
        on_new_call=None if legs is None else legs.append,
        agent_engines=agent_engines,
    )
    await service.start()
    try:
        yield service
    finally:
        await service.aclose()


@contextlib.asynccontextmanager
async def sip_group(
    settings: Settings,
    endpoints: int,
    *,
    max_calls: int = 3,
    legs: list[Any] | None = None,
    trunks: list[SipTrunk] | None = None,
) -> AsyncIterator[SipEndpointGroup]:
    """``endpoints`` started in-process SIP endpoints (one media process's worth) on free
    consecutive SIP ports, answering with a tone."""
    options = SipMediaOptions(
        sip_port=free_port_block(endpoints, tcp=True),
        rtp_ports=free_rtp_range(40 * endpoints),
        max_calls=max_calls,
        allowed=parse_networks(["127.0.0.1"]),
    )
    speech = ScriptedEngine([ScriptedReply("a tone", tone())], user_text="(caller)")
    group = SipEndpointGroup(
        speech,
        settings,
        options,
        endpoints=endpoints,
        trunks=trunks,
        on_new_call=None if legs is None else legs.append,
    )
    await group.start()
    try:
        yield group
    finally:
        await group.aclose()


async def wait_for(predicate: Any, timeout_s: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(predicate())
