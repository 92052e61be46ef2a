"""SIP media path under load: N concurrent SIPp calls with audio, through the Kamailio edge.

    python benchmarks/sip.py [--calls 10,50,100] [--seconds 60] [--direct] [--frame-ms 20,40]
                             [--endpoints 1,8] [--json]

For each N it starts ceil(N/(3E)) ``voiceagent sip-media --engine tone --endpoints E`` processes
(a pjsua2 endpoint holds at most 3 calls, docs/sip.md; a process runs E of them, each on its own
SIP port) behind the SIP edge (Kamailio, as a deployment runs it: the caller is a trusted trunk),
and one SIPp places the N calls through the edge at 10 calls/s; each caller plays Debian's G.711
pcap (SIPp's uac_pcap audio) back to back for the whole call, and the edge's dispatcher spreads
the calls over the processes. ``--direct`` skips the edge: one SIPp per endpoint, each caller
streaming the shipped 8 kHz question in a loop. It prints: media processes that died and were
restarted (there should be none), failed calls, CPU per call (all media processes' CPU time /
calls / seconds, in % of one core), the edge's CPU (all Kamailio processes), the whole machine's
CPU use, and the jitter of the media layer's clock ticks (p50/p99 of |gap - tick|). The engine
answers with a tone, so the figures are the media path's (pjsua2, the audio port, VAD, echo guard,
turn-taking), not a speech model's. ``--frame-ms 20,40`` measures each N with the media processes'
``sip_frame_ms`` at 20 and at 40 ms, one after the other in the same run; ``--endpoints 1,8``
likewise compares endpoints per process. Needs sipp and kamailio; runs on Linux (reads /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from benchmarks.sip_edge import group_cpu_s
from tests.integration.ports import free_port_block
from tests.integration.sip_edge_support import run_uac, write_scenarios
from voiceagent.audio import float_to_pcm16, read_audio
from voiceagent.audio.g711 import ulaw_encode
from voiceagent.bridges.sip.edge import EdgeConfig, SipEdge
from voiceagent.bridges.sip.supervisor import MediaProcessSpec, SipMediaSupervisor

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "integration" / "sip_scenarios" / "uac_speech.xml"
PER_PROCESS = 3
RATE_PER_S = 10.0  # new calls per second through the edge (it admits 25/s per media process)
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    """A port free for UDP and TCP (SIP listens on both, control ports are TCP), not handed out
    before in this run: 34 processes start at once, and a UDP-only check once gave a port some
    loopback TCP connection held, so a media process or the edge could not bind it."""
    return free_port_block(tcp=True)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime


def _machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / _CLK_TCK, sum(values) / _CLK_TCK


async def _healthy(urls: list[str], timeout_s: float = 300.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with httpx.AsyncClient(timeout=1.0) as client:
        while True:
            ok = 0
            for url in urls:
                with contextlib.suppress(httpx.HTTPError):
                    ok += (await client.get(f"{url}/health")).status_code == 200
            if ok == len(urls):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"only {ok} of {len(urls)} media processes came up")
            await asyncio.sleep(0.5)


async def _sipp(target: str, scenario: Path, calls: int, seconds: float) -> int:
    args = [
        "sipp", "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(_free_port()), "-mi", "127.0.0.1",
        "-mp", str(_free_port() & ~1), "-m", str(calls), "-l", str(calls), "-r", str(calls),
        "-timeout", f"{int(seconds + 30)}s", "-timeout_error", "-nostdin", target,
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, cwd=scenario.parent
    )
    await proc.wait()
    return proc.returncode or 0


def _scenario(work: Path, talk_ms: int) -> Path:
    text = SCENARIO.read_text() % {
        "did": "bench",
        "audio": "caller.ulaw",
        "talk_ms": talk_ms,
        "after_ms": 0,
        "digit": "1",
    }
    scenario = work / f"uac_bench_{talk_ms}.xml"
    scenario.write_text(text.replace('rtp_stream="caller.ulaw,1,0"', 'rtp_stream="caller.ulaw,-1,0"'))
    return scenario


async def _jitter(control_urls: list[str]) -> list[dict[str, float]]:
    jitter: list[dict[str, float]] = []
    async with httpx.AsyncClient(timeout=5.0) as client:
        for url in control_urls:
            with contextlib.suppress(httpx.HTTPError):
                stats = (await client.get(f"{url}/health")).json()
                if stats.get("tick_jitter_ms"):
                    jitter.append(stats["tick_jitter_ms"])
    return jitter


async def _measure(
    calls: int, seconds: float, work: Path, *, edge: bool, frame_ms: int, endpoints: int = 1
) -> dict[str, Any]:
    processes = math.ceil(calls / (PER_PROCESS * endpoints))
    rtp_base = 30000
    span = 40 * endpoints  # 40 RTP ports an endpoint
    specs = [
        MediaProcessSpec(
            i,
            free_port_block(endpoints, tcp=True),
            (rtp_base + i * span, rtp_base + (i + 1) * span - 1),
            _free_port(),
            endpoints=endpoints,
        )
        for i in range(processes)
    ]
    env = dict(
        os.environ,
        VOICEAGENT_DATABASE_URL=f"sqlite+aiosqlite:///{work / f'calls-{calls}.db'}",
        VOICEAGENT_SIP_FRAME_MS=str(frame_ms),
    )
    supervisor = SipMediaSupervisor(specs, engine="tone", env=env, call_log=False)
    ramp_s = calls / RATE_PER_S if edge else 1.0
    edge_pid: int | None = None
    result: dict[str, Any] = {
        "calls": calls, "processes": processes, "endpoints": endpoints, "seconds": seconds, "edge": edge,
        "frame_ms": frame_ms,
    }  # fmt: skip
    await supervisor.start()
    try:
        await _healthy(supervisor.control_urls)
        pids = [int(s["pid"]) for s in supervisor.status() if isinstance(s["pid"], int)]
        # Every call talks for the ramp, the measured window and a margin: all N are up meanwhile.
        talk_ms = int((ramp_s + seconds + 4.0) * 1000)
        if edge:
            # Debian's G.711 pcap back to back (SIPp's uac_pcap audio), in-dialog requests routed
            # as through a proxy.
            _, scenario = write_scenarios(work, pause_ms=talk_ms, audio=True)
        else:
            scenario = _scenario(work, talk_ms)
        async with contextlib.AsyncExitStack() as stack:
            if edge:
                config = EdgeConfig(
                    port=_free_port(),
                    media=tuple(supervisor.sip_targets),
                    trusted=("127.0.0.1/32",),
                    max_calls=PER_PROCESS * endpoints * processes,
                )
                front = await stack.enter_async_context(SipEdge(config, health_interval_s=5.0))
                await asyncio.sleep(2.0)  # the dispatcher's first OPTIONS round
                edge_pid = front.pid
                run = asyncio.create_task(
                    asyncio.to_thread(
                        run_uac, work, scenario, config.port, calls=calls, rate_per_s=RATE_PER_S,
                        limit=calls, timeout_s=2 * ramp_s + seconds + 60,
                    )
                )  # fmt: skip
            else:
                targets = len(supervisor.sip_targets)
                shares = [min(PER_PROCESS, calls - i * PER_PROCESS) for i in range(targets)]
                runs = [
                    asyncio.create_task(_sipp(target, scenario, share, ramp_s + seconds + 4.0))
                    for target, share in zip(supervisor.sip_targets, shares, strict=True)
                    if share > 0
                ]
            await asyncio.sleep(ramp_s + 2.0)
            cpu_before = sum(_cpu_s(pid) for pid in pids)
            edge_before = group_cpu_s(edge_pid) if edge_pid is not None else 0.0
            busy_before, total_before = _machine_busy_s()
            started = time.monotonic()
            await asyncio.sleep(seconds)
            elapsed = time.monotonic() - started
            cpu_s = sum(_cpu_s(pid) for pid in pids) - cpu_before
            edge_s = group_cpu_s(edge_pid) - edge_before if edge_pid is not None else 0.0
            busy_after, total_after = _machine_busy_s()
            jitter = await _jitter(supervisor.control_urls)
            # A media process that died (and was restarted) loses its calls, and its CPU is no
            # longer counted: the run's figures are then suspect, so the table says so.
            result["media_restarts"] = sum(int(str(s["restarts"])) for s in supervisor.status())
            if edge:
                try:
                    uac = await run
                except subprocess.TimeoutExpired:
                    # Saturated: SIPp still waited on answers past its own timeout. Reported,
                    # not raised, so the other Ns still print.
                    result.update(successful=0, failed="hung")
                else:
                    result.update(successful=uac.successful, failed=uac.failed)
                    if uac.failed or uac.successful != calls:
                        print(f"SIPp ({calls} calls): {uac.stats}\n{uac.output}", file=sys.stderr)
            else:
                codes = await asyncio.gather(*runs)
                result.update(sipp_runs_failed=sum(1 for c in codes if c != 0))
    finally:
        await supervisor.aclose()
    weight = sum(j["n"] for j in jitter) or 1
    cores = os.cpu_count() or 1
    busy_pct = 100.0 * (busy_after - busy_before) / max(1e-9, total_after - total_before) * cores
    result.update(
        cpu_per_call_pct=round(100.0 * cpu_s / (calls * elapsed), 2),
        edge_cpu_pct=round(100.0 * edge_s / elapsed, 2),
        machine_busy_pct=round(busy_pct, 1),
        machine_cores=cores,
        tick_jitter_p50_ms=round(sum(j["p50"] * j["n"] for j in jitter) / weight, 2),
        tick_jitter_p99_ms_worst=max((j["p99"] for j in jitter), default=float("nan")),
    )
    return result


async def main_async(
    counts: list[int],
    seconds: float,
    *,
    edge: bool = True,
    frame_ms: tuple[int, ...] = (20,),
    endpoints: tuple[int, ...] = (1,),
) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clip = read_audio(ROOT / "examples" / "audio" / "opening-hours-8k.wav")
        (work / "caller.ulaw").write_bytes(ulaw_encode(float_to_pcm16(clip.samples)).tobytes())
        return [
            await _measure(n, seconds, work, edge=edge, frame_ms=tick, endpoints=e)
            for n in counts
            for tick in frame_ms
            for e in endpoints
        ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", default="10,50,100", help="Comma-separated concurrent call counts.")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--direct", action="store_true", help="SIPp straight to the media processes.")
    parser.add_argument(
        "--frame-ms", default="20", help="Comma-separated sip_frame_ms values (20, 40) to compare."
    )
    parser.add_argument(
        "--endpoints", default="1", help="Comma-separated SIP endpoints per media process to compare."
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for tool in ("sipp",) if args.direct else ("sipp", "kamailio"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (scripts/system-deps.sh --test installs it)")
    counts = [int(n) for n in args.calls.split(",")]
    ticks = tuple(int(t) for t in args.frame_ms.split(","))
    if any(t not in (20, 40) for t in ticks):
        sys.exit(f"--frame-ms takes 20 and/or 40, got {args.frame_ms}")
    endpoints = tuple(int(e) for e in args.endpoints.split(","))
    if any(not 1 <= e <= 32 for e in endpoints):
        sys.exit(f"--endpoints takes 1..32, got {args.endpoints}")
    results = asyncio.run(
        main_async(counts, args.seconds, edge=not args.direct, frame_ms=ticks, endpoints=endpoints)
    )
    if args.json:
        print(json.dumps(results, indent=2))
        return
    front = "SIPp -> media processes" if args.direct else "SIPp -> Kamailio edge -> media processes"
    print(f"{front}, {args.seconds:.0f} s with all calls up, {results[0]['machine_cores']} cores")
    print(
        f"{'calls':>6} {'tick':>5} {'endpts':>6} {'procs':>6} {'restarts':>9} {'failed':>7}"
        f" {'media CPU/call %':>17} {'edge CPU %':>11} {'machine busy %':>15} {'tick jitter p50/p99 ms':>23}"
    )
    for r in results:
        failed = r["failed"] if "failed" in r else f"{r['sipp_runs_failed']} runs"
        jitter = f"{r['tick_jitter_p50_ms']}/{r['tick_jitter_p99_ms_worst']}"
        print(
            f"{r['calls']:>6} {r['frame_ms']:>5} {r['endpoints']:>6} {r['processes']:>6}"
            f" {r['media_restarts']:>9} {failed!s:>7} {r['cpu_per_call_pct']:>17} {r['edge_cpu_pct']:>11}"
            f" {r['machine_busy_pct']:>15} {jitter:>23}"
        )


if __name__ == "__main__":
    main()
