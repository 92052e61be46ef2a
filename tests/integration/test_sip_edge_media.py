"""The edge in front of real pjsua2 media processes (``voiceagent sip-media --engine tone``).

The PROTOS cases whose SDP aborts a bare pjsua2 process (3631-3714), the RFC 4475 torture messages
and the whole PROTOS suite (not yet reliably, see its marker) go to the edge; both media processes
must still be running and answer a SIPp call through the edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import re
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voiceagent.bridges.sip.edge import EdgeConfig, SipEdge

from .sip_edge_support import (
    SUITES,
    blast,
    free_port,
    protos_cases,
    rfc4475_messages,
    run_uac,
    write_scenarios,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("pjsua2") is None
        or shutil.which("kamailio") is None
        or shutil.which("sipp") is None
        or not SUITES.exists(),
        reason="needs pjsua2, kamailio, sipp and the PROTOS suite",
    ),
]


@contextlib.asynccontextmanager
async def _media_process(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    port = free_port()
    rtp = free_port() & ~1
    log_path = tmp_path / f"media-{port}.log"
    with log_path.open("wb") as log:  # pjsip logs a lot to stdout: a file never fills up like a pipe
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "voiceagent", "sip-media", "--sip-port", str(port),
            "--rtp-port-range", f"{rtp}-{rtp + 15}", "--max-calls", "3", "--engine", "tone", "--no-log",
            "--allow", "127.0.0.1", stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
    try:
        for _ in range(600):
            if b"sip-media ready" in log_path.read_bytes() or process.returncode is not None:
                break
            await asyncio.sleep(0.1)
        assert b"sip-media ready" in log_path.read_bytes(), log_path.read_bytes()[-2000:]
        yield process, port
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _through_edge_to_pjsua2(tmp_path: Path, *, full_suite: bool = False, torture: bool = False) -> None:
    _, uac_scenario = write_scenarios(tmp_path, pause_ms=500)
    async with _media_process(tmp_path) as (first, port1), _media_process(tmp_path) as (second, port2):
        config = EdgeConfig(
            port=free_port(),
            media=(f"127.0.0.1:{port1}", f"127.0.0.1:{port2}"),
            pike_requests=1_000_000,
            max_calls=6,  # what from_settings derives: 2 processes x 3 calls
        )
        async with SipEdge(config, health_interval_s=1.0) as edge:
            cases = protos_cases()
            hostile = [case for case in cases if 3631 <= int(case[0]) <= 3714]
            assert len(hostile) == 84
            sdp_run = await asyncio.to_thread(blast, hostile, edge.config.port, rate_per_s=200)
            # Every one refused by the edge itself: 488 (SDP), 400 (NUL byte), 413/513 (size).
            assert len(sdp_run.replies) == 84
            assert set(sdp_run.replies.values()) <= {400, 413, 488, 513}, sdp_run.replies
            if torture:
                # Unanswered INVITEs among them hold call slots until their timers run out (~32 s),
                # so this run checks survival only, not a call afterwards.
                run = await asyncio.to_thread(blast, rfc4475_messages(), edge.config.port, rate_per_s=100)
                assert run.sent == 50
                await asyncio.sleep(2.0)
                assert first.returncode is None, "media process 1 died of a torture message"
                assert second.returncode is None, "media process 2 died of a torture message"
                return
            if full_suite:
                run = await asyncio.to_thread(blast, cases, edge.config.port, rate_per_s=300)
                print(f"\nPROTOS via edge to pjsua2: sent {run.sent}, replied {len(run.replies)}")
            await asyncio.sleep(1.5)
            assert first.returncode is None, "media process 1 died"
            assert second.returncode is None, "media process 2 died"
            assert edge.restarts == 0
            result = await asyncio.to_thread(run_uac, tmp_path, uac_scenario, edge.config.port, calls=2)
            assert (result.successful, result.failed) == (2, 0), result.output


async def test_sdp_cases_that_abort_pjsua2_never_reach_it(tmp_path: Path) -> None:
    await _through_edge_to_pjsua2(tmp_path)


async def test_rfc4475_torture_through_the_edge_leaves_pjsua2_running(tmp_path: Path) -> None:
    await _through_edge_to_pjsua2(tmp_path, torture=True)


async def test_whole_protos_suite_through_the_edge_leaves_pjsua2_running(tmp_path: Path) -> None:
    """All 4527 PROTOS cases through the edge, then a call through it is answered. This failed
    about one run in four while a finished call's object, freed late, hung up (603) or orphaned
    the call that had taken its pjsua slot since (PjCall._forget_slot)."""
    await _through_edge_to_pjsua2(tmp_path, full_suite=True)


async def test_cancel_that_overtakes_its_invite_ends_the_call(tmp_path: Path) -> None:
    """INVITE and CANCEL back to back (as every PROTOS case sends them), more times than there are
    call slots: the CANCEL may reach a Kamailio worker before the INVITE's transaction exists, and
    used to be dropped, so the media process answered a call nobody would ACK or end. Every one must
    end in 487, leave no call counted, and a real call must be answered right after."""
    _, uac_scenario = write_scenarios(tmp_path, pause_ms=500)
    valid_case = dict(protos_cases())["0000000"]  # the reference INVITE and its CANCEL
    async with _media_process(tmp_path) as (first, port1), _media_process(tmp_path) as (second, port2):
        config = EdgeConfig(port=free_port(), media=(f"127.0.0.1:{port1}", f"127.0.0.1:{port2}"), max_calls=6)
        async with SipEdge(config, health_interval_s=1.0) as edge:
            pairs = [(f"{9_000_000 + n}", valid_case) for n in range(12)]  # 2 x the edge's limit
            run = await asyncio.to_thread(blast, pairs, edge.config.port, rate_per_s=20)
            assert run.replies == {name: 487 for name, _ in pairs}, run.replies
            live = await edge.rpc("htable.get", "calls", "live")
            assert re.search(r"value:\s*0\b", live), live
            result = await asyncio.to_thread(run_uac, tmp_path, uac_scenario, edge.config.port, calls=2)
            assert (result.successful, result.failed) == (2, 0), result.output
            assert first.returncode is None
            assert second.returncode is None
