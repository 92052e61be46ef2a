"""A media node under load: N concurrent file calls on the realtime engine, one JSON report at the end.

Used by the worker-pool tests and for trying a pool by hand::

    VOICEAGENT_REDIS_URL=redis://127.0.0.1:6379/0 \\
        python -m voiceagent.worker.media_load --calls 20 examples/audio/returns.wav

Each call opens its own session (placed through the pool, or on ``realtime_url``); a call that no
worker can take is reported with its error, not retried.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from voiceagent.audio import read_audio, to_pipeline
from voiceagent.config import Settings, load_settings
from voiceagent.engines.base import SpeechEngine, SpeechSession
from voiceagent.engines.events import SessionConfig
from voiceagent.engines.realtime import RealtimeEngine, RealtimeSession
from voiceagent.errors import VoiceAgentError
from voiceagent.filecall import call_pcm

__all__ = ["run_calls"]


class _Recording:
    """Wraps the engine to keep each call's realtime session, for its worker history."""

    name = "realtime"

    def __init__(self, engine: RealtimeEngine) -> None:
        self.engine = engine
        self.last: RealtimeSession | None = None

    async def open_session(self, config: SessionConfig) -> SpeechSession:
        self.last = await self.engine.open_session(config)
        return self.last

    async def aclose(self) -> None:
        pass  # the engine is shared by every call and closed by run_calls


async def _one_call(
    index: int, engine: RealtimeEngine, caller: np.ndarray, settings: Settings
) -> dict[str, Any]:
    recording = _Recording(engine)
    started = time.monotonic()
    result: dict[str, Any] = {"call": index}
    try:
        shim: SpeechEngine = recording
        report = await call_pcm(shim, caller, settings, realtime=False)
    except VoiceAgentError as exc:
        result.update(ok=False, error=f"{type(exc).__name__}: {exc}", workers=[], failovers=0, turns=[])
        return result
    session = recording.last
    result.update(
        ok=True,
        error=None,
        conversation_id=session.id if session else None,
        workers=session.workers if session else [],
        failovers=session.failovers if session else 0,
        ended_reason=report.ended_reason,
        turns=[
            {k: t[k] for k in ("user_text", "reply_text", "status", "first_audio_ms")} for t in report.turns
        ],
        wall_s=round(time.monotonic() - started, 2),
    )
    return result


async def run_calls(
    settings: Settings, callers: list[Path], calls: int, *, gap_ms: int = 0, start_at: float | None = None
) -> list[dict[str, Any]]:
    """Run ``calls`` calls at once; each plays the files of ``callers`` in turn, ``gap_ms`` apart.

    ``start_at`` (a ``time.time()`` value) lets several processes start their calls together.
    """
    gap = np.zeros(16 * gap_ms, dtype=np.int16)
    pieces = [to_pipeline(read_audio(p)) for p in callers]
    caller = np.concatenate([x for piece in pieces for x in (piece, gap)][:-1])
    engine = RealtimeEngine.from_settings(settings)
    if start_at is not None:
        await asyncio.sleep(max(0.0, start_at - time.time()))
    try:
        return list(await asyncio.gather(*(_one_call(i, engine, caller, settings) for i in range(calls))))
    finally:
        await engine.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="+", type=Path, help="caller WAV files, played in order in every call")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--gap-ms", type=int, default=0, help="silence between the files")
    parser.add_argument("--start-at", type=float, default=None, help="time.time() at which to start calling")
    args = parser.parse_args()
    settings = load_settings(engine="realtime")
    results = asyncio.run(
        run_calls(settings, args.audio, args.calls, gap_ms=args.gap_ms, start_at=args.start_at)
    )
    print(json.dumps({"calls": results}), flush=True)


if __name__ == "__main__":
    main()
