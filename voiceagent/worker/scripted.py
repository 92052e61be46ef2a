"""A light engine for tests and benchmarks of the worker pool (``voiceagent worker --engine scripted``).

It needs no models: each reply is a tone of fixed length, streamed at real time like a model that
generates as fast as it speaks, and its text is "Reply number N." where N counts the replies already
in session memory for the conversation. So a call re-placed on another worker after a failure can
be checked: with the conversation restored, the numbering goes on instead of starting again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from voiceagent.agents import Message
from voiceagent.engines.events import (
    ClientEvent,
    ConversationItem,
    ConversationItemCreated,
    ConversationItemTruncate,
    ConversationItemTruncated,
    EngineErrorEvent,
    InputAudioBufferAppend,
    InputAudioBufferClear,
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
    SessionUpdate,
    SessionUpdated,
)
from voiceagent.engines.items import SpokenClause, heard_text, new_id
from voiceagent.memory import SessionMemory

__all__ = ["ScriptedWorkerConfig", "ScriptedWorkerEngine", "ScriptedWorkerSession"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScriptedWorkerConfig:
    """How the scripted engine answers."""

    reply_ms: int = 1500
    chunk_ms: int = 100
    # False: emit the whole reply at once (for measuring transport, not pacing).
    realtime: bool = True
    tone_hz: float = 440.0


class ScriptedWorkerSession:
    """Implements :class:`voiceagent.engines.SpeechSession` with tone replies numbered from memory."""

    def __init__(
        self, engine: ScriptedWorkerEngine, config: SessionConfig, memory: SessionMemory | None
    ) -> None:
        self.id = config.conversation_id or new_id("sess")
        self._engine = engine
        self._config = config
        self._memory = memory
        self._events: asyncio.Queue[ServerEvent] = asyncio.Queue()
        self._buffered_bytes = 0
        self._user_items: list[str] = []
        self._spoken: dict[str, list[SpokenClause]] = {}
        self._response: asyncio.Task[None] | None = None
        # Emission time of every audio delta per response (benchmarks compare them with arrival).
        self.emitted_at: dict[str, list[float]] = {}
        self._events.put_nowait(SessionCreated(config))

    async def send(self, event: ClientEvent) -> None:
        match event:
            case InputAudioBufferAppend(audio=audio):
                self._buffered_bytes += len(audio)
            case InputAudioBufferClear():
                self._buffered_bytes = 0
            case InputAudioBufferCommit():
                self._commit()
            case ResponseCreate():
                if self._response is not None and not self._response.done():
                    message = "a response is already in progress"
                    self._events.put_nowait(
                        EngineErrorEvent(message, "conversation_already_has_active_response")
                    )
                    return
                rid = new_id("resp")
                self._events.put_nowait(ResponseCreated(rid))
                self._response = asyncio.create_task(self._respond(rid), name=f"{self.id}:response")
            case ResponseCancel():
                if self._response is not None and not self._response.done():
                    self._response.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._response
            case ConversationItemTruncate(item_id=item, audio_end_ms=end):
                text = heard_text(self._spoken.get(item, []), end)
                self._events.put_nowait(ConversationItemTruncated(item, end, text))
            case SessionUpdate(session=config):
                self._config = config
                self._events.put_nowait(SessionUpdated(config))

    def _commit(self) -> None:
        item = new_id("item")
        ms = 1000 * self._buffered_bytes // (2 * self._config.input_sample_rate)
        self._buffered_bytes = 0
        self._user_items.append(item)
        text = f"(caller audio {ms} ms)"
        self._events.put_nowait(InputAudioBufferCommitted(item))
        self._events.put_nowait(ConversationItemCreated(ConversationItem(item, "user", text)))
        self._events.put_nowait(InputAudioTranscriptionCompleted(item, text))

    async def _replies_so_far(self) -> int:
        if self._memory is None:
            return 0
        return sum(1 for m in await self._memory.messages(self.id) if m.role == "assistant")

    async def _respond(self, rid: str) -> None:
        c = self._engine.config
        item = new_id("item")
        text = f"Reply number {await self._replies_so_far() + 1}."
        rate = self._config.output_sample_rate
        audio = self._engine.tone(rate)
        self._spoken[item] = [SpokenClause(text, 0.0, float(c.reply_ms))]
        self._events.put_nowait(
            ConversationItemCreated(ConversationItem(item, "assistant", status="in_progress"))
        )
        self._events.put_nowait(ResponseOutputAudioTranscriptDelta(rid, item, text))
        status: Literal["completed", "cancelled"] = "completed"
        step = rate * c.chunk_ms // 1000
        times = self.emitted_at.setdefault(rid, [])
        started = time.monotonic()
        try:
            for i, start in enumerate(range(0, audio.size, step)):
                if c.realtime:
                    await asyncio.sleep(max(0.0, started + i * c.chunk_ms / 1000 - time.monotonic()))
                times.append(time.perf_counter())
                self._events.put_nowait(
                    ResponseOutputAudioDelta(rid, item, audio[start : start + step].tobytes())
                )
        except asyncio.CancelledError:
            status = "cancelled"
        done_item = ConversationItem(
            item, "assistant", text, "completed" if status == "completed" else "incomplete"
        )
        if status == "completed" and self._memory is not None:
            await self._memory.append(self.id, Message(role="user", content="(caller turn)"))
            await self._memory.append(self.id, Message(role="assistant", content=text))
        reason = None if status == "completed" else "client_cancelled"
        self._events.put_nowait(ResponseDone(rid, status, reason, (done_item,)))

    async def recv(self) -> ServerEvent:
        return await self._events.get()

    async def aclose(self) -> None:
        if self._response is not None:
            self._response.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._response


class ScriptedWorkerEngine:
    """Implements :class:`voiceagent.engines.SpeechEngine`; see the module docstring."""

    name = "scripted"

    def __init__(
        self, config: ScriptedWorkerConfig | None = None, memory: SessionMemory | None = None
    ) -> None:
        self.config = config or ScriptedWorkerConfig()
        self._memory = memory
        self._tones: dict[int, np.ndarray] = {}

    def tone(self, rate: int) -> np.ndarray:
        """The reply audio at ``rate`` (PCM16 little-endian), made once per rate."""
        if rate not in self._tones:
            t = np.arange(rate * self.config.reply_ms // 1000) / rate
            wave = 0.3 * np.sin(2 * np.pi * self.config.tone_hz * t)
            self._tones[rate] = (wave * 32767).astype("<i2")
        return self._tones[rate]

    async def open_session(self, config: SessionConfig) -> ScriptedWorkerSession:
        return ScriptedWorkerSession(self, config, self._memory)

    async def aclose(self) -> None:
        if self._memory is not None:
            await self._memory.aclose()
