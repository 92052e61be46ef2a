"""A CascadeSession driven with protocol events on the real models, as the media layer drives it."""

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np
import numpy.typing as npt
import pytest

from voiceagent.agents import Action, AgentDefinition, Brain, Message, build_brain
from voiceagent.audio import SAMPLE_RATE, resample
from voiceagent.config import Settings
from voiceagent.engines.cascade import CascadeEngine
from voiceagent.engines.cascade.asr import WhisperAsr
from voiceagent.engines.cascade.session import CascadeSession
from voiceagent.engines.events import (
    ConversationItemCreated,
    ConversationItemTruncate,
    ConversationItemTruncated,
    EngineErrorEvent,
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    InputAudioBufferCommitted,
    InputAudioTranscriptionCompleted,
    ResponseCancel,
    ResponseCreate,
    ResponseCreated,
    ResponseDone,
    ResponseOutputAudioDelta,
    ResponseOutputAudioTranscriptDelta,
    ServerEvent,
    SessionConfig,
    SessionCreated,
)

from .corpus import (
    Question,
    is_strict_word_prefix,
    question,
    read_pcm,
    same_text,
    silence,
    synthesize_pcm,
    word_overlap,
)

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

_EVENT_TIMEOUT_S = 30.0
_CHUNK_MS = 20


class RecordingBrain:
    """The real brain, noting what the engine asked it (the user text and the history)."""

    def __init__(self, inner: Brain) -> None:
        self._inner = inner
        self.calls: list[tuple[str, list[Message]]] = []

    @property
    def greeting(self) -> str | None:
        return self._inner.greeting

    @property
    def last_action(self) -> Action:
        return self._inner.last_action

    def respond(self, user_text: str, history: Sequence[Message]) -> AsyncIterator[str]:
        self.calls.append((user_text, list(history)))
        return self._inner.respond(user_text, history)


# ---- driving a session ---------------------------------------------------------------------------


async def append(session: CascadeSession, pcm: npt.NDArray[np.int16]) -> None:
    """Send 16 kHz PCM16 in 20 ms chunks, as the media layer does."""
    step = SAMPLE_RATE * _CHUNK_MS // 1000
    for start in range(0, pcm.size, step):
        await session.send(InputAudioBufferAppend(pcm[start : start + step].tobytes()))


async def ask(session: CascadeSession, pcm: npt.NDArray[np.int16]) -> None:
    """One caller turn: its audio, the commit, and the request for an answer."""
    await append(session, pcm)
    await session.send(InputAudioBufferCommit())
    await session.send(ResponseCreate())


async def receive_until(session: CascadeSession, stop: Callable[[ServerEvent], bool]) -> list[ServerEvent]:
    """Events up to and including the first one ``stop`` accepts."""
    events: list[ServerEvent] = []
    while True:
        event = await asyncio.wait_for(session.recv(), _EVENT_TIMEOUT_S)
        events.append(event)
        if stop(event):
            return events


async def receive_response(session: CascadeSession) -> list[ServerEvent]:
    """Events up to and including the next ``response.done``."""
    return await receive_until(session, lambda e: isinstance(e, ResponseDone))


async def assert_quiet(session: CascadeSession, wait_s: float = 0.3) -> None:
    """Nothing more comes out of the session for ``wait_s``."""
    try:
        event = await asyncio.wait_for(session.recv(), wait_s)
    except TimeoutError:
        return
    pytest.fail(f"unexpected event after the response: {event}")


def index(events: list[ServerEvent], accept: Callable[[ServerEvent], bool]) -> int:
    matches = [i for i, e in enumerate(events) if accept(e)]
    assert len(matches) == 1, [type(e).__name__ for e in events]
    return matches[0]


def last_done(events: list[ServerEvent]) -> ResponseDone:
    done = events[-1]
    assert isinstance(done, ResponseDone)
    return done


def spoken_text(events: list[ServerEvent]) -> str:
    return "".join(e.delta for e in events if isinstance(e, ResponseOutputAudioTranscriptDelta))


