"""The realtime engine against an in-process worker: events in order, wire-rate conversion, truncation."""

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from voiceagent.engines.events import (
    ClientEvent,
    ConversationItemCreated,
    ConversationItemTruncate,
    ConversationItemTruncated,
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    InputAudioTranscriptionCompleted,
    ResponseCreate,
    ResponseDone,
    ResponseOutputAudioDelta,
    ServerEvent,
    SessionConfig,
    SessionCreated,
    SessionUpdate,
)
from voiceagent.engines.realtime import RealtimeEngine
from voiceagent.worker.scripted import ScriptedWorkerConfig, ScriptedWorkerEngine, ScriptedWorkerSession
from voiceagent.worker.server import WorkerServer

REPLY_MS = 400


class _Keeping(ScriptedWorkerEngine):
    """Keeps the configs its sessions were updated to."""

    configs: list[SessionConfig]

    async def open_session(self, config: SessionConfig) -> ScriptedWorkerSession:
        session = await super().open_session(config)
        original = session.send

        async def send(event: ClientEvent) -> None:
            if isinstance(event, SessionUpdate):
                self.configs.append(event.session)
            await original(event)

        session.send = send  # type: ignore[method-assign]
        return session


@pytest.fixture
async def worker() -> AsyncIterator[WorkerServer]:
    engine = _Keeping(ScriptedWorkerConfig(reply_ms=REPLY_MS, chunk_ms=100, realtime=False))
    engine.configs = []
    server = WorkerServer(engine, capacity=2, token="t", worker_id="w")
    await server.start("127.0.0.1", 0)
    yield server
    await server.aclose()


async def _until_done(session: object) -> list[ServerEvent]:
    events: list[ServerEvent] = []
    while not events or not isinstance(events[-1], ResponseDone):
        events.append(await asyncio.wait_for(session.recv(), 5))  # type: ignore[attr-defined]
    return events


@pytest.mark.parametrize("wire_rate", [None, 24000])
async def test_a_turn_over_the_wire_at_either_rate(worker: WorkerServer, wire_rate: int | None) -> None:
    assert worker.url is not None
    engine = RealtimeEngine(url=worker.url, token="t", wire_sample_rate=wire_rate)
    session = await engine.open_session(SessionConfig(16000, 16000))
    assert await session.recv() == SessionCreated(SessionConfig(16000, 16000, conversation_id=session.id))
    tone = (np.sin(np.arange(16000) / 5) * 6000).astype("<i2")
    for start in range(0, tone.size, 320):  # 20 ms frames, as the media layer sends them
        await session.send(InputAudioBufferAppend(tone[start : start + 320].tobytes()))
    await session.send(InputAudioBufferCommit())
    await session.send(ResponseCreate())
    events = await _until_done(session)
    transcript = next(e for e in events if isinstance(e, InputAudioTranscriptionCompleted)).transcript
    assert transcript == "(caller audio 1000 ms)"  # the worker got all of it, whatever the wire rate
    audio = b"".join(e.delta for e in events if isinstance(e, ResponseOutputAudioDelta))
    assert abs(len(audio) // 2 - 16 * REPLY_MS) <= 2  # back at 16 kHz, within the filter's rounding
    done = events[-1]
    assert isinstance(done, ResponseDone)
    assert done.status == "completed"
    item = next(
        e.item.id for e in events if isinstance(e, ConversationItemCreated) and e.item.role == "assistant"
    )
    await session.send(ConversationItemTruncate(item, 100))
    truncated = await asyncio.wait_for(session.recv(), 5)
    assert isinstance(truncated, ConversationItemTruncated)
    assert truncated.item_id == item
    assert truncated.audio_end_ms == 100
    await session.aclose()
    await engine.aclose()
    assert isinstance(worker.engine, _Keeping)
    wire = worker.engine.configs[0]
    assert (wire.input_sample_rate, wire.output_sample_rate) == (wire_rate or 16000, wire_rate or 16000)
