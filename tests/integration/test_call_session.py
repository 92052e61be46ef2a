"""The media layer on real audio: turn-taking, barge-in and the call's timeline, through whole file calls."""

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import pytest_asyncio

from voiceagent.config import Settings
from voiceagent.engines.cascade import CascadeEngine
from voiceagent.filecall import CallReport, call_pcm

from .corpus import (
    SILENT_PEAK,
    is_strict_word_prefix,
    ms_to_samples,
    peak,
    question,
    read_pcm,
    same_text,
    samples_to_ms,
    silence,
    speech_span,
    synthesize_pcm,
    word_overlap,
    words,
)

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

_FIRST, _SECOND = question("opening-hours"), question("payment")  # the first answer lasts ~8.5 s
# How long the agent talks before the caller cuts in.
_TALK_BEFORE_BARGE_IN_MS = 1500
# The VAD needs ~100 ms of speech to call it speech, plus a 32 ms window and a 20 ms frame.
_MAX_BARGE_IN_DELAY_MS = 200


def events_of(report: CallReport, kind: str) -> list[dict[str, Any]]:
    return [e for e in report.events if e["kind"] == kind]


def one_event(report: CallReport, kind: str, **data: Any) -> dict[str, Any]:
    found = [e for e in events_of(report, kind) if all(e["data"].get(k) == v for k, v in data.items())]
    assert len(found) == 1, (kind, data, report.events)
    return found[0]


def outbound_ms(report: CallReport, start_ms: float, end_ms: float) -> npt.NDArray[np.int16]:
    assert report.outbound is not None
    return report.outbound[ms_to_samples(start_ms) : ms_to_samples(end_ms)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def plain_call(engine: CascadeEngine, settings: Settings) -> CallReport:
    """The first question alone, answered in full: where the answer starts and how long it is."""
    return await call_pcm(engine, read_pcm(_FIRST.path()), settings, realtime=False)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def barge_in_call(engine: CascadeEngine, settings: Settings, plain_call: CallReport) -> CallReport:
    """The first question, then the second one while the agent is still answering the first."""
    first, second = read_pcm(_FIRST.path()), read_pcm(_SECOND.path())
    turn = plain_call.turns[0]
    onset_ms = turn["speech_end_ms"] + turn["first_audio_ms"] + _TALK_BEFORE_BARGE_IN_MS
    gap_ms = onset_ms - samples_to_ms(first.size) - samples_to_ms(speech_span(second)[0])
    assert gap_ms > 0
    caller = np.concatenate([first, silence(gap_ms), second])
    return await call_pcm(engine, caller, settings, realtime=False)


async def test_the_plain_call_answers_in_full(plain_call: CallReport, answers: dict[str, str]) -> None:
    # The baseline the barge-in test measures against.
    assert len(plain_call.turns) == 1
    turn = plain_call.turns[0]
    assert not turn["interrupted"]
    assert same_text(turn["reply_text"], answers[_FIRST.intent])
    assert turn["first_audio_ms"] > 0


async def test_barge_in_silences_the_agent_and_keeps_only_what_was_heard(
    plain_call: CallReport, barge_in_call: CallReport, answers: dict[str, str]
) -> None:
    report = barge_in_call
    assert len(report.turns) == 2, report.turns
    cut, next_turn = report.turns
    assert word_overlap(_FIRST.text, cut["user_text"]) >= 0.6
    assert word_overlap(_SECOND.text, next_turn["user_text"]) >= 0.6

    # The agent was talking, and fell silent (paused) within a VAD decision of the caller's onset;
    # the stop (flush, cancel, truncate) follows once the voice proves to be an interruption.
    started = one_event(report, "agent_audio_started", turn=0)["media_ms"]
    paused = one_event(report, "agent_paused")
    barge_in = one_event(report, "barge_in")
    assert paused["data"]["onset_ms"] == barge_in["data"]["onset_ms"] == next_turn["speech_start_ms"]
    assert 0 <= paused["media_ms"] - next_turn["speech_start_ms"] <= _MAX_BARGE_IN_DELAY_MS
    assert barge_in["media_ms"] >= paused["media_ms"]
    assert barge_in["data"]["reason"] == "speech"
    assert barge_in["data"]["dropped_samples"] > 0
    assert peak(outbound_ms(report, started, paused["media_ms"] - 20)) > 1000

    # From the pause until the agent answers the second question, the caller hears nothing.
    answer_ms = one_event(report, "agent_audio_started", turn=1)["media_ms"]
    assert answer_ms - paused["media_ms"] > 500
    assert peak(outbound_ms(report, paused["media_ms"] + 20, answer_ms)) < SILENT_PEAK

    # Truncated at what was played: more than nothing, less than the whole answer.
    assert cut["interrupted"]
    assert plain_call.outbound is not None
    full_start, full_end = speech_span(plain_call.outbound)
    assert 0 < cut["audio_end_ms"] < samples_to_ms(full_end - full_start)
    assert cut["audio_end_ms"] == pytest.approx(paused["media_ms"] - started, abs=40)
    truncated = one_event(report, "truncated")
    assert truncated["data"]["audio_end_ms"] == cut["audio_end_ms"]
    assert is_strict_word_prefix(cut["reply_text"], answers[_FIRST.intent]), cut["reply_text"]

    assert not next_turn["interrupted"]
    assert same_text(next_turn["reply_text"], answers[_SECOND.intent])


async def test_pause_shorter_than_the_hangover_is_one_turn(
    engine: CascadeEngine, settings: Settings, answers: dict[str, str]
) -> None:
    pause_ms = 300
    assert pause_ms < settings.turn_hangover_ms
    lead = silence(500)
    head = synthesize_pcm(engine.tts, "What are your opening hours")
    tail = synthesize_pcm(engine.tts, "on Saturday?")
    caller = np.concatenate([lead, head, silence(pause_ms), tail, silence(1000)])
    tail_end_ms = samples_to_ms(lead.size + head.size + ms_to_samples(pause_ms) + tail.size)

    report = await call_pcm(engine, caller, settings, realtime=False)

    assert len(report.turns) == 1, report.turns
    turn = report.turns[0]
    assert "saturday" in words(turn["user_text"]), turn["user_text"]
    assert word_overlap("what are your opening hours", turn["user_text"]) >= 0.6, turn["user_text"]
    assert same_text(turn["reply_text"], answers["opening_hours"])
    assert turn["speech_end_ms"] > tail_end_ms - 200
    # Nothing of the answer was played into the pause: it starts after the whole utterance.
    assert one_event(report, "agent_audio_started", turn=0)["media_ms"] >= tail_end_ms
    assert peak(outbound_ms(report, 0, tail_end_ms)) < SILENT_PEAK


async def test_timeline_clocks_never_go_back(plain_call: CallReport, barge_in_call: CallReport) -> None:
    for report in (plain_call, barge_in_call):
        media = [e["media_ms"] for e in report.events]
        wall = [e["monotonic_s"] for e in report.events]
        assert len(media) > 3
        assert media == sorted(media), [(e["kind"], e["media_ms"]) for e in report.events]
        assert wall == sorted(wall)
