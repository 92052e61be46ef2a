"""``voiceagent bench bargein``: barge-in on synthetic phone calls with known timings.

Each call: the caller asks a question, the agent answers with a long reply, and at a known sample
during the reply one of four things happens on the caller's side — a real interruption, a
backchannel, nothing (the agent's own echo only), or noise (clicks and a door). Every call has the
agent's echo at 100–300 ms and -6 to -20 dB, hiss at 15 dB below the caller's speech, and 8 kHz
G.711 µ-law, through :class:`voiceagent.bench.line.PhoneLine` and the real media layer (VAD, echo
guard, barge-in policy, playout accounting). The engine is scripted, so what is measured is the
media layer alone; short utterances are classified with the real packaged Whisper model.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import platform
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from voiceagent.agents.definition import BargeInPolicy
from voiceagent.audio import (
    SAMPLE_RATE,
    FrameResampler,
    SileroVad,
    float_to_pcm16,
    resample,
    rms_dbfs,
    ulaw_decode,
    ulaw_encode,
)
from voiceagent.bench.line import PhoneLine
from voiceagent.bench.stats import summarize
from voiceagent.bridges.file import run_file_call
from voiceagent.config import Settings
from voiceagent.engines.cascade.asr import WhisperAsr
from voiceagent.engines.cascade.tts import HibariTts
from voiceagent.engines.events import SessionConfig
from voiceagent.media.bargein import SnippetTranscript
from voiceagent.media.session import CallSession
from voiceagent.testing import ScriptedEngine, ScriptedReply

__all__ = ["run_bargein_bench"]

Scenario = Literal["interrupt", "backchannel", "echo", "noise"]
SCENARIOS: tuple[Scenario, ...] = ("interrupt", "backchannel", "echo", "noise")

QUESTIONS = [
    "Hi, what are your opening hours on Saturday?",
    "How long does shipping take?",
    "Can I return a jacket that doesn't fit?",
]
REPLY = (
    "We're open Monday to Friday from eight in the morning to eight in the evening, and Saturday from "
    "nine to five. We're closed on Sundays and public holidays. Our store in Portland keeps the same "
    "hours, and you can reach us by phone during those times as well."
)
INTERRUPTIONS = [
    "Sorry, actually I wanted to ask about returns.",
    "Wait, can you repeat that please?",
    "No no, I need to speak to someone about my order.",
    "Hold on, what about Sundays?",
    # Short ones are decided by their words, not their length: they must stop the agent too.
    "Wait.",
    "Hold on.",
]
BACKCHANNELS = ["Uh-huh.", "Mm-hm.", "Okay.", "Right.", "Yeah."]
_CALLER_LEVEL = 0.5  # caller speech peak relative to full scale before the line
_SNR_DB = 15.0


@dataclass
class _Clips:
    reply: npt.NDArray[np.int16]
    questions: list[npt.NDArray[np.int16]]
    interruptions: list[npt.NDArray[np.int16]]
    backchannels: list[npt.NDArray[np.int16]]


def _synth(tts: HibariTts, text: str, level: float) -> npt.NDArray[np.int16]:
    audio = resample(tts.synthesize(text), tts.sample_rate, SAMPLE_RATE)
    audio = audio * (level / max(1e-6, float(np.max(np.abs(audio)))))
    return float_to_pcm16(audio)


def _clips() -> _Clips:
    tts = HibariTts("hibari-heart")
    reply = _synth(tts, REPLY, 0.7)
    # Exact zeros mark silence on the outbound leg; keep them out of the reply itself.
    reply[reply == 0] = 1
    return _Clips(
        reply=reply,
        questions=[_synth(tts, q, _CALLER_LEVEL) for q in QUESTIONS],
        interruptions=[_synth(tts, t, _CALLER_LEVEL) for t in INTERRUPTIONS],
        backchannels=[_synth(tts, t, _CALLER_LEVEL) for t in BACKCHANNELS],
    )


def _onset(pcm: npt.NDArray[np.int16]) -> int:
    """First sample of the clip audible on a phone line: above -40 dBFS in a 5 ms window after 8 kHz
    G.711 (an /s/ that lives above 4 kHz never reaches the far end, so it cannot count)."""
    down, up = FrameResampler(SAMPLE_RATE, 8000), FrameResampler(8000, SAMPLE_RATE)
    phone = up.process(ulaw_decode(ulaw_encode(down.process(pcm))))
    shift = round(down.delay_samples * 2 + up.delay_samples)
    win = 80
    for start in range(shift, phone.size - win, win // 2):
        if rms_dbfs(phone[start : start + win]) > -40:
            return start - shift
    return 0


def _noise_events(rng: np.random.Generator, length: int) -> npt.NDArray[np.float64]:
    """Clicks and a door: impulsive sounds a caller's line picks up."""
    out = np.zeros(length)
    for _ in range(3):
        at = int(rng.integers(0, length - 200))
        out[at : at + 40] += rng.choice([-1, 1]) * 20000 * np.exp(-np.arange(40) / 8)
    door = int(rng.integers(0, length - 3200))
    burst = rng.normal(0, 8000, 3200) * np.exp(-np.arange(3200) / 600)
    out[door : door + 3200] += burst
    return out


