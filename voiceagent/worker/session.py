"""One WebSocket connection served on an engine session: JSON in, events to the engine, JSON out.

Three tasks per connection, owned here: the reader decodes client messages and hands them to the
engine; the pump moves the engine's events onto the outbound queue (where protocol errors join
them); the writer encodes and sends. G.711 sessions are converted at this edge, so engines only
ever see PCM16.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace

import numpy as np
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from voiceagent.audio import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from voiceagent.engines.base import SpeechEngine, SpeechSession
from voiceagent.engines.events import (
    ClientEvent,
    EngineErrorEvent,
    InputAudioBufferAppend,
    ResponseCreate,
    ResponseOutputAudioDelta,
    ServerEvent,
    SessionCreated,
    SessionUpdate,
)
from voiceagent.engines.items import new_id
from voiceagent.engines.realtime.codec import AudioFormat, WireSession, decode_client, encode_server
from voiceagent.errors import ProtocolError, VoiceAgentError
from voiceagent.worker.metrics import WorkerMetrics

__all__ = ["WorkerSession"]

logger = logging.getLogger(__name__)


def _to_pcm16(audio: bytes, fmt: AudioFormat) -> bytes:
    if fmt == "pcmu":
        return ulaw_decode(audio).astype("<i2").tobytes()
    if fmt == "pcma":
        return alaw_decode(audio).astype("<i2").tobytes()
    return audio


def _from_pcm16(audio: bytes, fmt: AudioFormat) -> bytes:
    if fmt == "pcm16":
        return audio
    pcm = np.frombuffer(audio, dtype="<i2").astype(np.int16)
    return (ulaw_encode(pcm) if fmt == "pcmu" else alaw_encode(pcm)).tobytes()


class WorkerSession:
    """Serves one client connection until it closes, the engine fails, or :meth:`stop` is called."""

    def __init__(
        self, ws: ServerConnection, engine: SpeechEngine, metrics: WorkerMetrics, wire: WireSession
    ) -> None:
        self.id = wire.id or new_id("sess")
        self._ws = ws
        self._engine = engine
        self._metrics = metrics
        self._wire = replace(wire, id=self.id)
        self._out: asyncio.Queue[ServerEvent] = asyncio.Queue()
        self._response_asked_at: float | None = None
        self._log = {"session_id": self.id}

    async def run(self) -> None:
        """Open the engine session and serve the connection; returns when either side is done."""
        try:
            session = await self._engine.open_session(self._wire.config)
        except VoiceAgentError as exc:
            await self._ws.send(encode_server(EngineErrorEvent(str(exc), code="engine_unavailable")))
            await self._ws.close(1011, "engine unavailable")
            return
        tasks = [
            asyncio.create_task(self._read(session), name=f"{self.id}:read"),
            asyncio.create_task(self._pump(session), name=f"{self.id}:pump"),
            asyncio.create_task(self._write(), name=f"{self.id}:write"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    logger.warning("session task failed: %r", task.exception(), extra=self._log)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._metrics.queue_depth.dec(self._out.qsize())
            await session.aclose()
            await self._ws.close()

    async def _read(self, session: SpeechSession) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in self._ws:
                try:
                    event, self._wire = decode_client(message, self._wire)
                except ProtocolError as exc:
                    self._metrics.protocol_errors.inc()
                    self._queue(EngineErrorEvent(str(exc), code="invalid_request_error"))
                    continue
                await self._deliver(session, event)

    async def _deliver(self, session: SpeechSession, event: ClientEvent) -> None:
        if isinstance(event, SessionUpdate) and event.session.turn_detection is not None:
            # No engine detects turns yet: say so instead of silently never answering.
            message = "turn_detection is not supported: commit turns with input_audio_buffer.commit"
            self._queue(EngineErrorEvent(message, code="unsupported_turn_detection"))
            event = SessionUpdate(replace(event.session, turn_detection=None))
            self._wire = replace(self._wire, config=event.session)
        if isinstance(event, InputAudioBufferAppend) and self._wire.input_format != "pcm16":
            event = InputAudioBufferAppend(_to_pcm16(event.audio, self._wire.input_format))
        if isinstance(event, ResponseCreate):
            self._response_asked_at = time.perf_counter()
        started = time.perf_counter()
        try:
            await session.send(event)
        except VoiceAgentError as exc:
            self._queue(EngineErrorEvent(str(exc), code="engine_error"))
        self._metrics.step.observe(time.perf_counter() - started)

    def _queue(self, event: ServerEvent) -> None:
        self._metrics.queue_depth.inc()
        self._out.put_nowait(event)

    async def _pump(self, session: SpeechSession) -> None:
        while True:
            self._queue(await session.recv())

    async def _write(self) -> None:
        while True:
            event = await self._out.get()
            self._metrics.queue_depth.dec()
            if isinstance(event, ResponseOutputAudioDelta):
                if self._response_asked_at is not None:
                    self._metrics.first_audio.observe(time.perf_counter() - self._response_asked_at)
                    self._response_asked_at = None
                if self._wire.output_format != "pcm16":
                    event = ResponseOutputAudioDelta(
                        event.response_id, event.item_id, _from_pcm16(event.delta, self._wire.output_format)
                    )
            elif isinstance(event, SessionCreated):
                self._wire = WireSession(
                    event.session,
                    self._wire.input_format,
                    self._wire.output_format,
                    self.id,
                    self._wire.model,
                )
            await self._ws.send(encode_server(event, self._wire))
