"""What the speech-session protocol adds: the same engine in-process vs over WebSocket on loopback.

The engine is the scripted worker engine streaming 20 ms chunks at real time, like a model that
speaks as it generates. Per audio chunk we take the time from the engine emitting it to the media
side receiving it (``SpeechSession.recv``); per turn, the time from ``response.create`` to the first
audio. In-process both happen on one event loop; over the protocol the worker is a process of its
own (as in production), the client is :class:`RealtimeEngine`, and every event goes through the JSON
codec, base64 and a loopback TCP socket. Both sides read the same monotonic clock.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from asyncio.subprocess import PIPE
from typing import Any

from voiceagent.bench.stats import percentile
from voiceagent.engines.base import SpeechSession
from voiceagent.engines.events import (
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    ResponseCreate,
    ResponseDone,
    ResponseOutputAudioDelta,
    SessionConfig,
    SessionCreated,
)
from voiceagent.engines.realtime import RealtimeEngine
from voiceagent.worker.scripted import ScriptedWorkerConfig, ScriptedWorkerEngine, ScriptedWorkerSession
from voiceagent.worker.server import WorkerServer

__all__ = ["run_realtime_bench"]

_CONFIG = SessionConfig(16000, 16000)
_CALLER_AUDIO = b"\0\0" * 16000  # one second


class _Recorder(ScriptedWorkerEngine):
    """The scripted engine, keeping its sessions so emission times can be read back."""

    def __init__(self, config: ScriptedWorkerConfig) -> None:
        super().__init__(config)
        self.sessions: list[ScriptedWorkerSession] = []

    async def open_session(self, config: SessionConfig) -> ScriptedWorkerSession:
        session = await super().open_session(config)
        self.sessions.append(session)
        return session

    def emitted(self, response_id: str) -> list[float]:
        return next(s.emitted_at[response_id] for s in self.sessions if response_id in s.emitted_at)


def _stagger_s(reply_ms: int, sessions: int) -> float:
    # Calls are independent: spread their turns over one reply instead of running them in lockstep.
    return reply_ms / 1000 / sessions


async def _collect(
    session: SpeechSession, turns: int, received: list[tuple[str, list[float], float]], delay_s: float = 0.0
) -> None:
    """Run ``turns`` replies; keep (response id, arrival time of each chunk, time it was asked for)."""
    assert isinstance(await session.recv(), SessionCreated)
    await asyncio.sleep(delay_s)
    for _ in range(turns):
        await session.send(InputAudioBufferAppend(_CALLER_AUDIO))
        await session.send(InputAudioBufferCommit())
        asked = time.perf_counter()
        await session.send(ResponseCreate())
        arrived: list[float] = []
        rid = ""
        while True:
            event = await session.recv()
            now = time.perf_counter()
            if isinstance(event, ResponseOutputAudioDelta):
                arrived.append(now)
                rid = event.response_id
            elif isinstance(event, ResponseDone):
                break
        received.append((rid, arrived, asked))
    await session.aclose()


async def _in_process(reply_ms: int, sessions: int, turns: int) -> tuple[list[float], list[float]]:
    stagger_s = _stagger_s(reply_ms, sessions)
    engine = _Recorder(ScriptedWorkerConfig(reply_ms=reply_ms, chunk_ms=20, realtime=True))
    received: list[tuple[str, list[float], float]] = []
    opened = [await engine.open_session(_CONFIG) for _ in range(sessions)]
    await asyncio.gather(*(_collect(s, turns, received, i * stagger_s) for i, s in enumerate(opened)))
    chunk_ms: list[float] = []
    first_ms: list[float] = []
    for rid, arrived, asked in received:
        chunk_ms.extend(1000 * (a - e) for a, e in zip(arrived, engine.emitted(rid), strict=True))
        first_ms.append(1000 * (arrived[0] - asked))
    return chunk_ms, first_ms


async def _serve_worker(reply_ms: int, capacity: int) -> None:
    """The worker side, in a process of its own: port out, emission times out when stdin closes."""
    engine = _Recorder(ScriptedWorkerConfig(reply_ms=reply_ms, chunk_ms=20, realtime=True))
    server = WorkerServer(engine, capacity=capacity, token="bench", worker_id="bench")
    port = await server.start("127.0.0.1", 0)
    print(json.dumps({"port": port}), flush=True)
    await asyncio.to_thread(sys.stdin.read)
    emitted = {rid: times for s in engine.sessions for rid, times in s.emitted_at.items()}
    print(json.dumps({"emitted": emitted}), flush=True)
    await server.aclose()


class _Remote:
    """Emission times reported by the worker process once the run is over."""

    def __init__(self, emitted: dict[str, list[float]]) -> None:
        self._emitted = emitted

    def emitted(self, response_id: str) -> list[float]:
        return self._emitted[response_id]


async def _over_websocket(reply_ms: int, sessions: int, turns: int) -> tuple[list[float], list[float]]:
    stagger_s = _stagger_s(reply_ms, sessions)
    # A separate process, as in production: no GIL shared with the client. perf_counter is
    # CLOCK_MONOTONIC, one clock for every process on the machine, so times compare across them.
    cmd = [sys.executable, "-m", "voiceagent.bench.realtime", str(reply_ms), str(sessions)]
    proc = await asyncio.create_subprocess_exec(*cmd, stdin=PIPE, stdout=PIPE)
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        port = json.loads(await proc.stdout.readline())["port"]
        client = RealtimeEngine(url=f"ws://127.0.0.1:{port}/v1/realtime", token="bench")
        received: list[tuple[str, list[float], float]] = []
        opened = [await client.open_session(_CONFIG) for _ in range(sessions)]
        await asyncio.gather(*(_collect(s, turns, received, i * stagger_s) for i, s in enumerate(opened)))
        await client.aclose()
        proc.stdin.close()
        remote = _Remote(json.loads(await proc.stdout.read())["emitted"])  # one line, read to EOF
    finally:
        if proc.returncode is None:
            await asyncio.wait_for(proc.wait(), 10)
    chunk_ms: list[float] = []
    first_ms: list[float] = []
    for rid, arrived, asked in received:
        chunk_ms.extend(1000 * (a - e) for a, e in zip(arrived, remote.emitted(rid), strict=True))
        first_ms.append(1000 * (arrived[0] - asked))
    return chunk_ms, first_ms


def _row(name: str, values: list[float]) -> dict[str, Any]:
    return {
        "name": name,
        "n": len(values),
        "p50_ms": round(percentile(values, 50), 3),
        "p99_ms": round(percentile(values, 99), 3),
        "max_ms": round(max(values), 3),
    }


async def run_realtime_bench(*, sessions: int = 1, turns: int = 20, reply_ms: int = 400) -> dict[str, Any]:
    """Both runs, side by side; ``added_*`` are over-WebSocket minus in-process, per percentile."""
    local_chunk, local_first = await _in_process(reply_ms, sessions, turns)
    ws_chunk, ws_first = await _over_websocket(reply_ms, sessions, turns)
    rows = [
        _row("chunk, in-process", local_chunk),
        _row("chunk, websocket", ws_chunk),
        _row("first audio, in-process", local_first),
        _row("first audio, websocket", ws_first),
    ]
    added = {
        "chunk_p50_ms": round(percentile(ws_chunk, 50) - percentile(local_chunk, 50), 3),
        "chunk_p99_ms": round(percentile(ws_chunk, 99) - percentile(local_chunk, 99), 3),
        "first_audio_p50_ms": round(percentile(ws_first, 50) - percentile(local_first, 50), 3),
        "first_audio_p99_ms": round(percentile(ws_first, 99) - percentile(local_first, 99), 3),
    }
    head = f"sessions={sessions} (staggered) turns/session={turns} reply={reply_ms} ms in 20 ms chunks"
    lines = [head + " (target: added p99 <= 5 ms)"]
    lines.append(f"{'':<26}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for r in rows:
        lines.append(
            f"{r['name']:<26}{r['n']:>6}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}{r['max_ms']:>10.3f}"
        )
    lines.append(
        f"added by the protocol: chunk p50 {added['chunk_p50_ms']:.3f} ms, p99 {added['chunk_p99_ms']:.3f}"
        f" ms; first audio p50 {added['first_audio_p50_ms']:.3f} ms, p99 {added['first_audio_p99_ms']:.3f} ms"
    )
    return {"sessions": sessions, "turns": turns, "rows": rows, "added": added, "table": "\n".join(lines)}


if __name__ == "__main__":
    asyncio.run(_serve_worker(int(sys.argv[1]), int(sys.argv[2])))