@dataclass
class _Call:
    scenario: Scenario
    caller: npt.NDArray[np.int16]
    event_onset_ms: float | None
    line: PhoneLine
    params: dict[str, Any]


def _build_call(index: int, scenario: Scenario, clips: _Clips, settings: Settings) -> _Call:
    rng = np.random.default_rng(1000 + index)
    question = clips.questions[index % len(clips.questions)]
    lead = int(0.5 * SAMPLE_RATE)
    q_end = lead + question.size
    # The scripted engine answers at once, so the agent starts about one hangover after the question.
    agent_start = q_end + int((settings.turn_hangover_ms + 60) * SAMPLE_RATE / 1000)
    at = agent_start + int(rng.uniform(1.0, 4.0) * SAMPLE_RATE)
    total = agent_start + clips.reply.size + 4 * SAMPLE_RATE
    caller = np.zeros(total, dtype=np.float64)
    caller[lead:q_end] += question
    onset_ms: float | None = None
    if scenario == "interrupt":
        clip = clips.interruptions[index % len(clips.interruptions)]
    elif scenario == "backchannel":
        clip = clips.backchannels[index % len(clips.backchannels)]
    else:
        clip = None
    if clip is not None:
        caller[at : at + clip.size] += clip
        onset_ms = 1000.0 * (at + _onset(clip)) / SAMPLE_RATE
    if scenario == "noise":
        caller[agent_start : agent_start + clips.reply.size] += _noise_events(rng, clips.reply.size)
    speech_dbfs = rms_dbfs(question[np.abs(question) > 300])
    params = {
        "echo_delay_ms": float(rng.uniform(100, 300)),
        "echo_gain_db": float(rng.uniform(-20, -6)),
        "noise_dbfs": speech_dbfs - _SNR_DB,
    }
    line = PhoneLine(
        echo_delay_ms=params["echo_delay_ms"],
        echo_gain_db=params["echo_gain_db"],
        noise_dbfs=params["noise_dbfs"],
        seed=index,
    )
    return _Call(scenario, np.clip(caller, -32768, 32767).astype(np.int16), onset_ms, line, params)


def _measure(call: _Call, session: CallSession, outbound: npt.NDArray[np.int16]) -> dict[str, Any]:
    events = session.timeline.events
    started = next((e.media_ms for e in events if e.kind == "agent_audio_started"), None)
    onset = call.event_onset_ms
    after = [e for e in events if onset is None or e.media_ms >= onset - 20]
    pauses = [e for e in after if e.kind == "agent_paused"]
    stops = [e for e in after if e.kind == "barge_in"]
    turn = session.turns[0] if session.turns else None
    row: dict[str, Any] = {
        "scenario": call.scenario,
        **{k: round(v, 1) for k, v in call.params.items()},
        "onset_ms": onset,
        "paused": len(pauses),
        "stopped": bool(stops),
        "stop_time_ms": None,
        "truncation_error_ms": None,
    }
    if started is None or turn is None:
        row["error"] = "the agent never spoke"
        return row
    if call.scenario == "interrupt" and onset is not None and pauses:
        # agent_paused is stamped at the end of the inbound frame that decided it; the outbound
        # frame of the next slot, which starts right then, is the first silent one.
        row["stop_time_ms"] = round(pauses[0].media_ms - onset, 1)
    if turn.interrupted and turn.audio_end_ms is not None:
        # Played: the reply's samples on the outbound leg (the reply has no exact zeros, silence does).
        end = int((stops[0].media_ms if stops else session.media_ms) * SAMPLE_RATE / 1000)
        played_ms = 1000.0 * np.count_nonzero(outbound[: end + 320]) / SAMPLE_RATE
        row["truncation_error_ms"] = round(turn.audio_end_ms - played_ms, 1)
    return row


