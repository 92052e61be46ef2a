"""SIP media path under load: N concurrent SIPp calls with audio, straight to the media processes.

    python benchmarks/sip.py [--calls 10,50,100] [--seconds 60] [--json]

For each N it starts ceil(N/3) ``voiceagent sip-media --engine tone`` processes (the pjsua2 wheel
holds at most 3 calls per process, docs/sip.md), has one SIPp per process place its share of the
calls (each caller streams the shipped 8 kHz question in a loop for the whole call), and prints:
failed calls, CPU per call (all media processes' CPU time / calls / seconds, in % of one core),
and the jitter of the 20 ms clock ticks the media layer saw (p50/p99 of |gap - 20 ms|). The engine
answers with a tone, so the figures are the media path's (pjsua2, the audio port, VAD, turn-taking),
not a speech model's. Needs sipp; runs on Linux (reads /proc for CPU time).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from voiceagent.audio import float_to_pcm16, read_audio
from voiceagent.audio.g711 import ulaw_encode
from voiceagent.bridges.sip.supervisor import MediaProcessSpec, SipMediaSupervisor

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "integration" / "sip_scenarios" / "uac_speech.xml"
PER_PROCESS = 3
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime


async def _healthy(urls: list[str], timeout_s: float = 120.0) -> None:
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


async def _measure(calls: int, seconds: float, work: Path) -> dict[str, Any]:
    processes = math.ceil(calls / PER_PROCESS)
    rtp_base = 30000
    specs = [
        MediaProcessSpec(i, _free_port(), (rtp_base + i * 40, rtp_base + i * 40 + 39), _free_port())
        for i in range(processes)
    ]
    env = dict(os.environ, VOICEAGENT_DATABASE_URL=f"sqlite+aiosqlite:///{work / f'calls-{calls}.db'}")
    supervisor = SipMediaSupervisor(specs, engine="tone", env=env, call_log=False)
    await supervisor.start()
    try:
        await _healthy(supervisor.control_urls)
        pids = [int(s["pid"]) for s in supervisor.status() if isinstance(s["pid"], int)]
        talk_ms = int(seconds * 1000)
        text = SCENARIO.read_text() % {
            "did": "bench",
            "audio": "caller.ulaw",
            "talk_ms": talk_ms,
            "after_ms": 0,
            "digit": "1",
        }
        scenario = work / "uac_bench.xml"
        scenario.write_text(text.replace('rtp_stream="caller.ulaw,1,0"', 'rtp_stream="caller.ulaw,-1,0"'))
        shares = [min(PER_PROCESS, calls - i * PER_PROCESS) for i in range(processes)]
        cpu_before = sum(_cpu_s(pid) for pid in pids)
        runs = [
            asyncio.create_task(_sipp(target, scenario, share, seconds))
            for target, share in zip(supervisor.sip_targets, shares, strict=True)
        ]
        await asyncio.sleep(seconds * 0.9)
        jitter: list[dict[str, float]] = []
        async with httpx.AsyncClient(timeout=2.0) as client:
            for url in supervisor.control_urls:
                stats = (await client.get(f"{url}/health")).json()
                if stats.get("tick_jitter_ms"):
                    jitter.append(stats["tick_jitter_ms"])
        codes = await asyncio.gather(*runs)
        cpu_s = sum(_cpu_s(pid) for pid in pids) - cpu_before
    finally:
        await supervisor.aclose()
    failed_runs = sum(1 for c in codes if c != 0)
    weight = sum(j["n"] for j in jitter) or 1
    return {
        "calls": calls,
        "processes": processes,
        "seconds": seconds,
        "sipp_runs_failed": failed_runs,
        "cpu_per_call_pct": round(100.0 * cpu_s / (calls * seconds), 2),
        "tick_jitter_p50_ms": round(sum(j["p50"] * j["n"] for j in jitter) / weight, 2),
        "tick_jitter_p99_ms_worst": max((j["p99"] for j in jitter), default=float("nan")),
    }


async def main_async(counts: list[int], seconds: float) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clip = read_audio(ROOT / "examples" / "audio" / "opening-hours-8k.wav")
        (work / "caller.ulaw").write_bytes(ulaw_encode(float_to_pcm16(clip.samples)).tobytes())
        return [await _measure(n, seconds, work) for n in counts]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", default="10,50,100", help="Comma-separated concurrent call counts.")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        sys.exit("sipp is not installed")
    results = asyncio.run(main_async([int(n) for n in args.calls.split(",")], args.seconds))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'calls':>6} {'procs':>6} {'failed runs':>12} {'CPU/call %':>11} {'tick jitter p50/p99 ms':>24}")
    for r in results:
        jitter = f"{r['tick_jitter_p50_ms']}/{r['tick_jitter_p99_ms_worst']}"
        head = f"{r['calls']:>6} {r['processes']:>6} {r['sipp_runs_failed']:>12}"
        print(f"{head} {r['cpu_per_call_pct']:>11} {jitter:>24}")


if __name__ == "__main__":
    main()