def spoken_audio(events: list[ServerEvent]) -> npt.NDArray[np.int16]:
    deltas = [e.delta for e in events if isinstance(e, ResponseOutputAudioDelta)]
    assert all(len(d) % 2 == 0 for d in deltas), "audio deltas must be whole PCM16 samples"
    return np.frombuffer(b"".join(deltas), dtype="<i2").astype(np.int16)


def is_item(role: str) -> Callable[[ServerEvent], bool]:
    return lambda e: isinstance(e, ConversationItemCreated) and e.item.role == role


def shipped(name: str) -> tuple[Question, npt.NDArray[np.int16]]:
    asked = question(name)
    return asked, read_pcm(asked.path())


# ---- one whole turn ------------------------------------------------------------------------------


@pytest.mark.parametrize("output_rate", [16000, 24000])
async def test_one_turn_streams_the_faq_answer_in_protocol_order(
    engine: CascadeEngine, answers: dict[str, str], transcriber: WhisperAsr, output_rate: int
) -> None:
    asked, pcm = shipped("opening-hours")
    expected = answers[asked.intent]
    session = await engine.open_session(SessionConfig(SAMPLE_RATE, output_rate))
    try:
        await ask(session, pcm)
        events = await receive_response(session)
    finally:
        await session.aclose()

    assert isinstance(events[0], SessionCreated)
    committed = index(events, lambda e: isinstance(e, InputAudioBufferCommitted))
    user = index(events, is_item("user"))
    transcript = index(events, lambda e: isinstance(e, InputAudioTranscriptionCompleted))
    created = index(events, lambda e: isinstance(e, ResponseCreated))
    assistant = index(events, is_item("assistant"))
    deltas = [
        i
        for i, e in enumerate(events)
        if isinstance(e, ResponseOutputAudioDelta | ResponseOutputAudioTranscriptDelta)
    ]
    # The transcript and response.created race (ASR runs while the response waits for it); both
    # must come after the commit and before the answer.
    assert committed < user < transcript < assistant
    assert committed < created < assistant < min(deltas)
    assert max(deltas) == len(events) - 2

    commit_event, user_event = events[committed], events[user]
    transcript_event, created_event = events[transcript], events[created]
    assistant_event, done = events[assistant], last_done(events)
    assert isinstance(commit_event, InputAudioBufferCommitted)
    assert isinstance(user_event, ConversationItemCreated)
    assert isinstance(transcript_event, InputAudioTranscriptionCompleted)
    assert isinstance(created_event, ResponseCreated)
    assert isinstance(assistant_event, ConversationItemCreated)
    assert user_event.item.id == commit_event.item_id == transcript_event.item_id
    assert word_overlap(asked.text, transcript_event.transcript) >= 0.6, transcript_event.transcript
    for i in deltas:
        delta = events[i]
        assert isinstance(delta, ResponseOutputAudioDelta | ResponseOutputAudioTranscriptDelta)
        assert (delta.response_id, delta.item_id) == (created_event.response_id, assistant_event.item.id)

    assert (done.response_id, done.status, done.reason, done.action) == (
        created_event.response_id,
        "completed",
        None,
        "answer",
    )
    assert [item.id for item in done.output] == [assistant_event.item.id]
    assert done.output[0].status == "completed"
    assert same_text(done.output[0].text, expected)
    assert same_text(spoken_text(events), expected)

    audio = spoken_audio(events)
    duration_s = audio.size / output_rate
    # The packaged voice speaks about 0.3 s per word; a wrong rate or lost chunks leave this band.
    assert 0.15 <= duration_s / len(expected.split()) <= 0.6, duration_s
    # Exactly the clauses the TTS makes at its own rate, converted to the session's rate.
    clauses = [e.delta.strip() for e in events if isinstance(e, ResponseOutputAudioTranscriptDelta)]
    tts_s = sum(engine.tts.synthesize(clause).size for clause in clauses) / engine.tts.sample_rate
    assert duration_s == pytest.approx(tts_s, rel=0.01)
    heard = transcriber.transcribe(resample(audio, output_rate, SAMPLE_RATE))
    assert word_overlap(expected, heard) >= 0.6, heard


