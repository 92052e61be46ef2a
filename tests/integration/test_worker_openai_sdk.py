"""The official openai SDK's Realtime client drives `voiceagent worker` (cascade engine, real models).

It opens a session, streams a shipped caller question at 24 kHz, gets the agent's audio deltas and
transcript (checked against the FAQ answer, and the audio by an independent Whisper), cancels a
response, truncates the first reply to what was "heard", and closes.
"""

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from openai import AsyncOpenAI

from voiceagent.audio import resample
from voiceagent.engines.cascade import CascadeEngine
from voiceagent.engines.cascade.asr import WhisperAsr
from voiceagent.worker.server import WorkerServer

from .corpus import question, read_pcm, same_text, word_overlap

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

TOKEN = "sdk-test-token"
RATE = 24000


@pytest_asyncio.fixture(loop_scope="session")
async def worker(engine: CascadeEngine) -> AsyncIterator[WorkerServer]:
    server = WorkerServer(engine, capacity=2, token=TOKEN, worker_id="sdk", close_engine=False)
    await server.start("127.0.0.1", 0)
    yield server
    await server.aclose()


def _caller_audio_24k(name: str) -> bytes:
    return resample(read_pcm(question(name).path()), 16000, RATE).astype("<i2").tobytes()


async def _events_until(conn: Any, kind: str) -> list[Any]:
    seen: list[Any] = []
    while not seen or seen[-1].type != kind:
        seen.append(await asyncio.wait_for(conn.recv(), 60))
    return seen


async def _ask(conn: Any, name: str) -> None:
    audio = _caller_audio_24k(name)
    step = RATE * 2 // 10  # 100 ms per append, as a live caller would arrive
    for start in range(0, len(audio), step):
        await conn.input_audio_buffer.append(audio=base64.b64encode(audio[start : start + step]).decode())
    await conn.input_audio_buffer.commit()
    await conn.response.create()


async def test_openai_sdk_session_against_the_worker(
    worker: WorkerServer, answers: dict[str, str], transcriber: WhisperAsr
) -> None:
    assert worker.url is not None
    base_url = worker.url.replace("ws://", "http://").removesuffix("/realtime")
    client = AsyncOpenAI(base_url=base_url, api_key=TOKEN)
    async with client.realtime.connect(model="voiceagent-cascade") as conn:
        assert (await conn.recv()).type == "session.created"
        pcm = {"type": "audio/pcm", "rate": RATE}
        await conn.session.update(
            session={"type": "realtime", "audio": {"input": {"format": pcm}, "output": {"format": pcm}}}
        )
        updated = (await _events_until(conn, "session.updated"))[-1]
        assert updated.session.audio.output.format.rate == RATE

        await _ask(conn, "opening-hours")
        events = await _events_until(conn, "response.done")
        done = events[-1]
        assert done.response.status == "completed"
        heard = [
            e.transcript for e in events if e.type == "conversation.item.input_audio_transcription.completed"
        ]
        assert word_overlap(question("opening-hours").text, " ".join(heard)) >= 0.6
        reply = "".join(e.delta for e in events if e.type == "response.output_audio_transcript.delta")
        assert same_text(reply, answers["opening_hours"])
        audio = b"".join(base64.b64decode(e.delta) for e in events if e.type == "response.output_audio.delta")
        pcm16 = np.frombuffer(audio, dtype="<i2")
        assert pcm16.size > RATE  # more than a second of speech
        said = transcriber.transcribe(resample(pcm16, RATE, 16000))
        assert word_overlap(answers["opening_hours"], said) >= 0.6
        first_item = next(
            e.item.id for e in events if e.type == "conversation.item.created" and e.item.role == "assistant"
        )

        # Interrupt: a second question whose answer is cancelled before it is spoken...
        await _ask(conn, "returns")
        await _events_until(conn, "response.created")
        await conn.response.cancel()
        cancelled = (await _events_until(conn, "response.done"))[-1]
        assert cancelled.response.status == "cancelled"

        # ...and the first answer truncated to the 800 ms the caller heard of it.
        await conn.conversation.item.truncate(item_id=first_item, content_index=0, audio_end_ms=800)
        truncated = (await _events_until(conn, "conversation.item.truncated"))[-1]
        assert truncated.item_id == first_item
        assert truncated.audio_end_ms == 800
        heard_text = truncated.model_dump().get("transcript", "")
        assert 0 < len(heard_text.split()) < len(reply.split())
        assert reply.startswith(heard_text)
    await client.close()
    for _ in range(100):
        if worker.active == 0:
            break
        await asyncio.sleep(0.02)
    assert worker.active == 0
