"""A conversation continues on another engine instance: what failover relies on in a worker.

Two cascade engines (as two workers) share one session memory. A session opened with the same
``conversation_id`` on the second engine answers with the first engine's turns in its history.
"""

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

from voiceagent.agents import Message, RuleBrain, builtin_agent_path, load_agent
from voiceagent.config import load_settings
from voiceagent.engines.cascade import engine as engine_module
from voiceagent.engines.cascade.engine import CascadeEngine
from voiceagent.engines.events import (
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    ResponseCreate,
    ResponseDone,
    SessionConfig,
)
from voiceagent.memory import InProcessMemory


class _Asr:
    sample_rate = 16000
    next_text = ""

    def transcribe(self, pcm16: np.ndarray) -> str:
        return self.next_text


class _Tts:
    sample_rate = 24000

    def synthesize(self, text: str) -> np.ndarray:
        return np.full(len(text) * 24, 0.1, dtype=np.float32)


class _Brain(RuleBrain):
    histories: ClassVar[list[list[Message]]] = []

    async def respond(self, user_text: str, history: Sequence[Message]) -> AsyncGenerator[str, None]:
        _Brain.histories.append(list(history))
        async for piece in super().respond(user_text, history):
            yield piece


async def _turn(session: Any, asr: _Asr, text: str) -> None:
    asr.next_text = text
    await session.send(InputAudioBufferAppend(np.zeros(3200, dtype="<i2").tobytes()))
    await session.send(InputAudioBufferCommit())
    await session.send(ResponseCreate())
    while not isinstance(await asyncio.wait_for(session.recv(), 10), ResponseDone):
        pass


async def test_a_conversation_continues_on_another_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    _Brain.histories = []
    monkeypatch.setattr(engine_module, "build_brain", lambda agent, settings: _Brain(agent))
    agent, settings, memory = load_agent(builtin_agent_path()), load_settings(), InProcessMemory()
    asr = _Asr()
    first = CascadeEngine(asr=asr, tts=_Tts(), agent=agent, settings=settings, memory=memory)  # type: ignore[arg-type]
    second = CascadeEngine(asr=asr, tts=_Tts(), agent=agent, settings=settings, memory=memory)  # type: ignore[arg-type]
    config = SessionConfig(16000, 16000, conversation_id="conv_failover")
    lost = await first.open_session(config)
    await lost.recv()
    await _turn(lost, asr, "Hi, my name is Maria Lopez.")
    await _turn(lost, asr, "What are your opening hours?")  # remembers turn one as it starts
    # The first worker dies here: its session is never closed.
    resumed = await second.open_session(config)
    await resumed.recv()
    await _turn(resumed, asr, "Can I pay with PayPal?")
    history = " ".join(m.content for m in _Brain.histories[-1])
    assert "Maria" in history
    fresh = await second.open_session(SessionConfig(16000, 16000))
    await fresh.recv()
    await _turn(fresh, asr, "Can I pay with PayPal?")
    assert "Maria" not in " ".join(m.content for m in _Brain.histories[-1])
    for closing in (resumed, fresh, second, lost, first):
        await closing.aclose()
