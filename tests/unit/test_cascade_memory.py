"""The cascade engine keeps its conversation in session memory: bounded, summarised, heard-only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import ClassVar

import numpy as np
import pytest

from voiceagent.agents import Message, RuleBrain, builtin_agent_path, load_agent
from voiceagent.config import load_settings
from voiceagent.engines.cascade import engine as engine_module
from voiceagent.engines.cascade.engine import CascadeEngine
from voiceagent.engines.events import (
    ConversationItemCreated,
    ConversationItemTruncate,
    InputAudioBufferAppend,
    InputAudioBufferCommit,
    ResponseCreate,
    ResponseDone,
    SessionConfig,
)
from voiceagent.memory import InProcessMemory


class ScriptedAsr:
    sample_rate = 16000

    def __init__(self) -> None:
        self.next_text = ""

    def transcribe(self, pcm16: np.ndarray) -> str:
        return self.next_text


class SilentTts:
    sample_rate = 24000

    def synthesize(self, text: str) -> np.ndarray:
        return np.full(len(text) * 240, 0.1, dtype=np.float32)  # 10 ms per character


class RecordingBrain(RuleBrain):
    histories: ClassVar[list[list[Message]]] = []

    async def respond(self, user_text: str, history: Sequence[Message]) -> AsyncGenerator[str, None]:
        RecordingBrain.histories.append(list(history))
        async for piece in super().respond(user_text, history):
            yield piece


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[list[Message]]:
    RecordingBrain.histories = []
    monkeypatch.setattr(engine_module, "build_brain", lambda agent, settings: RecordingBrain(agent))
    return RecordingBrain.histories


async def _turn(session, asr: ScriptedAsr, text: str, *, truncate_ms: int | None = None) -> None:
    asr.next_text = text
    await session.send(InputAudioBufferAppend(np.zeros(3200, dtype="<i2").tobytes()))
    await session.send(InputAudioBufferCommit())
    await session.send(ResponseCreate())
    item_id = None
    while True:
        event = await asyncio.wait_for(session.recv(), 10)
        if isinstance(event, ConversationItemCreated) and event.item.role == "assistant":
            item_id = event.item.id
        if isinstance(event, ResponseDone):
            break
    if truncate_ms is not None and item_id is not None:
        await session.send(ConversationItemTruncate(item_id=item_id, audio_end_ms=truncate_ms))


async def test_long_call_keeps_a_bounded_history_that_still_knows_turn_one(recorded) -> None:
    agent = load_agent(builtin_agent_path())
    asr = ScriptedAsr()
    memory = InProcessMemory(budget_chars=1200)
    engine = CascadeEngine(asr=asr, tts=SilentTts(), agent=agent, settings=load_settings(), memory=memory)  # type: ignore[arg-type]
    session = await engine.open_session(SessionConfig())
    await session.recv()  # session.created
    await _turn(session, asr, "Hi, my name is Maria Lopez and my order number is four four one seven.")
    for i in range(29):
        await _turn(session, asr, f"What are your opening hours on day {i}?")
    await session.aclose()
    await engine.aclose()
    sizes = [sum(len(m.content) for m in h) for h in recorded]
    assert max(sizes) <= 1200 + 200  # the budget, plus one turn that may not be folded yet
    last = recorded[-1]
    assert last[0].role == "system"
    assert "Maria" in last[0].content
    assert "4417" in last[0].content


async def test_memory_keeps_what_was_heard_not_what_was_generated(recorded) -> None:
    agent = load_agent(builtin_agent_path())
    asr = ScriptedAsr()
    memory = InProcessMemory(budget_chars=100_000)
    engine = CascadeEngine(asr=asr, tts=SilentTts(), agent=agent, settings=load_settings(), memory=memory)  # type: ignore[arg-type]
    session = await engine.open_session(SessionConfig())
    await session.recv()
    await _turn(session, asr, "What are your opening hours?", truncate_ms=300)
    await _turn(session, asr, "Can I pay with PayPal?")
    call_id = session.id
    await session.aclose()
    stored = await memory.messages(call_id)
    await engine.aclose()
    agent_lines = [m.content for m in stored if m.role == "assistant"]
    # 300 ms at 10 ms per character: about the first 30 characters of the answer were heard
    assert agent_lines[0].startswith("We're open")
    assert len(agent_lines[0]) < 40
    assert recorded[1][-1].content == agent_lines[0]  # the brain saw only the heard part
    assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]
