"""CallSession on a scripted VAD and a fake engine: turn-taking, held answers, barge-in accounting."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voiceagent.agents.definition import BargeInPolicy
from voiceagent.config import load_settings
from voiceagent.engines.events import (
    ClientEvent,
    ConversationItem,
    ConversationItemCreate,
    ConversationItemCreated,
    ConversationItemTruncate,
    InputAudioBufferCommit,
    InputAudioTranscriptionCompleted,
    ResponseCancel,
    ResponseCreate,
    ResponseCreated,
    ResponseDone,
    ResponseOutputAudioDelta,
    ServerEvent,
)
from voiceagent.media.bargein import SnippetTranscript
from voiceagent.media.session import CallSession

FRAME = 320
SPEECH = np.full(FRAME, 5000, dtype=np.int16)
QUIET = np.zeros(FRAME, dtype=np.int16)


class LoudnessVad:
    """One 20 ms window per frame: speech when the frame is loud."""

    window_samples = FRAME

    def __init__(self) -> None:
        self._pending: list[float] = []

    def process(self, frame: np.ndarray) -> list[float]:
        return [0.9 if np.abs(frame).max() > 1000 else 0.0]

    def feed(self, frame: np.ndarray) -> None:  # the session's two-step path (SileroVad.feed)
        self._pending = self.process(frame)

    def collect(self) -> list[float]:
        pending, self._pending = self._pending, []
        return pending

    def reset(self) -> None:
        self._pending = []


class FakeEngine:
    """Answers every response.create at once with ``reply_ms`` of constant audio."""

    def __init__(self, reply_ms: int = 1000) -> None:
        self.reply_ms = reply_ms
        self.sent: list[ClientEvent] = []
        self.events: asyncio.Queue[ServerEvent] = asyncio.Queue()
        self.responses = 0
        self.closed = False

    async def send(self, event: ClientEvent) -> None:
        self.sent.append(event)
        if isinstance(event, InputAudioBufferCommit):
            self.events.put_nowait(InputAudioTranscriptionCompleted("item_u", "hello"))
        if isinstance(event, ResponseCreate):
            self.responses += 1
            rid, item = f"resp_{self.responses}", f"item_a{self.responses}"
            self.events.put_nowait(ResponseCreated(rid))
            self.events.put_nowait(ConversationItemCreated(ConversationItem(item, "assistant")))
            audio = np.full(16 * self.reply_ms, 7000 + self.responses, dtype="<i2")
            for start in range(0, audio.size, 3200):
                self.events.put_nowait(
                    ResponseOutputAudioDelta(rid, item, audio[start : start + 3200].tobytes())
                )
            self.events.put_nowait(ResponseDone(rid, "completed"))

    async def recv(self) -> ServerEvent:
        return await self.events.get()

    async def aclose(self) -> None:
        self.closed = True

    def of_type(self, kind: type) -> list[ClientEvent]:
        return [e for e in self.sent if isinstance(e, kind)]


class LateEngine(FakeEngine):
    """Holds back everything it would say until ``release`` — a slow engine or a slow network."""

    def __init__(self, reply_ms: int = 1000) -> None:
        super().__init__(reply_ms)
        self.held: list[ServerEvent] = []
        self.holding = True

    async def send(self, event: ClientEvent) -> None:
        await super().send(event)
        while self.holding and not self.events.empty():
            self.held.append(self.events.get_nowait())

    def release(self) -> None:
        self.holding = False
        for event in self.held:
            self.events.put_nowait(event)
        self.held.clear()


async def _run(session: CallSession, frames: list[np.ndarray]) -> np.ndarray:
    out = []
    for frame in frames:
        out.append(session.pull_outbound())
        session.push_inbound(frame)
        for _ in range(4):
            await asyncio.sleep(0)
    return np.concatenate(out)


def _frames(*parts: tuple[np.ndarray, int]) -> list[np.ndarray]:
    return [frame for frame, ms in parts for _ in range(ms // 20)]


@pytest.fixture
def settings():
    return load_settings(turn_hangover_ms=500, turn_speculate_ms=200, vad_min_speech_ms=100)


async def _session(engine: FakeEngine, settings, transcriber=None, policy=None) -> CallSession:
    session = CallSession(
        call_id="t",
        engine=engine,  # type: ignore[arg-type]
        vad=LoudnessVad(),  # type: ignore[arg-type]
        settings=settings,
        transcriber=transcriber,
        barge_in=policy,
        echo_guard=False,  # no echo in these calls; the guard has its own tests
    )
    await session.start()
    return session


async def test_prepared_answer_waits_for_the_hangover(settings) -> None:
    engine = FakeEngine()
    session = await _session(engine, settings)
    out = await _run(session, _frames((QUIET, 200), (SPEECH, 1000), (QUIET, 2000)))
    await session.aclose()
    first_loud = int(np.flatnonzero(out)[0]) / 16  # ms
    speech_end = 1200
    assert first_loud >= speech_end + 500, "answer played inside the hangover"
    assert first_loud <= speech_end + 520
    turn = session.turns[0]
    assert turn.speech_end_ms == speech_end
    assert turn.first_audio_ms == pytest.approx(first_loud - speech_end)
    # prepared during the pause: exactly one commit and one response
    assert len(engine.of_type(InputAudioBufferCommit)) == 1
    assert engine.responses == 1
    assert engine.closed


async def test_caller_resuming_in_the_hangover_drops_the_prepared_answer(settings) -> None:
    engine = FakeEngine(reply_ms=600)
    session = await _session(engine, settings)
    frames = _frames((SPEECH, 1000), (QUIET, 300), (SPEECH, 800), (QUIET, 1600))
    out = await _run(session, frames)
    await session.aclose()
    assert len(session.turns) == 1
    assert engine.responses == 2
    truncates = engine.of_type(ConversationItemTruncate)
    assert [(t.item_id, t.audio_end_ms) for t in truncates] == [("item_a1", 0)]
    assert engine.of_type(ResponseCancel)
    # nothing of the first answer was played; the second starts after the hangover
    assert not np.isin(out, [7001]).any()
    loud = np.flatnonzero(out == 7002)
    assert loud.size == 600 * 16
    assert loud[0] / 16 >= 2100 + 500
    assert session.turns[0].user_text == "hello hello"


async def test_barge_in_silences_next_frame_and_truncates_at_played_samples(settings) -> None:
    engine = FakeEngine(reply_ms=3000)
    session = await _session(engine, settings)
    # speech 0-1000, agent from ~1500; caller interrupts at 2300 for longer than interrupt_ms
    frames = _frames((SPEECH, 1000), (QUIET, 1300), (SPEECH, 1200), (QUIET, 1000))
    out = await _run(session, frames)
    await session.aclose()
    first_reply = out == 7001
    played = int(first_reply.sum())
    # the scripted VAD is sure (0.9 >= sure_onset_probability): one 20 ms window pauses the agent
    assert BargeInPolicy().sure_onset_probability <= 0.9
    onset_detect_ms = 2300 + 20
    # the frame that completes onset detection arrives by onset_detect_ms; nothing plays after it
    last_played_end_ms = (np.flatnonzero(first_reply)[-1] + 1) / 16
    assert last_played_end_ms == onset_detect_ms
    turn = session.turns[0]
    assert turn.interrupted
    assert turn.audio_end_ms == pytest.approx(played / 16)
    truncate = engine.of_type(ConversationItemTruncate)[0]
    assert truncate.audio_end_ms == int(played / 16)
    kinds = [e.kind for e in session.timeline.events]
    assert kinds.index("agent_paused") < kinds.index("barge_in") < kinds.index("truncated")
    # the caller's turn starts at the interruption's onset and is answered
    assert session.turns[1].speech_start_ms == 2300
    assert (out == 7002).any()


async def test_audio_of_a_cancelled_response_is_never_played(settings) -> None:
    engine = FakeEngine(reply_ms=1000)
    session = await _session(engine, settings)
    await _run(session, _frames((SPEECH, 600), (QUIET, 700)))
    # a stale delta from a response the session no longer plays
    engine.events.put_nowait(
        ResponseOutputAudioDelta("resp_old", "item_old", np.full(3200, 9999, "<i2").tobytes())
    )
    out = await _run(session, _frames((QUIET, 2000)))
    await session.aclose()
    assert not (out == 9999).any()


async def test_silence_only_call_has_no_turns(settings) -> None:
    engine = FakeEngine()
    session = await _session(engine, settings)
    out = await _run(session, _frames((QUIET, 2000)))
    await session.aclose()
    assert session.turns == []
    assert not out.any()
    assert engine.sent == []
    assert session.finished


async def test_answer_dropped_before_the_engine_acknowledged_it_is_still_truncated(settings) -> None:
    engine = LateEngine(reply_ms=600)
    session = await _session(engine, settings)
    # pause long enough to prepare an answer, then resume before the engine said anything
    await _run(session, _frames((SPEECH, 1000), (QUIET, 300), (SPEECH, 200)))
    assert engine.of_type(ResponseCancel)
    assert not engine.of_type(ConversationItemTruncate)  # the item is not known yet
    engine.release()
    out = await _run(session, _frames((SPEECH, 400), (QUIET, 1600)))
    await session.aclose()
    # the late item of the dropped answer gets truncated to nothing once it shows up ...
    truncates = [(t.item_id, t.audio_end_ms) for t in engine.of_type(ConversationItemTruncate)]
    assert truncates == [("item_a1", 0)]
    # ... none of its audio plays, and the answer to the whole turn does
    assert not (out == 7001).any()
    assert (out == 7002).sum() == 600 * 16
    assert session.turns[0].response_id == "resp_2"
    assert session.turns[0].status == "done"


async def _transcriber_saying(text: str):
    heard: list[int] = []

    async def transcribe(pcm: np.ndarray, prompt: str | None) -> SnippetTranscript:
        heard.append(pcm.size)
        assert prompt is not None
        assert "Uh-huh" in prompt
        return SnippetTranscript(text, -0.05)

    return transcribe, heard


@pytest.mark.parametrize(
    ("said", "stops"), [("Uh-huh.", False), ("okay", False), ("嗯", False), ("Wait!", True)]
)
async def test_short_utterance_resumes_on_backchannels_and_stops_on_words(
    settings, said: str, stops: bool
) -> None:
    engine = FakeEngine(reply_ms=3000)
    transcribe, heard = await _transcriber_saying(said)
    session = await _session(engine, settings, transcriber=transcribe)
    frames = _frames((SPEECH, 1000), (QUIET, 1300), (SPEECH, 300), (QUIET, 3000))
    out = await _run(session, frames)
    await session.aclose()
    assert heard, "the short utterance was not transcribed"
    first_reply = int((out == 7001).sum())
    kinds = [e.kind for e in session.timeline.events]
    assert "agent_paused" in kinds
    if stops:
        assert session.turns[0].interrupted
        assert first_reply < 3000 * 16
        assert "barge_in" in kinds
    else:
        # paused, then resumed: every sample of the answer is played, none twice
        assert not session.turns[0].interrupted
        assert first_reply == 3000 * 16
        assert "backchannel_ignored" in kinds
        assert len(session.turns) == 1
        assert engine.responses == 1


async def test_click_resumes_without_transcribing(settings) -> None:
    engine = FakeEngine(reply_ms=3000)
    transcribe, heard = await _transcriber_saying("should not be asked")
    session = await _session(engine, settings, transcriber=transcribe)
    # 80 ms of voice: enough to pause (onset 64 ms), below noise_max_ms (100 ms)
    out = await _run(session, _frames((SPEECH, 1000), (QUIET, 1300), (SPEECH, 80), (QUIET, 3000)))
    await session.aclose()
    assert heard == []
    assert int((out == 7001).sum()) == 3000 * 16
    assert "noise_ignored" in [e.kind for e in session.timeline.events]


async def test_barge_in_can_be_turned_off_per_agent(settings) -> None:
    engine = FakeEngine(reply_ms=3000)
    session = await _session(engine, settings, policy=BargeInPolicy(enabled=False))
    out = await _run(session, _frames((SPEECH, 1000), (QUIET, 1300), (SPEECH, 1200), (QUIET, 3000)))
    await session.aclose()
    assert int((out == 7001).sum()) == 3000 * 16
    assert not session.turns[0].interrupted


async def test_a_key_pressed_while_the_agent_talks_stops_it_and_is_answered(settings) -> None:
    engine = FakeEngine(reply_ms=3000)
    session = await _session(engine, settings)
    out = await _run(session, _frames((SPEECH, 1000), (QUIET, 1500)))  # the agent is talking by now
    assert (out == 7001).any()
    played_before = int((out == 7001).sum())
    session.press("0", method="rfc4733")
    out = np.concatenate([out, await _run(session, _frames((QUIET, 1500)))])
    await session.aclose()
    # Silenced at once: nothing more of the first answer, truncated at what was played.
    assert int((out == 7001).sum()) == played_before
    first, keyed = session.turns
    assert first.interrupted
    assert engine.of_type(ConversationItemTruncate)[0].audio_end_ms == int(played_before / 16)
    barge = [e for e in session.timeline.events if e.kind == "barge_in"]
    assert [e.data["reason"] for e in barge] == ["dtmf"]
    assert ("dtmf", {"digit": "0", "method": "rfc4733"}) in [
        (e.kind, e.data) for e in session.timeline.events
    ]
    # The key is a turn of its own, sent as text (no audio commit) and answered.
    created = [e for e in engine.sent if isinstance(e, ConversationItemCreate)]
    assert [(c.item.role, c.item.text) for c in created] == [("user", "[pressed 0]")]
    assert len(engine.of_type(InputAudioBufferCommit)) == 1  # only the spoken turn's
    assert keyed.user_text == "[pressed 0]"
    assert keyed.response_id == "resp_2"
    assert (out == 7002).any()