# ---- cancel, truncate, and what the conversation remembers ----------------------------------------


async def test_cancel_after_the_first_audio_ends_the_response_cancelled(
    engine: CascadeEngine, answers: dict[str, str]
) -> None:
    asked, pcm = shipped("returns")  # three sentences: plenty left to cancel after the first
    session = await engine.open_session(SessionConfig())
    try:
        await ask(session, pcm)
        await receive_until(session, lambda e: isinstance(e, ResponseOutputAudioDelta))
        await session.send(ResponseCancel())
        after = await receive_response(session)
        await assert_quiet(session)
    finally:
        await session.aclose()

    done = last_done(after)
    assert (done.status, done.reason) == ("cancelled", "client_cancelled")
    assert len(done.output) == 1
    assert done.output[0].status == "incomplete"
    # What was generated before the cancel; the media layer truncates it to what was heard.
    assert is_strict_word_prefix(done.output[0].text, answers[asked.intent]), done.output[0].text


async def test_truncated_reply_is_all_the_next_turn_remembers(
    engine: CascadeEngine, agent: AgentDefinition, settings: Settings, answers: dict[str, str]
) -> None:
    first, first_pcm = shipped("returns")
    second, second_pcm = shipped("payment")
    brain = RecordingBrain(build_brain(agent, settings))
    session = CascadeSession(engine, SessionConfig(), brain)
    try:
        await ask(session, first_pcm)
        first_audio = (await receive_until(session, lambda e: isinstance(e, ResponseOutputAudioDelta)))[-1]
        assert isinstance(first_audio, ResponseOutputAudioDelta)
        item_id = first_audio.item_id
        await session.send(ResponseCancel())
        await receive_response(session)
        await session.send(ConversationItemTruncate(item_id=item_id, audio_end_ms=500))
        truncated = await asyncio.wait_for(session.recv(), _EVENT_TIMEOUT_S)
        await ask(session, second_pcm)
        done = last_done(await receive_response(session))
        history = session.history
    finally:
        await session.aclose()

    assert isinstance(truncated, ConversationItemTruncated)
    assert (truncated.item_id, truncated.audio_end_ms) == (item_id, 500)
    # Half a second of the packaged voice is one or two words.
    assert is_strict_word_prefix(truncated.text, answers[first.intent]), truncated.text
    assert len(truncated.text.split()) <= 4, truncated.text
    assert done.status == "completed"
    assert same_text(done.output[0].text, answers[second.intent])

    assert len(brain.calls) == 2
    user_text, brain_history = brain.calls[1]
    assert [(m.role, m.content) for m in brain_history[1:]] == [("assistant", truncated.text)]
    assert brain_history[0].role == "user"
    assert word_overlap(first.text, brain_history[0].content) >= 0.6
    assert word_overlap(second.text, user_text) >= 0.6
    assert [m.role for m in history] == ["user", "assistant", "user", "assistant"]
    assert history[1].content == truncated.text
    assert same_text(history[3].content, answers[second.intent])


async def test_truncating_an_unknown_item_is_an_error(engine: CascadeEngine) -> None:
    session = await engine.open_session(SessionConfig())
    try:
        assert isinstance(await session.recv(), SessionCreated)
        await session.send(ConversationItemTruncate(item_id="item_nope", audio_end_ms=500))
        error = await asyncio.wait_for(session.recv(), _EVENT_TIMEOUT_S)
    finally:
        await session.aclose()
    assert isinstance(error, EngineErrorEvent)
    assert error.code == "item_not_found"
    assert "item_nope" in error.message


