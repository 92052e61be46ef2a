"""First agent audio after the caller stops, over the shipped example questions."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from voiceagent.agents import builtin_agent_path, load_agent
from voiceagent.audio import SileroVad, read_audio, to_pipeline
from voiceagent.bench.stats import summarize
from voiceagent.config import Settings
from voiceagent.engines.cascade import CascadeEngine
from voiceagent.errors import ConfigError
from voiceagent.filecall import call_pcm

__all__ = ["examples_dir", "run_first_audio_bench"]


def examples_dir() -> Path:
    """examples/audio of a source checkout (or VOICEAGENT_EXAMPLES_DIR)."""
    env = os.environ.get("VOICEAGENT_EXAMPLES_DIR")
    candidates = [Path(env)] if env else []
    candidates += [
        Path.cwd() / "examples" / "audio",
        Path(__file__).resolve().parents[2] / "examples" / "audio",
    ]
    for path in candidates:
        if (path / "questions.json").exists():
            return path
    raise ConfigError("examples/audio not found: run from a source checkout or set VOICEAGENT_EXAMPLES_DIR")


async def run_first_audio_bench(
    settings: Settings, *, repeat: int = 3, realtime: bool = False
) -> dict[str, Any]:
    """Call the agent ``repeat`` times with every shipped question (16 kHz and 8 kHz variants)."""
    folder = examples_dir()
    spec = json.loads((folder / "questions.json").read_text(encoding="utf-8"))
    agent = load_agent(settings.agent_path or builtin_agent_path())
    engine = await CascadeEngine.load(settings, agent)
    vad = SileroVad.packaged()
    rows: list[dict[str, Any]] = []
    try:
        for q in spec["questions"]:
            for variant in (f"{q['name']}.wav", f"{q['name']}-8k.wav"):
                caller = to_pipeline(read_audio(folder / variant))
                for _ in range(repeat):
                    report = await call_pcm(engine, caller, settings, vad=vad, realtime=realtime)
                    rows.append(
                        {"file": variant, "first_audio_ms": report.first_audio_ms, "text": report.user_text}
                    )
    finally:
        await engine.aclose()
    values = [r["first_audio_ms"] for r in rows if r["first_audio_ms"] is not None]
    summary = summarize(values)
    table = "\n".join(
        [
            f"first agent audio after the caller stops — {len(values)} calls, "
            f"{'real time' if realtime else 'idle time skipped'},"
            f" hangover {settings.turn_hangover_ms} ms, "
            f"asr {settings.asr_model}, tts {settings.tts_model},"
            f" {os.cpu_count()} cores ({platform.machine()})",
            f"  p50 {summary['p50']:.0f} ms   p95 {summary['p95']:.0f} ms   "
            f"min {summary['min']:.0f} ms   max {summary['max']:.0f} ms   (target p50 <= 1200 ms)",
            f"  unanswered calls: {len(rows) - len(values)}",
        ]
    )
    return {"summary": summary, "calls": rows, "table": table, "hangover_ms": settings.turn_hangover_ms}
