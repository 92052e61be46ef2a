import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from voiceagent.engines.events import (  # noqa: E402
    ConversationItemCreated,
    ConversationItemTruncate,
    ConversationItemTruncated,
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    ResponseCancel,
    ResponseCreate,
    ResponseCreated,
    ResponseDone,
    ResponseOutputAudioDelta,
    ServerEvent,
    SessionConfig,
)
from voiceagent.model import SpeechLM, preset  # noqa: E402
from voiceagent.serving import EngineConfig  # noqa: E402
from voiceagent.serving.e2e import E2EEngine, pcm16_to_float  # noqa: E402

CONFIG = dataclasses.replace(preset("tiny"), enc_layers=1, dec_layers=2, enc_window_frames=16)


@pytest.fixture
async def engine() -> AsyncIterator[E2EEngine]:
    torch.manual_seed(0)
    model = SpeechLM(CONFIG).eval()
    engine = E2EEngine(
        model,
        EngineConfig(max_slots=2, max_tokens=128, max_frames=64),
        max_response_steps=6,
        vocoder_iterations=2,
    )
    yield engine
    await engine.aclose()


def _speech(seconds: float, rate: int = 16000) -> bytes:
    rng = np.random.default_rng(0)
    return (rng.standard_normal(int(seconds * rate)) * 3000).astype("<i2").tobytes()


async def _until_done(session: object) -> list[ServerEvent]:
    events: list[ServerEvent] = []
    while not events or not isinstance(events[-1], ResponseDone):
        events.append(await asyncio.wait_for(session.recv(), 10))  # type: ignore[attr-defined]
    return events


async def test_a_response_streams_text_and_audio_then_done(engine: E2EEngine) -> None:
    session = await engine.open_session(SessionConfig(output_sample_rate=24000))
    await session.send(InputAudioBufferAppend(_speech(0.5)))
    await session.send(InputAudioBufferCommit())
    await session.send(ResponseCreate())
    events = await _until_done(session)
    types = [e.type for e in events]
    assert types[:4] == [
        "session.created",
        "input_audio_buffer.committed",
        "conversation.item.created",
        "response.created",
    ]
    assert types[4] == "conversation.item.created"
    audio = [e for e in events if isinstance(e, ResponseOutputAudioDelta)]
    assert len(audio) == 6  # one delta of 80 ms per step
    assert {len(a.delta) for a in audio} == {24000 * 2 * 80 // 1000}
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert done.status == "completed"
    assert done.output[0].status == "completed"
    created = next(e for e in events if isinstance(e, ResponseCreated))
    assert done.response_id == created.response_id
    await session.aclose()


async def test_cancel_ends_the_response_with_done_cancelled(engine: E2EEngine) -> None:
    engine.max_response_steps = 10_000 // 80
    session = await engine.open_session(SessionConfig())
    await session.send(InputAudioBufferAppend(_speech(0.3)))
    await session.send(ResponseCreate())
    while not isinstance(await asyncio.wait_for(session.recv(), 10), ResponseOutputAudioDelta):
        pass
    await session.send(ResponseCancel())
    events = await _until_done(session)
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert done.status == "cancelled"
    assert done.reason == "client_cancelled"
    assert done.output[0].status == "incomplete"
    # A new response may start once the old one is done.
    engine.max_response_steps = 2
    await session.send(ResponseCreate())
    assert (await _until_done(session))[-1].status == "completed"  # type: ignore[union-attr]


async def test_truncation_reports_the_heard_text_and_trims_the_context(engine: E2EEngine) -> None:
    session = await engine.open_session(SessionConfig())
    await session.send(InputAudioBufferAppend(_speech(0.3)))
    await session.send(ResponseCreate())
    events = await _until_done(session)
    item = next(
        e.item for e in events if isinstance(e, ConversationItemCreated) and e.item.role == "assistant"
    )
    await session.send(ConversationItemTruncate(item_id=item.id, audio_end_ms=200))
    truncated = await asyncio.wait_for(session.recv(), 10)
    assert isinstance(truncated, ConversationItemTruncated)
    assert truncated.audio_end_ms == 200
    call = engine.core.calls[session.id]  # read after the loop applied it: poll a little
    for _ in range(200):
        if call.self_len == call.turn_start + 3:  # 200 ms → 2.5 steps of 80 ms → 3 tokens heard
            break
        await asyncio.sleep(0.01)
    assert call.self_len == call.turn_start + 3


async def test_two_sessions_share_the_engine_and_a_third_is_refused(engine: E2EEngine) -> None:
    sessions = [await engine.open_session(SessionConfig()) for _ in range(3)]
    for s in sessions[:2]:
        await s.send(InputAudioBufferAppend(_speech(0.2)))
        await s.send(ResponseCreate())
    results = await asyncio.gather(*(_until_done(s) for s in sessions[:2]))
    assert [r[-1].status for r in results] == ["completed", "completed"]  # type: ignore[union-attr]
    assert (await asyncio.wait_for(sessions[2].recv(), 10)).type == "session.created"
    assert (await asyncio.wait_for(sessions[2].recv(), 10)).type == "error"


async def test_aclose_stops_the_loop_thread() -> None:
    before = set(threading.enumerate())
    engine = E2EEngine(SpeechLM(CONFIG).eval(), EngineConfig(max_slots=1, max_tokens=64, max_frames=32))
    session = await engine.open_session(SessionConfig())
    await session.send(InputAudioBufferAppend(_speech(0.2)))
    assert len(set(threading.enumerate()) - before) == 1
    await engine.aclose()
    assert set(threading.enumerate()) - before == set()


def test_pcm_helpers() -> None:
    pcm = np.array([0, 16384, -32768], dtype="<i2").tobytes() + b"\x01"
    assert pcm16_to_float(pcm).tolist() == [0.0, 0.5, -1.0]


async def test_instructions_open_the_first_turns_prompt(engine: E2EEngine) -> None:
    session = await engine.open_session(SessionConfig(instructions="Be brief."))
    await session.send(ResponseCreate())
    await _until_done(session)
    call = engine.core.calls[session.id]
    assert call.turn_start == len("Be brief.") + 2  # instructions, USER_TURN, TURN_START
