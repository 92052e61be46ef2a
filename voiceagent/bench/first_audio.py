"""First agent audio after the caller stops, over the shipped example questions.

Runs every question twice per repeat, interleaved: with the answer prepared during the hangover
(the default) and without (``turn_speculate_ms=0``), so both are measured under the same load.
Two clocks are reported: from the end of speech as the VAD saw it (what ``first_audio_ms`` means
everywhere else), and from the end of speech in the signal itself (last 20 ms frame above
-45 dBFS in the caller's audio to the first such frame of the agent's), which does not trust the
VAD's own timing.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from voiceagent.agents import builtin_agent_path, load_agent
from voiceagent.audio import FRAME_SAMPLES, SileroVad, read_audio, rms_dbfs, to_pipeline
from voiceagent.bench.stats import summarize
from voiceagent.config import Settings
from voiceagent.engines.cascade import CascadeEngine
from voiceagent.errors import ConfigError
from voiceagent.filecall import CallReport, call_pcm

__all__ = ["examples_dir", "run_first_audio_bench"]

_AUDIBLE_DBFS = -45.0


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


def _audible_frames(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.intp]:
    frames = pcm[: pcm.size // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES)
    return np.flatnonzero(np.array([rms_dbfs(f) > _AUDIBLE_DBFS for f in frames]))


def signal_latency_ms(caller: npt.NDArray[np.int16], report: CallReport) -> float | None:
    """End of the caller's speech in the signal → first audible agent frame (single-turn calls)."""
    if report.outbound is None:
        return None
    said, heard = _audible_frames(caller), _audible_frames(report.outbound)
    if said.size == 0 or heard.size == 0:
        return None
    return float((heard[0] - (said[-1] + 1)) * 20)


async def run_first_audio_bench(
    settings: Settings, *, repeat: int = 3, realtime: bool = False
) -> dict[str, Any]:
    """Call the agent ``repeat`` times per variant with every shipped question (16 kHz and 8 kHz)."""
    folder = examples_dir()
    spec = json.loads((folder / "questions.json").read_text(encoding="utf-8"))
    agent = load_agent(settings.agent_path or builtin_agent_path())
    engine = await CascadeEngine.load(settings, agent)
    vad = SileroVad.packaged()
    variants = {
        "prepared in hangover": settings,
        "not prepared": settings.model_copy(update={"turn_speculate_ms": 0}),
    }
    rows: list[dict[str, Any]] = []
    try:
        for _ in range(repeat):
            for q in spec["questions"]:
                for wav in (f"{q['name']}.wav", f"{q['name']}-8k.wav"):
                    caller = to_pipeline(read_audio(folder / wav))
                    for variant, config in variants.items():
                        report = await call_pcm(engine, caller, config, vad=vad, realtime=realtime)
                        rows.append(
                            {
                                "variant": variant,
                                "file": wav,
                                "first_audio_ms": report.first_audio_ms,
                                "signal_first_audio_ms": signal_latency_ms(caller, report),
                                "text": report.user_text,
                            }
                        )
    finally:
        await engine.aclose()
    summary = {
        variant: {
            clock: summarize([r[clock] for r in rows if r["variant"] == variant and r[clock] is not None])
            for clock in ("first_audio_ms", "signal_first_audio_ms")
        }
        for variant in variants
    }
    unanswered = sum(1 for r in rows if r["first_audio_ms"] is None)
    return {"summary": summary, "calls": rows, "table": _table(summary, settings, realtime, unanswered)}


def _table(summary: dict[str, Any], settings: Settings, realtime: bool, unanswered: int) -> str:
    pace = "real time" if realtime else "idle time skipped"
    lines = [
        "first agent audio after the caller stops (ms), cascade engine on CPU",
        f"  {os.cpu_count()} cores ({platform.machine()}), asr {settings.asr_model},"
        f" tts {settings.tts_model}, hangover {settings.turn_hangover_ms} ms, {pace}",
        f"  {'variant':<22}{'clock':<14}{'n':>4}{'p50':>8}{'p95':>8}{'min':>8}{'max':>8}",
    ]
    for variant, clocks in summary.items():
        for clock, s in clocks.items():
            name = "VAD end" if clock == "first_audio_ms" else "signal end"
            figures = "".join(f"{s[k]:>8.0f}" for k in ("p50", "p95", "min", "max"))
            lines.append(f"  {variant:<22}{name:<14}{s['n']:>4}{figures}")
    names = list(summary)
    if len(names) == 2:
        a, b = (summary[n]["first_audio_ms"]["p50"] for n in names)
        lines.append(f"  p50 ratio {names[0]} / {names[1]}: {a / b:.2f}   (target p50 <= 1200 ms)")
    lines.append(f"  unanswered calls: {unanswered}")
    return "\n".join(lines)