async def test_cancel_right_after_create_still_ends_the_response(engine: CascadeEngine) -> None:
    session = await engine.open_session(SessionConfig())
    try:
        assert isinstance(await session.recv(), SessionCreated)
        await session.send(ResponseCreate())
        await session.send(ResponseCancel())
        created = await asyncio.wait_for(session.recv(), _EVENT_TIMEOUT_S)
        done = await asyncio.wait_for(session.recv(), _EVENT_TIMEOUT_S)
    finally:
        await session.aclose()
    assert isinstance(created, ResponseCreated)
    assert isinstance(done, ResponseDone)
    assert done.response_id == created.response_id
    assert done.status == "cancelled"


# ---- turns that are not one clean utterance ------------------------------------------------------


async def test_silence_is_not_answered(engine: CascadeEngine) -> None:
    session = await engine.open_session(SessionConfig())
    try:
        await ask(session, silence(1000))
        events = await receive_response(session)
        await assert_quiet(session)
    finally:
        await session.aclose()
    done = last_done(events)
    assert (done.status, done.reason, done.output) == ("cancelled", "no_input", ())
    transcripts = [e.transcript for e in events if isinstance(e, InputAudioTranscriptionCompleted)]
    assert transcripts == [""]
    assert not any(is_item("assistant")(e) for e in events)
    assert not any(isinstance(e, ResponseOutputAudioDelta) for e in events)


async def test_turn_committed_in_two_parts_is_answered_as_one(
    engine: CascadeEngine, agent: AgentDefinition, settings: Settings, answers: dict[str, str]
) -> None:
    parts = ("Hello, I ordered a jacket last week.", "It still hasn't arrived. Where is my order?")
    pause = silence(300)
    brain = RecordingBrain(build_brain(agent, settings))
    session = CascadeSession(engine, SessionConfig(), brain)
    try:
        for part in parts:
            await append(session, np.concatenate([pause, synthesize_pcm(engine.tts, part), pause]))
            await session.send(InputAudioBufferCommit())
        await session.send(ResponseCreate())
        events = await receive_response(session)
    finally:
        await session.aclose()

    transcripts = [e.transcript for e in events if isinstance(e, InputAudioTranscriptionCompleted)]
    assert len(transcripts) == 2
    for part, transcript in zip(parts, transcripts, strict=True):
        assert word_overlap(part, transcript) >= 0.6, transcript
    assert [user_text for user_text, _ in brain.calls] == [" ".join(transcripts)]
    assert brain.calls[0][1] == []
    assert last_done(events).status == "completed"
    assert same_text(spoken_text(events), answers["order_status"])


@pytest.mark.parametrize("wait_for_created", [False, True], ids=["at-once", "after-created"])
async def test_cancel_while_waiting_for_the_transcript_keeps_the_transcript(
    engine: CascadeEngine, answers: dict[str, str], wait_for_created: bool
) -> None:
    asked, pcm = shipped("shipping")
    session = await engine.open_session(SessionConfig())
    try:
        await ask(session, pcm)
        before: list[ServerEvent] = []
        if wait_for_created:
            before = await receive_until(session, lambda e: isinstance(e, ResponseCreated))
        await session.send(ResponseCancel())
        await session.send(ResponseCreate())
        events = before + await receive_until(
            session, lambda e: isinstance(e, ResponseDone) and e.status == "completed"
        )
    finally:
        await session.aclose()

    if wait_for_created:
        # The cancel landed while the response waited for the ASR: it ends before any answer.
        assert not any(isinstance(e, InputAudioTranscriptionCompleted) for e in before)
        cancelled = index(events, lambda e: isinstance(e, ResponseDone) and e.status == "cancelled")
        cancelled_done = events[cancelled]
        assert isinstance(cancelled_done, ResponseDone)
        assert cancelled_done.reason == "client_cancelled"
        assert cancelled < index(events, is_item("assistant"))
    transcripts = [e for e in events if isinstance(e, InputAudioTranscriptionCompleted)]
    assert len(transcripts) == 1
    assert word_overlap(asked.text, transcripts[0].transcript) >= 0.6
    answered = last_done(events)
    assert same_text(answered.output[0].text, answers[asked.intent])
    assert same_text(spoken_text(events), answers[asked.intent])
