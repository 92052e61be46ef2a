"""Browser calls over WebRTC on loopback: first agent audio at the caller, and server CPU per call.

    python benchmarks/webrtc.py [--engine cascade|scripted] [--first-audio-calls 3]
                                [--concurrency 1,5,10] [--window-s 10] [--json]

The server (the WebRTC router on uvicorn, the engine, a VAD per call) runs in a child process on
127.0.0.1; the callers are aiortc peers in this process, so their own CPU is not counted.

- first audio: a caller plays examples/audio/opening-hours.wav; the time from the last loud sample
  it sent to the first loud frame it hears back (Opus both ways, jitter buffers included).
- CPU per call: N calls at once, each asking the question and then listening; the server
  process's CPU time (user + system) over a window, divided by the window and by N, in percent of
  one core. ``--engine scripted`` answers with a fixed tone, so only the WebRTC edge and the media
  layer are measured; ``cascade`` adds the speech models' share.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from voiceagent.audio import SAMPLE_RATE, read_audio, to_pipeline
from voiceagent.bridges.webrtc.client import LoopbackCaller

QUESTION = Path(__file__).resolve().parents[1] / "examples" / "audio" / "opening-hours.wav"
_LOUD = 300  # PCM16 peak that counts as voice rather than padding or codec noise
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- the server (child process) -------------------------------------------------------------------


async def serve(port: int, engine_name: str, max_calls: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    from voiceagent.agents import builtin_agent_path, load_agent
    from voiceagent.bridges.webrtc import WebRTCConfig, WebRTCService, webrtc_router
    from voiceagent.config import load_settings
    from voiceagent.engines.base import SpeechEngine
    from voiceagent.testing import ScriptedEngine, ScriptedReply

    settings = load_settings()
    engine: SpeechEngine
    if engine_name == "cascade":
        from voiceagent.engines.cascade import CascadeEngine

        engine = await CascadeEngine.load(settings, load_agent(builtin_agent_path()))
    else:
        tone = (np.sin(np.arange(SAMPLE_RATE * 2) * 2 * np.pi * 440 / SAMPLE_RATE) * 6000).astype(np.int16)
        engine = ScriptedEngine([ScriptedReply("A tone.", tone)], user_text="hello")
    service = WebRTCService(engine, settings, config=WebRTCConfig(max_calls=max_calls))
    app = FastAPI()
    app.include_router(webrtc_router(service))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn has a flag, not an event
        await asyncio.sleep(0.05)
    print("READY", flush=True)
    try:
        await task
    finally:
        await service.aclose()
        await engine.aclose()


# ---- the callers -------------------------------------------------------------------------------


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def last_loud_sample(pcm: npt.NDArray[np.int16]) -> int:
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > _LOUD)
    return int(loud[-1]) + 1 if loud.size else pcm.size


class Bench:
    def __init__(self, base_url: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30.0)

    async def signal(self, offer: dict[str, str]) -> dict[str, Any]:
        response = await self.http.post("/v1/webrtc/offer", json=offer)
        response.raise_for_status()
        return dict(response.json())

    async def hang_up(self, caller: LoopbackCaller) -> None:
        if caller.call_id is not None:
            await self.http.delete(f"/v1/webrtc/calls/{caller.call_id}")
        await caller.aclose()

    async def first_audio_s(self, question: npt.NDArray[np.int16], timeout_s: float = 30.0) -> float | None:
        pcm = np.concatenate([question, np.zeros(SAMPLE_RATE * 30, dtype=np.int16)])
        caller = LoopbackCaller(pcm)
        try:
            await caller.connect(self.signal)
            deadline = time.monotonic() + timeout_s
            stop = last_loud_sample(question)
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                spoke_until = caller.microphone.sent_at(stop)
                if spoke_until is None or time.monotonic() < spoke_until:
                    continue
                heard = caller.first_audio_after(spoke_until, peak=_LOUD)
                if heard is not None:
                    return heard - spoke_until
            return None
        finally:
            await self.hang_up(caller)

    async def cpu_per_call(
        self, pid: int, question: npt.NDArray[np.int16], calls: int, window_s: float
    ) -> dict[str, Any]:
        pcm = np.concatenate([question, np.zeros(int(SAMPLE_RATE * (window_s + 30)), dtype=np.int16)])
        callers = [LoopbackCaller(pcm) for _ in range(calls)]
        try:
            await asyncio.gather(*(c.connect(self.signal) for c in callers))
            await asyncio.sleep(1.0)  # ICE, DTLS and the first frames
            cpu0, wall0 = cpu_s(pid), time.monotonic()
            await asyncio.sleep(window_s)
            cpu, wall = cpu_s(pid) - cpu0, time.monotonic() - wall0
            answered = sum(1 for c in callers if c.first_audio_after(0.0, peak=_LOUD) is not None)
        finally:
            await asyncio.gather(*(self.hang_up(c) for c in callers))
        return {
            "calls": calls,
            "answered": answered,
            "server_cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3),
            "cpu_pct_per_call": round(100.0 * cpu / wall / calls, 2),
        }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    concurrency = [int(n) for n in args.concurrency.split(",")]
    child = await asyncio.create_subprocess_exec(
        *(sys.executable, __file__, "--serve", str(port), "--engine", args.engine),
        *("--max-calls", str(max(concurrency))),
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = await child.stdout.readline()
        if line.strip() != b"READY":
            raise SystemExit(f"the server did not start (exit code {child.returncode})")
        bench = Bench(f"http://127.0.0.1:{port}")
        question = to_pipeline(read_audio(QUESTION))
        first = [await bench.first_audio_s(question) for _ in range(args.first_audio_calls)]
        measured = [f for f in first if f is not None]
        rows = [await bench.cpu_per_call(child.pid, question, n, args.window_s) for n in concurrency]
        await bench.http.aclose()
    finally:
        child.terminate()
        await asyncio.wait_for(child.wait(), 30.0)
    return {
        "engine": args.engine,
        "cpu_cores": os.cpu_count(),
        "first_audio_ms": [None if f is None else round(1000 * f) for f in first],
        "first_audio_p50_ms": round(1000 * statistics.median(measured)) if measured else None,
        "cpu": rows,
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"engine: {result['engine']}   cores: {result['cpu_cores']}   (aiortc callers on loopback)")
    print(
        f"first agent audio after the caller stops, at the caller: p50 {result['first_audio_p50_ms']} ms"
        f"  (calls: {result['first_audio_ms']})"
    )
    print(f"{'calls':>5}  {'answered':>8}  {'server CPU s':>12}  {'wall s':>7}  {'% of a core per call':>21}")
    for row in result["cpu"]:
        print(
            f"{row['calls']:>5}  {row['answered']:>8}  {row['server_cpu_s']:>12.2f}  {row['wall_s']:>7.2f}"
            f"  {row['cpu_pct_per_call']:>21.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=["cascade", "scripted"], default="cascade")
    parser.add_argument("--first-audio-calls", type=int, default=3)
    parser.add_argument("--concurrency", default="1,5,10")
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--max-calls", type=int, default=20, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(serve(args.serve, args.engine, args.max_calls))
        return
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2)) if args.json else print_table(result)


if __name__ == "__main__":
    main()
