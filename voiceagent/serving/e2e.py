"""The e2e engine: the speech LM behind the speech-session interface (DESIGN §4, §5).

`E2EEngine` owns one `EngineCore` and the thread that runs its loop; each `E2ESession` is one call
holding one slot. Sessions turn client events into engine inputs (thread-safe queues) and engine
outputs into server events; outputs come back to the asyncio loop through `call_soon_threadsafe`.
Caller audio streams into the slot's encoder as it arrives, so at `response.create` only the prompt
is left to prefill. A response is one turn: `response.created`, the assistant item, transcript and
audio deltas per decoder step (80 ms of speech each), and always one `response.done`.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from voiceagent.audio.frame_resample import FrameResampler
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
from voiceagent.engines.items import new_id
from voiceagent.errors import EngineError
from voiceagent.model import GriffinLimVocoder, SpeechLM
from voiceagent.serving.core import EngineConfig, EngineCore, EngineThread
from voiceagent.serving.protocol import (
    EOS,
    TURN_START,
    USER_TURN,
    AddCall,
    AppendAudio,
    CancelTurn,
    EngineOutput,
    RemoveCall,
    StartTurn,
    TruncateTurn,
    TurnFinished,
    TurnOutput,
    encode_text,
)

__all__ = ["E2EEngine", "E2ESession", "pcm16_to_float"]

logger = logging.getLogger(__name__)


def pcm16_to_float(audio: bytes) -> Tensor:
    """PCM16 little-endian bytes → `(N,)` float32 in [-1, 1] (a trailing odd byte is dropped)."""
    pcm = np.frombuffer(audio[: len(audio) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    return torch.from_numpy(pcm)


@dataclass
class _Response:
    id: str
    item_id: str
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    heard: str | None = None  # set by a truncation: what the caller heard
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )
    finished: bool = False


class E2ESession:
    """One call on the e2e engine; implements :class:`voiceagent.engines.SpeechSession`."""

    def __init__(self, engine: E2EEngine, config: SessionConfig) -> None:
        self.id = new_id("sess_e2e")
        self._engine = engine
        self._config = config
        self._events: asyncio.Queue[ServerEvent] = asyncio.Queue()
        self._responses: dict[str, _Response] = {}  # by response id, in order
        self._active: _Response | None = None
        self._closed = False
        # One streaming resampler per direction and rate pair: per-chunk resampling would put a
        # seam at every 80 ms chunk edge.
        self._resamplers: dict[tuple[str, int, int], FrameResampler] = {}
        self._emit(SessionCreated(session=config))

    def _resample(self, direction: str, audio: Tensor, from_rate: int, to_rate: int) -> Tensor:
        if from_rate == to_rate:
            return audio
        key = (direction, from_rate, to_rate)
        resampler = self._resamplers.get(key)
        if resampler is None:
            resampler = self._resamplers[key] = FrameResampler(from_rate, to_rate)
        samples = audio.detach().to("cpu", torch.float32).numpy()
        return torch.from_numpy(np.ascontiguousarray(resampler.process(samples), dtype=np.float32))

    # ---- SpeechSession ------------------------------------------------------------------------

    async def send(self, event: ClientEvent) -> None:
        if self._closed:
            raise EngineError(f"session {self.id} is closed")
        match event:
            case InputAudioBufferAppend(audio=audio):
                pcm = self._resample(
                    "in", pcm16_to_float(audio), self._config.input_sample_rate, self._engine.sample_rate
                )
                self._engine.core.submit(AppendAudio(self.id, pcm))
            case InputAudioBufferCommit():
                # The audio is already in the encoder; a commit only marks the turn in the history.
                item = ConversationItem(id=new_id("item_e2e"), role="user")
                self._emit(InputAudioBufferCommitted(item_id=item.id))
                self._emit(ConversationItemCreated(item=item))
            case InputAudioBufferClear():
                pass  # streamed audio cannot be taken back out of the encoder; nothing is buffered here
            case ResponseCreate():
                self._create_response()
            case ResponseCancel(response_id=response_id):
                active = self._active
                if active is not None and response_id in (None, active.id):
                    self._engine.core.submit(CancelTurn(self.id, active.id))
            case ConversationItemTruncate():
                self._truncate(event)
            case SessionUpdate(session=config):
                self._config = config
                self._emit(SessionUpdated(session=config))

    async def recv(self) -> ServerEvent:
        return await self._events.get()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._engine._forget(self)

    # ---- client events ------------------------------------------------------------------------

    def _emit(self, event: ServerEvent) -> None:
        if not self._closed:
            self._events.put_nowait(event)

    def _create_response(self) -> None:
        if self._active is not None:
            self._emit(
                EngineErrorEvent(
                    "a response is already in progress", code="conversation_already_has_active_response"
                )
            )
            return
        response = _Response(new_id("resp_e2e"), new_id("item_e2e"))
        self._responses[response.id] = self._active = response
        self._emit(ResponseCreated(response_id=response.id))
        self._emit(
            ConversationItemCreated(
                item=ConversationItem(response.item_id, "assistant", status="in_progress")
            )
        )
        prompt: tuple[int, ...] = (USER_TURN, TURN_START)
        if len(self._responses) == 1 and self._config.instructions:
            # The first turn carries the instructions, so the decoder context starts with them.
            prompt = (*encode_text(self._config.instructions), *prompt)
        self._engine.core.submit(
            StartTurn(self.id, response.id, prompt, max_steps=self._engine.max_response_steps)
        )

    def _truncate(self, event: ConversationItemTruncate) -> None:
        response = next((r for r in self._responses.values() if r.item_id == event.item_id), None)
        if response is None:
            self._emit(EngineErrorEvent(f"no assistant item {event.item_id!r}", code="item_not_found"))
            return
        # A step's token counts as heard once the middle of its 80 ms of speech has played.
        step_ms = self._engine.step_ms
        keep = max(0, int((event.audio_end_ms + step_ms / 2) // step_ms))
        response.heard = _text_of(response.tokens[:keep])
        self._engine.core.submit(TruncateTurn(self.id, response.id, keep))
        self._emit(
            ConversationItemTruncated(
                item_id=event.item_id, audio_end_ms=event.audio_end_ms, text=response.heard
            )
        )

    # ---- engine outputs (on the asyncio loop) -------------------------------------------------

    def _on_output(self, output: EngineOutput) -> None:
        if isinstance(output, TurnFinished) and not output.turn_id:
            self._emit(EngineErrorEvent(output.message or "engine refused the call", code="engine_full"))
            return
        response = self._responses.get(output.turn_id)
        if response is None or response.finished:
            return
        if isinstance(output, TurnOutput):
            self._on_step(response, output)
        else:
            self._on_finished(response, output)

    def _on_step(self, response: _Response, output: TurnOutput) -> None:
        response.tokens.append(output.token)
        if output.token < 256:
            delta = response.decoder.decode(bytes([output.token]))
            if delta:
                response.text += delta
                self._emit(ResponseOutputAudioTranscriptDelta(response.id, response.item_id, delta))
        if output.audio is not None:
            audio = self._resample(
                "out", output.audio, self._engine.sample_rate, self._config.output_sample_rate
            )
            pcm = (audio.clamp(-1.0, 1.0) * 32767.0).round().to(torch.int16).numpy().astype("<i2")
            self._emit(ResponseOutputAudioDelta(response.id, response.item_id, pcm.tobytes()))

    def _on_finished(self, response: _Response, output: TurnFinished) -> None:
        response.finished = True
        if self._active is response:
            self._active = None
        status: Literal["completed", "cancelled", "failed"] = "failed"
        reason = output.message
        if output.reason in ("eos", "length"):
            status, reason = "completed", None
        elif output.reason in ("cancelled", "truncated"):
            status, reason = "cancelled", "client_cancelled"
        text = response.heard if response.heard is not None else response.text
        item_status: Literal["completed", "incomplete"] = (
            "completed" if status == "completed" else "incomplete"
        )
        item = ConversationItem(response.item_id, "assistant", text=text, status=item_status)
        self._emit(ResponseDone(response.id, status, reason=reason, output=(item,)))


def _text_of(tokens: Sequence[int]) -> str:
    return bytes(t for t in tokens if t < 256 and t != EOS).decode("utf-8", errors="replace")


class E2EEngine:
    """The speech LM on the batched engine; implements :class:`voiceagent.engines.SpeechEngine`.

    The step loop starts with the first session (it needs the running asyncio loop to hand results
    back to) and stops in `aclose()`.
    """

    name = "e2e"

    def __init__(
        self,
        model: SpeechLM,
        config: EngineConfig | None = None,
        *,
        max_response_steps: int = 64,
        vocoder_iterations: int = 16,
    ) -> None:
        c = model.config
        self.sample_rate = c.sample_rate
        self.step_ms = 1000.0 * c.n_mel_out * c.hop_length / c.sample_rate
        self.max_response_steps = max_response_steps
        vocoder = GriffinLimVocoder(c, n_iter=vocoder_iterations)
        self.core = EngineCore(model, config, on_output=self._from_thread, vocoder=vocoder)
        self._sessions: dict[str, E2ESession] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: EngineThread | None = None

    async def open_session(self, config: SessionConfig) -> E2ESession:
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = EngineThread(self.core)
        session = E2ESession(self, config)
        self._sessions[session.id] = session
        self.core.submit(AddCall(session.id))
        return session

    async def aclose(self) -> None:
        for session in list(self._sessions.values()):
            await session.aclose()
        thread, self._thread = self._thread, None
        if thread is not None:
            self.core.stop()
            for _ in range(2000):  # wait without blocking the loop: at most one step, usually
                if not thread.alive:
                    break
                await asyncio.sleep(0.005)
            thread.close(timeout_s=1.0)

    def _forget(self, session: E2ESession) -> None:
        self._sessions.pop(session.id, None)
        self.core.submit(RemoveCall(session.id))

    def _from_thread(self, outputs: Sequence[EngineOutput]) -> None:
        """Called on the engine thread: hand the outputs to the asyncio loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._dispatch, list(outputs))
        except RuntimeError:  # the loop closed between the check and the call
            logger.debug("engine outputs dropped: event loop closed")

    def _dispatch(self, outputs: list[EngineOutput]) -> None:
        for output in outputs:
            session = self._sessions.get(output.call_id)
            if session is not None:
                session._on_output(output)