async def _run_call(
    call: _Call,
    engine: ScriptedEngine,
    settings: Settings,
    vad: SileroVad,
    asr: WhisperAsr,
    policy: BargeInPolicy,
) -> dict[str, Any]:
    vad.reset()
    engine_session = await engine.open_session(SessionConfig())

    async def transcribe(pcm: npt.NDArray[np.int16], prompt: str | None) -> SnippetTranscript:
        text, logprob = await asyncio.to_thread(asr.transcribe_scored, pcm, prompt=prompt)
        return SnippetTranscript(text, logprob)

    session = CallSession(
        call_id=f"bench-{call.scenario}",
        engine=engine_session,
        vad=vad,
        settings=settings,
        barge_in=policy,
        transcriber=transcribe,
    )
    await session.start()
    try:
        result = await run_file_call(
            session,
            call.caller,
            realtime=False,
            line=call.line,
            max_call_s=call.caller.size / SAMPLE_RATE + 5,
        )
    finally:
        await session.aclose()
    return _measure(call, session, result.outbound)


async def run_bargein_bench(settings: Settings, *, calls_per_scenario: int = 25) -> dict[str, Any]:
    """Run ``calls_per_scenario`` synthetic calls of each scenario and summarise them."""
    clips = _clips()
    engine = ScriptedEngine([ScriptedReply(REPLY, clips.reply)], user_text="(scripted)")
    vad = SileroVad.packaged()
    asr = WhisperAsr("whisper-tiny.en", threads=settings.asr_threads)
    policy = BargeInPolicy()
    rows = []
    started = time.perf_counter()
    counter = itertools.count()
    for scenario in SCENARIOS:
        for _ in range(calls_per_scenario):
            call = _build_call(next(counter), scenario, clips, settings)
            rows.append(await _run_call(call, engine, settings, vad, asr, policy))
    summary = _summarise(rows)
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    return {"summary": summary, "calls": rows, "table": _table(summary)}


def _rate(rows: list[dict[str, Any]], scenario: str, key: str) -> float:
    chosen = [r for r in rows if r["scenario"] == scenario]
    return 100.0 * sum(1 for r in chosen if r[key]) / max(1, len(chosen))


def _summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    stop_times = [r["stop_time_ms"] for r in rows if r["stop_time_ms"] is not None]
    errors = [abs(r["truncation_error_ms"]) for r in rows if r["truncation_error_ms"] is not None]
    return {
        "calls": len(rows),
        "stop_time_ms": summarize(stop_times),
        "truncation_error_ms_max": max(errors) if errors else None,
        "interrupt_recall_pct": round(_rate(rows, "interrupt", "stopped"), 1),
        "backchannel_false_stop_pct": round(_rate(rows, "backchannel", "stopped"), 1),
        "backchannel_pause_pct": round(_rate(rows, "backchannel", "paused"), 1),
        "echo_self_interruptions": sum(1 for r in rows if r["scenario"] == "echo" and r["stopped"]),
        "echo_pauses": sum(r["paused"] for r in rows if r["scenario"] == "echo"),
        "noise_false_stop_pct": round(_rate(rows, "noise", "stopped"), 1),
        "noise_pause_pct": round(_rate(rows, "noise", "paused"), 1),
        "errors": [r for r in rows if "error" in r],
    }


def _table(s: dict[str, Any]) -> str:
    st = s["stop_time_ms"]
    machine = f"{os.cpu_count()} cores ({platform.machine()})"
    return "\n".join(
        [
            f"barge-in on synthetic phone calls: {s['calls']} calls, {machine},",
            "  echo 100-300 ms / -6..-20 dB, hiss 15 dB below speech, G.711 u-law 8 kHz",
            f"  stop time, onset -> first silent outbound frame: p50 {st['p50']:.0f} ms,"
            f" p95 {st['p95']:.0f} ms, max {st['max']:.0f} ms (n={st['n']}; target p95 <= 100 ms)",
            f"  truncation error |audio_end_ms - played|, max: {s['truncation_error_ms_max']} ms"
            " (target <= 20 ms)",
            f"  true-interruption recall: {s['interrupt_recall_pct']:.1f} % (target >= 98 %)",
            f"  backchannel false stops: {s['backchannel_false_stop_pct']:.1f} % (target <= 2 %);"
            f" paused briefly on {s['backchannel_pause_pct']:.0f} %",
            f"  echo self-interruptions: {s['echo_self_interruptions']} (target 0);"
            f" pauses on echo: {s['echo_pauses']}",
            f"  noise false stops: {s['noise_false_stop_pct']:.1f} % (target <= 1 %);"
            f" paused briefly on {s['noise_pause_pct']:.0f} %",
            f"  calls that failed to run: {len(s['errors'])}; wall {s.get('wall_s', 0)} s",
        ]
    )
