"""A whole call from a WAV file: the engine, the media layer and the file bridge, and its report."""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from voiceagent.agents.definition import BargeInPolicy
from voiceagent.audio import SAMPLE_RATE, AudioClip, SileroVad, read_audio, resample, to_pipeline, write_wav
from voiceagent.bridges.file import run_file_call
from voiceagent.calllog import CallLogSink
from voiceagent.config import Settings
from voiceagent.engines.base import SpeechEngine
from voiceagent.engines.events import SessionConfig
from voiceagent.media.live import LiveCall, LiveCallRegistry
from voiceagent.media.recorder import write_stereo
from voiceagent.media.session import CallSession, TurnRecord
from voiceagent.store.writer import CallLogWriter

__all__ = ["CallReport", "call_file", "call_pcm"]


@dataclass
class CallReport:
    """What ``voiceagent call --json`` prints."""

    call_id: str
    user_text: str
    reply_text: str
    first_audio_ms: float | None
    turns: list[dict[str, Any]]
    duration_s: float
    wall_s: float
    ended_reason: str | None
    input: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    # The conversation as the engine holds it at the end: what the caller said and what was heard.
    history: list[dict[str, str]] = field(default_factory=list)
    outbound: npt.NDArray[np.int16] | None = field(default=None, repr=False)
    inbound: npt.NDArray[np.int16] | None = field(default=None, repr=False)

    def as_json(self, *, with_events: bool = False) -> dict[str, Any]:
        data = asdict(self)
        data.pop("outbound")
        data.pop("inbound")
        if not with_events:
            data.pop("events")
        return data


def _turn_dict(turn: TurnRecord) -> dict[str, Any]:
    return {
        "index": turn.index,
        "user_text": turn.user_text,
        "reply_text": turn.spoken_text,
        "speech_start_ms": round(turn.speech_start_ms, 1),
        "speech_end_ms": None if turn.speech_end_ms is None else round(turn.speech_end_ms, 1),
        "first_audio_ms": None if turn.first_audio_ms is None else round(turn.first_audio_ms, 1),
        "interrupted": turn.interrupted,
        "audio_end_ms": turn.audio_end_ms,
        "status": turn.status,
        "action": turn.action,
    }


async def call_pcm(
    engine: SpeechEngine,
    caller: npt.NDArray[np.int16],
    settings: Settings,
    *,
    vad: SileroVad | None = None,
    realtime: bool = True,
    barge_in: BargeInPolicy | None = None,
    call_log: CallLogWriter | None = None,
    agent_name: str | None = None,
    live: LiveCallRegistry | None = None,
) -> CallReport:
    """Run one call with ``caller`` (16 kHz mono PCM16) as the caller's side of the line.

    With ``live``, the call is listed there while it runs and can be hung up from it (the console).
    """
    vad = vad or SileroVad.packaged()
    vad.reset()
    call_id = f"call_{uuid.uuid4().hex[:20]}"
    sink = CallLogSink(call_log, call_id) if call_log is not None else None
    if sink is not None:
        sink.started(channel="file", agent=agent_name)
    engine_session = await engine.open_session(SessionConfig(SAMPLE_RATE, SAMPLE_RATE))
    session = CallSession(
        call_id=call_id,
        engine=engine_session,
        vad=vad,
        settings=settings,
        barge_in=barge_in,
        transcriber=getattr(engine, "transcribe", None),
        on_event=sink.event if sink is not None else None,
    )
    await session.start()

    async def hang_up(reason: str) -> None:
        # The file bridge stops at the next frame once a reason is set and no agent audio is queued.
        if session.ended_reason is None:
            session.ended_reason = reason

    listing = LiveCall(call_id, "file", datetime.now(UTC), agent=agent_name)
    try:
        with (
            live.registered(listing, hang_up=hang_up, turns=lambda: len(session.turns))
            if live
            else nullcontext()
        ):
            result = await run_file_call(session, caller, realtime=realtime, max_call_s=settings.max_call_s)
    finally:
        await session.aclose()
        if sink is not None:
            sink.turns(session.turns, session.played_ms)
            sink.ended(session.ended_reason or "completed")
    history = [{"role": m.role, "content": m.content} for m in getattr(engine_session, "history", [])]
    turns = [_turn_dict(t) for t in session.turns]
    answered = [t for t in turns if t["user_text"]]
    first = next((t["first_audio_ms"] for t in turns if t["first_audio_ms"] is not None), None)
    warnings = [] if turns else ["no caller speech was detected; the agent had nothing to answer"]
    return CallReport(
        call_id=call_id,
        user_text=" ".join(t["user_text"] for t in answered),
        reply_text=" ".join(t["reply_text"] for t in answered if t["reply_text"]),
        first_audio_ms=first,
        turns=turns,
        duration_s=result.duration_s,
        wall_s=round(result.wall_s, 3),
        ended_reason=session.ended_reason,
        warnings=warnings,
        events=session.timeline.as_dicts(),
        history=history,
        outbound=result.outbound,
        inbound=result.inbound,
    )


async def call_file(
    engine: SpeechEngine,
    path: Path,
    settings: Settings,
    *,
    out: Path | None = None,
    record: Path | None = None,
    vad: SileroVad | None = None,
    realtime: bool = True,
    barge_in: BargeInPolicy | None = None,
    call_log: CallLogWriter | None = None,
    agent_name: str | None = None,
    live: LiveCallRegistry | None = None,
) -> CallReport:
    """Read ``path`` (any rate, any channel count), run the call, write the reply at the input's rate."""
    clip: AudioClip = read_audio(path)
    report = await call_pcm(
        engine,
        to_pipeline(clip),
        settings,
        vad=vad,
        realtime=realtime,
        barge_in=barge_in,
        call_log=call_log,
        agent_name=agent_name,
        live=live,
    )
    report.input = {
        "path": str(path),
        "sample_rate": clip.sample_rate,
        "channels": clip.channels,
        "duration_s": round(clip.duration_s, 3),
    }
    if out is not None and report.outbound is not None:
        write_wav(out, resample(report.outbound, SAMPLE_RATE, clip.sample_rate), clip.sample_rate)
    if record is not None and report.inbound is not None and report.outbound is not None:
        write_stereo(record, report.inbound, report.outbound, SAMPLE_RATE)
        if call_log is not None:
            CallLogSink(call_log, report.call_id).recording(str(Path.cwd() / record), report.duration_s)
    return report
