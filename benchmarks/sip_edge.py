"""Calls with audio through the Kamailio SIP edge: failed calls, edge CPU per call, SIP response times.

    python benchmarks/sip_edge.py [--concurrency 10,50,100] [--window-s 60] [--hold-s 20] [--json]

For each N: SIPp places calls through the edge (``voiceagent.bridges.sip.edge.SipEdge``) so that N
are up at once for ``window-s`` seconds (rate N / hold-s, each call held ``hold-s`` while playing the
Debian G.711 pcap back to back); the edge spreads them over two SIPp back-ends that echo RTP
(``-rtp_echo``). RTP goes caller <-> back-end directly, as in production: the edge carries signalling
only. The caller's address is a trusted trunk (pike exempt), as a real carrier's would be.

First, the latency the edge adds: INVITE -> final reply timed in Python (perf_counter), straight to a
back-end and through the edge, 300 samples each. Then figures per N: calls placed / successful /
failed; the edge's CPU time (every Kamailio process, user + system) per call in ms and as % of one
core over the run; INVITE -> 200 response time through the edge and a back-end (p50, p95, max,
from SIPp's per-call ``-trace_rtt``, whose clock ticks in ~4 ms steps here).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.sip_edge_support import (
    SippUas,
    UdpBackend,
    free_port,
    run_uac,
    send_raw,
    write_scenarios,
)
from voiceagent.bridges.sip.edge import EdgeConfig, SipEdge

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of every live process in the process group ``pgid``."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _CLK_TCK


def _response_times_ms(directory: Path) -> list[float]:
    times: list[float] = []
    for path in directory.glob("uac_*_rtt.csv"):
        for row in csv.DictReader(path.read_text().splitlines(), delimiter=";"):
            value = row.get("response_time") or row.get("response_time_ms")
            if value:
                times.append(float(value))
        path.unlink()
    return times


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


async def measure(concurrency: int, window_s: float, hold_s: float, directory: Path) -> dict[str, Any]:
    """One run at ``concurrency`` calls up at once."""
    uas_scenario, uac_scenario = write_scenarios(directory, pause_ms=int(hold_s * 1000), audio=True)
    backends = [SippUas(directory, free_port(), free_port()).start(uas_scenario) for _ in range(2)]
    try:
        config = EdgeConfig(
            port=free_port(),
            media=tuple(b.address for b in backends),
            trusted=("127.0.0.1/32",),
            max_calls=concurrency * 2,
        )
        async with SipEdge(config, health_interval_s=5.0) as edge:
            await asyncio.sleep(1.0)  # the dispatcher's first OPTIONS round
            pid = edge.pid
            assert pid is not None
            calls = max(concurrency, round(window_s * concurrency / hold_s))
            cpu_before, started = group_cpu_s(pid), time.monotonic()
            result = await asyncio.to_thread(
                run_uac, directory, uac_scenario, config.port, calls=calls,
                rate_per_s=concurrency / hold_s, limit=concurrency, timeout_s=window_s + hold_s + 30,
                extra=("-trace_rtt", "-rtt_freq", "1"),
            )  # fmt: skip
            elapsed_s = time.monotonic() - started
            cpu_s = group_cpu_s(pid) - cpu_before
            restarts = edge.restarts
    finally:
        for backend in backends:
            backend.stop()
    times = _response_times_ms(directory)
    return {
        "concurrency": concurrency,
        "calls": calls,
        "successful": result.successful,
        "failed": result.failed,
        "elapsed_s": round(elapsed_s, 1),
        "edge_cpu_ms_per_call": round(1000 * cpu_s / max(1, result.successful + result.failed), 2),
        "edge_cpu_pct_of_core": round(100 * cpu_s / elapsed_s, 2),
        "response_ms_p50": round(statistics.median(times), 1) if times else None,
        "response_ms_p95": round(_percentile(times, 0.95), 1) if times else None,
        "response_ms_max": round(max(times), 1) if times else None,
        "edge_restarts": restarts,
    }


def _invite(port: int) -> bytes:
    call_id = uuid.uuid4().hex
    return (
        f"INVITE sip:agent@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;rport;branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\n"
        f"From: <sip:bench@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\nContact: <sip:bench@127.0.0.1:9>\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _round_trips_ms(port: int, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        reply = send_raw(port, _invite(port), timeout_s=2.0)
        if reply is not None and reply.startswith(b"SIP/2.0 404 "):
            times.append(1000 * (time.perf_counter() - started))
    return times


async def added_latency(samples: int = 300) -> dict[str, Any]:
    """INVITE -> final reply, straight to a back-end vs through the edge (microsecond clock)."""
    with UdpBackend(b"404 Not Found") as backend:  # 404: relayed as is, no failover, no dialog
        config = EdgeConfig(port=free_port(), media=(backend.address,), trusted=("127.0.0.1/32",))
        async with SipEdge(config) as edge:
            direct = await asyncio.to_thread(_round_trips_ms, backend.port, samples)
            through = await asyncio.to_thread(_round_trips_ms, edge.config.port, samples)
    return {
        "samples": samples,
        "direct_ms_p50": round(statistics.median(direct), 3),
        "direct_ms_p95": round(_percentile(direct, 0.95), 3),
        "via_edge_ms_p50": round(statistics.median(through), 3),
        "via_edge_ms_p95": round(_percentile(through, 0.95), 3),
    }


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'N':>4} {'calls':>6} {'ok':>6} {'failed':>6} {'cpu ms/call':>11} {'cpu %core':>9}"
        f" {'p50 ms':>7} {'p95 ms':>7}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['concurrency']:>4} {r['calls']:>6} {r['successful']:>6} {r['failed']:>6}"
            f" {r['edge_cpu_ms_per_call']:>11} {r['edge_cpu_pct_of_core']:>9}"
            f" {r['response_ms_p50']!s:>7} {r['response_ms_p95']!s:>7}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--concurrency", default="10,50,100", help="Comma-separated N (calls up at once).")
    parser.add_argument("--window-s", type=float, default=60.0, help="How long N calls are kept up.")
    parser.add_argument("--hold-s", type=float, default=20.0, help="Length of each call.")
    parser.add_argument("--json", action="store_true", help="Print JSON.")
    args = parser.parse_args()
    latency = asyncio.run(added_latency())
    if not args.json:
        print(
            f"INVITE -> reply, {latency['samples']} samples: straight to a back-end p50"
            f" {latency['direct_ms_p50']} ms / p95 {latency['direct_ms_p95']} ms; through the edge p50"
            f" {latency['via_edge_ms_p50']} ms / p95 {latency['via_edge_ms_p95']} ms",
            flush=True,
        )
    rows = []
    for n in (int(x) for x in args.concurrency.split(",")):
        with tempfile.TemporaryDirectory(prefix="sip-edge-bench-") as scratch:
            rows.append(asyncio.run(measure(n, args.window_s, args.hold_s, Path(scratch))))
        if not args.json:
            print(_table(rows[-1:]) if len(rows) > 1 else _table(rows), flush=True)
    if args.json:
        print(json.dumps({"added_latency": latency, "calls": rows}, indent=2))


if __name__ == "__main__":
    main()
