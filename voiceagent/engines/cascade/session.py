"""One call's conversation on the cascade engine: buffer → ASR → brain → clause-by-clause TTS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from voiceagent.agents import Brain, Message
from voiceagent.audio import float_to_pcm16, resample
from voiceagent.engines.cascade.clauses import ClauseSplitter
from voiceagent.engines.events import (
    ClientEvent,
    ConversationItem,
    ConversationItemCreate,
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
from voiceagent.errors import VoiceAgentError

if TYPE_CHECKING:
    from voiceagent.engines.cascade.engine import CascadeEngine
    from voiceagent.memory import SessionMemory

__all__ = ["CascadeSession"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
# Audio deltas of 200 ms: small enough for a network hop later, few enough to stay cheap in-process.
_DELTA_MS = 200
# A caller who talks for minutes without a pause is not a turn we can transcribe in one go.
_MAX_BUFFER_S = 120


@dataclass
class _Turn:
    item: ConversationItem
    transcript: asyncio.Task[str] | None = None
    spoken: list[SpokenClause] = field(default_factory=list)
    remembered: bool = False


class CascadeSession:
    """Implements :class:`voiceagent.engines.SpeechSession` on the engine's shared models."""

    def __init__(
        self, engine: CascadeEngine, config: SessionConfig, brain: Brain, memory: SessionMemory | None = None
    ) -> None:
        self.id = config.conversation_id or new_id("sess")
        self._engine = engine
        self._config = config
        self._brain = brain
        self._memory = memory
        self._events: asyncio.Queue[ServerEvent] = asyncio.Queue()
        self._buffer = bytearray()
        self._turns: list[_Turn] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._response: asyncio.Task[None] | None = None
        self._response_id: str | None = None
        self._response_finished = True
        self._closed = False
        self._emit(SessionCreated(session=config))

    # ---- SpeechSession ------------------------------------------------------------------------

    async def send(self, event: ClientEvent) -> None:
        if self._closed:
            raise VoiceAgentError(f"session {self.id} is closed")
        match event:
            case InputAudioBufferAppend(audio=audio):
                self._append(audio)
            case InputAudioBufferCommit():
                self._commit()
            case InputAudioBufferClear():
                self._buffer.clear()
            case ResponseCreate():
                self._create_response()
            case ResponseCancel():
                await self._cancel_response()
            case ConversationItemTruncate():
                self._truncate(event)
            case ConversationItemCreate(item=item):
                self._add_text_turn(item)
            case SessionUpdate(session=config):
                self._config = config
                self._emit(SessionUpdated(session=config))

    async def recv(self) -> ServerEvent:
        return await self._events.get()

    async def aclose(self) -> None:
        self._closed = True
        tasks = list(self._tasks)
        if self._memory is not None:
            try:
                await self._remember(self._turns)
            except VoiceAgentError as exc:
                logger.warning("session memory failed at close: %s", exc, extra={"session_id": self.id})
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        closer = getattr(self._brain, "aclose", None)
        if closer is not None:
            await closer()

    # ---- history (what the engine believes was said) -----------------------------------------

    @property
    def history(self) -> list[Message]:
        """The conversation as the brain sees it: user transcripts and the heard part of replies."""
        return [Message(role=t.item.role, content=t.item.text) for t in self._turns if t.item.text]

    async def _history_before(self, first_pending: _Turn) -> list[Message]:
        """What the brain gets as history: session memory's bounded context when there is one."""
        before = self._turns[: self._turns.index(first_pending)]
        plain = [Message(role=t.item.role, content=t.item.text) for t in before if t.item.text]
        if self._memory is None:
            return plain
        try:
            await self._remember(before)
            return (await self._memory.context(self.id)).as_messages()
        except VoiceAgentError as exc:
            logger.warning(
                "session memory failed, using the call's own history: %s", exc, extra={"session_id": self.id}
            )
            return plain

    async def _remember(self, turns: list[_Turn]) -> None:
        """Store finished turns once, in order, with their final text (what was heard)."""
        assert self._memory is not None
        for turn in turns:
            if not turn.remembered and turn.item.status != "in_progress":
                if turn.item.text:
                    await self._memory.append(self.id, Message(role=turn.item.role, content=turn.item.text))
                turn.remembered = True

    def _unanswered(self) -> list[_Turn]:
        """User turns since the agent was last heard: one caller turn, maybe committed in parts."""
        pending: list[_Turn] = []
        for turn in reversed(self._turns):
            if turn.item.role == "assistant" and turn.item.text:
                break
            if turn.item.role == "user":
                pending.insert(0, turn)
        return pending

    # ---- handlers -----------------------------------------------------------------------------

    def _emit(self, event: ServerEvent) -> None:
        if not self._closed:
            self._events.put_nowait(event)

    def _spawn(self, coro: Coroutine[Any, Any, _T], name: str) -> asyncio.Task[_T]:
        task = asyncio.create_task(coro, name=f"{self.id}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _append(self, audio: bytes) -> None:
        limit = _MAX_BUFFER_S * self._config.input_sample_rate * 2
        self._buffer.extend(audio)
        if len(self._buffer) > limit:
            # Keep the most recent audio: the end of a monologue is what the caller wants answered.
            del self._buffer[: len(self._buffer) - limit]

    def _commit(self) -> None:
        turn = _Turn(ConversationItem(id=new_id("item"), role="user", status="in_progress"))
        audio, self._buffer = bytes(self._buffer), bytearray()
        self._turns.append(turn)
        self._emit(InputAudioBufferCommitted(item_id=turn.item.id))
        self._emit(ConversationItemCreated(item=turn.item))
        turn.transcript = self._spawn(self._transcribe(turn, audio), "asr")

    def _add_text_turn(self, item: ConversationItem) -> None:
        """A user turn that arrives as text (keypad digits): answered like a transcript."""
        if item.role != "user" or not item.text.strip():
            self._emit(EngineErrorEvent("only user items with text can be added", code="invalid_item"))
            return
        turn = _Turn(ConversationItem(id=item.id, role="user", text=item.text))
        self._turns.append(turn)
        self._emit(ConversationItemCreated(item=turn.item))

    async def _transcribe(self, turn: _Turn, audio: bytes) -> str:
        pcm = np.frombuffer(audio, dtype=np.int16)
        if self._config.input_sample_rate != self._engine.asr_sample_rate:
            pcm = resample(pcm, self._config.input_sample_rate, self._engine.asr_sample_rate)
        text = await self._engine.run_blocking(self._engine.asr.transcribe, pcm)
        turn.item = ConversationItem(id=turn.item.id, role="user", text=text)
        self._emit(InputAudioTranscriptionCompleted(item_id=turn.item.id, transcript=text))
        return text

    def _create_response(self) -> None:
        if self._response is not None and not self._response.done():
            self._emit(
                EngineErrorEvent(
                    "a response is already in progress", code="conversation_already_has_active_response"
                )
            )
            return
        response_id = new_id("resp")
        self._response_id, self._response_finished = response_id, False
        self._emit(ResponseCreated(response_id=response_id))
        self._response = self._spawn(self._respond(response_id), "response")

    async def _cancel_response(self) -> None:
        if self._response is not None and not self._response.done():
            self._response.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._response
            if not self._response_finished and self._response_id is not None:
                # Cancelled before its first step: the task never ran, so say it ended here.
                self._finish(ResponseDone(self._response_id, "cancelled", reason="client_cancelled"))

    def _truncate(self, event: ConversationItemTruncate) -> None:
        turn = next((t for t in self._turns if t.item.id == event.item_id), None)
        if turn is None or turn.item.role != "assistant":
            self._emit(EngineErrorEvent(f"no assistant item {event.item_id!r}", code="item_not_found"))
            return
        text = heard_text(turn.spoken, event.audio_end_ms)
        turn.item = ConversationItem(id=turn.item.id, role="assistant", text=text, status="incomplete")
        self._emit(
            ConversationItemTruncated(item_id=turn.item.id, audio_end_ms=event.audio_end_ms, text=text)
        )

    # ---- the response pipeline ----------------------------------------------------------------

    def _finish(self, done: ResponseDone) -> None:
        self._response_finished = True
        self._emit(done)

    async def _respond(self, response_id: str) -> None:
        pending = self._unanswered()
        try:
            # shield: cancelling this answer must not cancel the transcript a later answer reuses.
            texts = [
                t.item.text if t.transcript is None else await asyncio.shield(t.transcript) for t in pending
            ]
        except asyncio.CancelledError:
            self._finish(ResponseDone(response_id, "cancelled", reason="client_cancelled"))
            return
        user_text = " ".join(t for t in texts if t.strip())
        if not user_text:
            self._finish(ResponseDone(response_id, "cancelled", reason="no_input"))
            return
        history = await self._history_before(pending[0])
        turn = _Turn(ConversationItem(id=new_id("item"), role="assistant", status="in_progress"))
        self._turns.append(turn)
        self._emit(ConversationItemCreated(item=turn.item))
        status: Literal["completed", "cancelled", "failed"] = "completed"
        reason: str | None = None
        try:
            await self._speak(response_id, turn, user_text, history)
        except asyncio.CancelledError:
            status, reason = "cancelled", "client_cancelled"
        except VoiceAgentError as exc:
            logger.warning("response %s failed: %s", response_id, exc, extra={"session_id": self.id})
            status, reason = "failed", str(exc)
        if turn.item.status == "in_progress":
            text = " ".join(s.text for s in turn.spoken)
            done_status: Literal["completed", "incomplete"] = (
                "completed" if status == "completed" else "incomplete"
            )
            turn.item = ConversationItem(id=turn.item.id, role="assistant", text=text, status=done_status)
        action = getattr(self._brain, "last_action", "answer")
        self._finish(ResponseDone(response_id, status, reason=reason, output=(turn.item,), action=action))

    async def _speak(self, response_id: str, turn: _Turn, user_text: str, history: list[Message]) -> None:
        splitter = ClauseSplitter()
        offset_ms = 0.0
        async with contextlib.aclosing(self._brain.respond(user_text, history)) as pieces:
            async for piece in pieces:
                for clause in splitter.push(piece):
                    offset_ms = await self._say(response_id, turn, clause, offset_ms)
        for clause in splitter.flush():
            offset_ms = await self._say(response_id, turn, clause, offset_ms)

    async def _say(self, response_id: str, turn: _Turn, clause: str, offset_ms: float) -> float:
        audio = await self._engine.run_blocking(self._engine.tts.synthesize, clause)
        rate = self._config.output_sample_rate
        pcm = _to_pcm16(resample(audio, self._engine.tts_sample_rate, rate))
        duration_ms = 1000.0 * pcm.size / rate
        turn.spoken.append(SpokenClause(clause, offset_ms, duration_ms))
        item_id = turn.item.id
        self._emit(ResponseOutputAudioTranscriptDelta(response_id, item_id, clause + " "))
        step = rate * _DELTA_MS // 1000
        for start in range(0, pcm.size, step):
            self._emit(ResponseOutputAudioDelta(response_id, item_id, pcm[start : start + step].tobytes()))
        return offset_ms + duration_ms


def _to_pcm16(audio: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    return float_to_pcm16(audio).astype("<i2", copy=False)
