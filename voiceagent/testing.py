"""Helpers for testing and benchmarking code built on voiceagent (no models needed).

:class:`ScriptedEngine` is a speech engine that answers every turn with audio you give it, so a
test or benchmark can measure the media layer alone, sample for sample.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from voiceagent.engines.events import (
    ClientEvent,
    ConversationItem,
    ConversationItemCreated,
    ConversationItemTruncate,
    ConversationItemTruncated,
    InputAudioBufferCommit,
    InputAudioBufferCommitted,
    InputAudioTranscriptionCompleted,
    ResponseCreate,
    ResponseCreated,
    ResponseDone,
    ResponseOutputAudioDelta,
    ResponseOutputAudioTranscriptDelta,
    ServerEvent,
    SessionConfig,
    SessionCreated,
)
from voiceagent.engines.items import SpokenClause, heard_text, new_id

__all__ = ["ScriptedEngine", "ScriptedReply", "ScriptedSession"]


@dataclass(frozen=True)
class ScriptedReply:
    """What the engine says: its text and its audio (PCM16 at the session's output rate)."""

    text: str
    audio: npt.NDArray[np.int16]


class ScriptedSession:
    """A :class:`voiceagent.engines.SpeechSession` that plays :class:`ScriptedReply` objects in turn."""

    def __init__(self, replies: list[ScriptedReply], user_text: str, config: SessionConfig) -> None:
        self._replies = itertools.cycle(replies)
        self._user_text = user_text
        self._config = config
        self._events: asyncio.Queue[ServerEvent] = asyncio.Queue()
        self._spoken: dict[str, list[SpokenClause]] = {}
        self.received: list[ClientEvent] = []
        self._events.put_nowait(SessionCreated(config))

    async def send(self, event: ClientEvent) -> None:
        self.received.append(event)
        if isinstance(event, InputAudioBufferCommit):
            item = new_id("item")
            self._events.put_nowait(InputAudioBufferCommitted(item))
            self._events.put_nowait(ConversationItemCreated(ConversationItem(item, "user", self._user_text)))
            self._events.put_nowait(InputAudioTranscriptionCompleted(item, self._user_text))
        elif isinstance(event, ResponseCreate):
            self._respond(next(self._replies))
        elif isinstance(event, ConversationItemTruncate) and event.item_id in self._spoken:
            text = heard_text(self._spoken[event.item_id], event.audio_end_ms)
            self._events.put_nowait(ConversationItemTruncated(event.item_id, event.audio_end_ms, text))

    def _respond(self, reply: ScriptedReply) -> None:
        rid, item = new_id("resp"), new_id("item")
        rate = self._config.output_sample_rate
        self._spoken[item] = [SpokenClause(reply.text, 0.0, 1000.0 * reply.audio.size / rate)]
        self._events.put_nowait(ResponseCreated(rid))
        self._events.put_nowait(
            ConversationItemCreated(ConversationItem(item, "assistant", status="in_progress"))
        )
        self._events.put_nowait(ResponseOutputAudioTranscriptDelta(rid, item, reply.text))
        step = rate // 5
        for start in range(0, reply.audio.size, step):
            chunk = reply.audio[start : start + step].astype("<i2")
            self._events.put_nowait(ResponseOutputAudioDelta(rid, item, chunk.tobytes()))
        done_item = ConversationItem(item, "assistant", reply.text)
        self._events.put_nowait(ResponseDone(rid, "completed", output=(done_item,)))

    async def recv(self) -> ServerEvent:
        return await self._events.get()

    async def aclose(self) -> None:
        pass


class ScriptedEngine:
    """A :class:`voiceagent.engines.SpeechEngine` whose sessions answer with fixed replies at once."""

    name = "scripted"

    def __init__(self, replies: list[ScriptedReply], *, user_text: str = "") -> None:
        if not replies:
            raise ValueError("ScriptedEngine needs at least one reply")
        self._replies = replies
        self._user_text = user_text

    async def open_session(self, config: SessionConfig) -> ScriptedSession:
        return ScriptedSession(self._replies, self._user_text, config)

    async def aclose(self) -> None:
        pass
