"""Why a SIP call costs what it does: the same work back to back and paced like a media clock.

    python benchmarks/cold_ticks.py [--calls 3] [--ticks 300]

A media process does a little work for each call every 20 ms (or 40 ms) and sleeps in between,
while dozens of other processes run. This prints the CPU time (``thread_time``, median) of:

- one Silero VAD model call on a 32 ms window;
- one media-layer tick of ``--calls`` calls (``CallSession``: playout, echo guard, VAD, turn-taking;
  a tone engine answers), as the SIP bridge's ``LoopWaker`` drives them;

each run back to back, then with 20 ms and 40 ms of other work (a spin loop) between runs. The
ratio of paced to back-to-back cost is what a cold start costs on this machine; the per-call
cost of a tick at 40 ms against two ticks at 20 ms is what ``sip_frame_ms = 40`` saves.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voiceagent.audio import SileroVad, read_audio, resample, score_windows
from voiceagent.bridges.sip.process import tone_engine
from voiceagent.config import load_settings
from voiceagent.engines.events import SessionConfig
from voiceagent.media.session import CallSession

ROOT = Path(__file__).resolve().parents[1]
FRAME = 320  # 20 ms at 16 kHz


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def _median_us(run: Callable[[], None], ticks: int, gap_s: float) -> float:
    costs = []
    for _ in range(ticks):
        start = time.thread_time()
        run()
        costs.append(time.thread_time() - start)
        await asyncio.sleep(0)  # the engine sessions take what the tick sent (untimed)
        _spin(gap_s)
    return 1e6 * statistics.median(costs)


async def main_async(calls: int, ticks: int) -> None:
    clip = read_audio(ROOT / "examples" / "audio" / "opening-hours-8k.wav")
    speech = resample(clip.samples, clip.sample_rate, 16000)
    pcm = (np.clip(speech, -1.0, 1.0) * 32767).astype(np.int16)
    frames = [pcm[i : i + FRAME] for i in range(0, pcm.size - FRAME, FRAME)]

    vad = SileroVad.packaged(silence_dbfs=None)
    window = (pcm[: vad.window_samples].astype(np.float32) / 32768.0).astype(np.float32)

    engine = tone_engine()
    settings = load_settings()
    sessions = []
    for i in range(calls):
        session = CallSession(
            call_id=f"c{i}",
            engine=await engine.open_session(SessionConfig()),
            vad=SileroVad.packaged(),
            settings=settings,
        )
        await session.start()
        session.align_vad(0)
        sessions.append(session)
    position = [0]

    def media_tick(frames_per_tick: int) -> Callable[[], None]:
        def run() -> None:
            for _ in range(frames_per_tick):
                k = position[0]
                position[0] += 1
                for j, session in enumerate(sessions):
                    session.pull_outbound()
                    session.stage_inbound(frames[(k + 37 * j) % len(frames)])
                score_windows([s.vad for s in sessions if s.vad.needs_model])
                for session in sessions:
                    session.finish_inbound()

        return run

    print(f"CPU time per run (median of {ticks}), this machine")
    print(f"{'work':<38} {'back to back':>13} {'20 ms apart':>12} {'40 ms apart':>12}")
    rows = [
        ("Silero VAD, one 32 ms window", lambda: vad.process(window)),
        (f"media tick, {calls} calls, 20 ms of audio", media_tick(1)),
        (f"media tick, {calls} calls, 40 ms of audio", media_tick(2)),
    ]
    for name, run in rows:
        costs = [await _median_us(run, ticks, gap) for gap in (0.0, 0.020, 0.040)]
        print(f"{name:<38} {costs[0]:>10.0f} µs {costs[1]:>9.0f} µs {costs[2]:>9.0f} µs")
    for session in sessions:
        await session.aclose()
    await engine.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=3, help="Calls per media process (the wheel allows 3).")
    parser.add_argument("--ticks", type=int, default=300, help="Runs per figure.")
    args = parser.parse_args()
    if args.calls < 1 or args.ticks < 10:
        sys.exit("--calls must be at least 1 and --ticks at least 10")
    asyncio.run(main_async(args.calls, args.ticks))


if __name__ == "__main__":
    main()
