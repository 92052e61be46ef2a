"""`voiceagent worker --engine e2e` (the speech LM, tiny random weights, CPU) serves the realtime engine."""

import asyncio
import json
import os
import sys

import numpy as np
import pytest

from voiceagent.engines.events import (
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    ResponseCreate,
    ResponseDone,
    ResponseOutputAudioDelta,
    ServerEvent,
    SessionConfig,
    SessionCreated,
)
from voiceagent.engines.realtime import RealtimeEngine

pytestmark = pytest.mark.slow


async def test_an_e2e_worker_answers_over_the_protocol() -> None:
    env = {**os.environ, "VOICEAGENT_WORKER_TOKEN": "e2e-token", "VOICEAGENT_WORKER_CAPACITY": "2"}
    env.pop("VOICEAGENT_REDIS_URL", None)
    cmd = [sys.executable, "-m", "voiceagent", "worker", "--engine", "e2e", "--device", "cpu", "--port", "0"]
    worker = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=asyncio.subprocess.PIPE)
    try:
        assert worker.stdout is not None
        line = await asyncio.wait_for(worker.stdout.readline(), 120)
        engine = RealtimeEngine(url=json.loads(line)["url"], token="e2e-token")
        session = await engine.open_session(SessionConfig(16000, 16000))
        assert isinstance(await session.recv(), SessionCreated)
        speech = (np.random.default_rng(0).standard_normal(8000) * 3000).astype("<i2").tobytes()
        await session.send(InputAudioBufferAppend(speech))
        await session.send(InputAudioBufferCommit())
        await session.send(ResponseCreate())
        events: list[ServerEvent] = []
        while not events or not isinstance(events[-1], ResponseDone):
            events.append(await asyncio.wait_for(session.recv(), 60))
        done = events[-1]
        assert isinstance(done, ResponseDone)
        assert done.status == "completed"
        audio = b"".join(e.delta for e in events if isinstance(e, ResponseOutputAudioDelta))
        assert len(audio) > 0
        await session.aclose()
        await engine.aclose()
    finally:
        worker.terminate()
        assert await asyncio.wait_for(worker.wait(), 30) == 0
