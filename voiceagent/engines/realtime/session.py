"""One call's session on a remote worker, and its recovery when that worker goes away.

The session remembers what the worker would lose with its process: the caller audio not yet
answered, and how much of the current reply the media layer already has. When the connection
drops, it is placed on another worker (same conversation id, so the engine restores the earlier
turns from session memory), the unanswered audio is sent again, the reply is asked for again, and
the part of it already delivered is skipped. Ids are translated so the media layer sees one
response going on after a short gap. If no worker can take the call, the reply fails with an
``error`` event and a failed ``response.done``, and later sends raise :class:`EngineError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

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
from voiceagent.engines.items import new_id
from voiceagent.engines.realtime.codec import WireSession, decode_server, encode_client
from voiceagent.engines.realtime.rates import WireRates
from voiceagent.errors import EngineError, NoWorkerError, ProtocolError, VoiceAgentError

if TYPE_CHECKING:
    from voiceagent.engines.realtime.engine import RealtimeEngine

__all__ = ["RealtimeSession"]

logger = logging.getLogger(__name__)

# Audio resent after a failover goes in pieces the worker accepts (its message limit is 4 MiB).
_RESEND_CHUNK_BYTES = 256 * 1024
# Workers a new call tries when handshakes fail (a lost race for the last slot, a broken worker).
_HANDSHAKE_ATTEMPTS = 3
# A caller who talks this long without a turn ending is not replayed whole.
_MAX_KEPT_BYTES = 120 * 24000 * 2


@dataclass
class _Flight:
    """The response the media layer is waiting for, in its ids and in the current worker's."""

    rid: str
    server_rid: str | None
    item: str | None = None
    server_item: str | None = None
    audio_bytes: int = 0
    text_chars: int = 0
    skip_audio: int = 0
    skip_text: int = 0
    cancelled: bool = False
    retrying: bool = False


class RealtimeSession:
    """Implements :class:`voiceagent.engines.SpeechSession` over a WebSocket to a worker."""

    def __init__(self, engine: RealtimeEngine, config: SessionConfig) -> None:
        assert config.conversation_id is not None
        self.id = config.conversation_id
        self._engine = engine
        self._config = config
        self._rates = WireRates(config.input_sample_rate, config.output_sample_rate, engine.wire_sample_rate)
        self._wire = WireSession(self._wire_config())
        self._events: asyncio.Queue[ServerEvent] = asyncio.Queue()
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._failed: str | None = None
        # What a new worker needs to carry on (see the module docstring).
        self._pending: list[bytes] = []
        self._unanswered: list[bytes] = []
        self._transcripts_delivered = 0
        self._skip_transcripts = 0
        self._response_asked = False
        self._flight: _Flight | None = None
        self._item_ids: dict[str, str] = {}  # worker's item id -> the media layer's
        self.workers: list[str] = []
        self.failovers = 0

    # ---- opening ----------------------------------------------------------------------------------

    async def open(self) -> None:
        """Place the call and complete the handshake; the first event out is ``session.created``."""
        await self._connect()
        self._events.put_nowait(SessionCreated(self._config))
        self._reader = asyncio.create_task(self._read_loop(), name=f"{self.id}:realtime-read")

    async def _connect(self) -> None:
        refused: list[str] = []
        for _ in range(_HANDSHAKE_ATTEMPTS):
            ws, worker = await self._engine.connect(self.id, exclude=refused)
            try:
                await self._handshake(ws)
            except (ConnectionClosed, TimeoutError, ProtocolError) as exc:
                # E.g. two handshakes raced for a worker's last slot and this one lost: try another.
                await ws.close()
                logger.warning(
                    "worker %s failed the handshake: %s", worker, exc, extra={"session_id": self.id}
                )
                refused.append(worker)
                continue
            self._ws = ws
            self.workers.append(worker)
            return
        raise NoWorkerError(f"no worker completed the session handshake (tried {', '.join(refused)})")

    async def _handshake(self, ws: ClientConnection) -> None:
        async with asyncio.timeout(self._engine.timeout_s):
            first = decode_server(await ws.recv(), self._wire)
            if not isinstance(first, SessionCreated):
                raise ProtocolError(f"expected session.created, got {first!r}")
            await ws.send(
                encode_client(_without_conversation(SessionUpdate(self._wire_config())), self._wire)
            )
            while not isinstance(event := decode_server(await ws.recv(), self._wire), SessionUpdated):
                if isinstance(event, EngineErrorEvent):
                    raise ProtocolError(f"worker refused the session: {event.message}")

    # ---- SpeechSession ----------------------------------------------------------------------------

    async def send(self, event: ClientEvent) -> None:
        if self._failed is not None:
            raise EngineError(self._failed)
        for wire_event in self._to_wire(event):
            wire_event = self._record(wire_event)
            ws = self._ws
            if ws is None:
                continue  # reconnecting: what was recorded is replayed on the next worker
            with contextlib.suppress(ConnectionClosed):
                await ws.send(encode_client(_without_conversation(wire_event), self._wire))

    def _wire_config(self) -> SessionConfig:
        return replace(
            self._config,
            input_sample_rate=self._rates.wire_in_rate,
            output_sample_rate=self._rates.wire_out_rate,
        )

    def _to_wire(self, event: ClientEvent) -> list[ClientEvent]:
        """The event with its audio at the wire rate; a commit first sends the filter's tail."""
        if isinstance(event, InputAudioBufferAppend):
            audio = self._rates.to_wire(event.audio)
            return [InputAudioBufferAppend(audio)] if audio else []
        if isinstance(event, InputAudioBufferCommit):
            tail = self._rates.end_of_input()
            return [InputAudioBufferAppend(tail), event] if tail else [event]
        if isinstance(event, SessionUpdate):
            return [
                SessionUpdate(
                    replace(
                        event.session,
                        input_sample_rate=self._rates.wire_in_rate,
                        output_sample_rate=self._rates.wire_out_rate,
                    )
                )
            ]
        return [event]

    async def recv(self) -> ServerEvent:
        return await self._events.get()

    async def aclose(self) -> None:
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()

    # ---- client side bookkeeping ------------------------------------------------------------------

    def _record(self, event: ClientEvent) -> ClientEvent:
        """Note what a replay needs, and put the worker's ids into events that name them."""
        match event:
            case InputAudioBufferAppend(audio=audio):
                self._pending.append(audio)
                if sum(map(len, self._pending)) > _MAX_KEPT_BYTES:
                    self._pending.pop(0)
            case InputAudioBufferClear():
                self._pending.clear()
            case InputAudioBufferCommit():
                self._unanswered.append(b"".join(self._pending))
                self._pending.clear()
            case ResponseCreate():
                self._response_asked = True
            case ResponseCancel(response_id=rid):
                flight = self._flight
                if flight is not None and rid in (None, flight.rid):
                    flight.cancelled = True
                    return ResponseCancel(flight.server_rid)
            case ConversationItemTruncate(item_id=item):
                worker_item = next((k for k, v in self._item_ids.items() if v == item), item)
                return ConversationItemTruncate(worker_item, event.audio_end_ms, event.content_index)
            case SessionUpdate(session=config):
                # Rates stay as negotiated at open (the wire's); the rest is the media layer's to change.
                self._config = replace(
                    self._config, turn_detection=config.turn_detection, instructions=config.instructions
                )
                return SessionUpdate(self._wire_config())
        return event

    # ---- server events ----------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            await self._serve_connections()
        except Exception as exc:  # the media layer must hear of any failure, never wait forever
            logger.exception("realtime session failed", extra={"session_id": self.id})
            self._fail(f"realtime session failed: {exc!r}")

    async def _serve_connections(self) -> None:
        while True:
            ws = self._ws
            assert ws is not None
            with contextlib.suppress(ConnectionClosed):
                async for message in ws:
                    try:
                        event = decode_server(message, self._wire)
                    except ProtocolError as exc:
                        logger.warning("bad message from worker: %s", exc, extra={"session_id": self.id})
                        continue
                    if event is not None:
                        self._apply(event)
            if self._closing:
                return
            if not await self._failover():
                return

    def _apply(self, event: ServerEvent) -> None:
        out = self._translate(event)
        if out is not None:
            self._events.put_nowait(out)

    def _translate(self, event: ServerEvent) -> ServerEvent | None:
        flight = self._flight
        match event:
            case SessionCreated() | SessionUpdated() | InputAudioBufferCommitted():
                return None if isinstance(event, SessionCreated) else event
            case InputAudioTranscriptionCompleted():
                if self._skip_transcripts > 0:
                    self._skip_transcripts -= 1
                    return None
                self._transcripts_delivered += 1
                return event
            case ResponseCreated(response_id=rid):
                if flight is not None and flight.retrying:
                    flight.server_rid, flight.retrying = rid, False
                    return None
                self._flight, self._response_asked = _Flight(rid=rid, server_rid=rid), False
                return event
            case ConversationItemCreated(item=item) if item.role == "assistant" and flight is not None:
                if flight.item is not None:  # the retried reply: the media layer knows it already
                    flight.server_item = item.id
                    self._item_ids[item.id] = flight.item
                    return None
                flight.item = flight.server_item = item.id
                return event
            case ResponseOutputAudioDelta(response_id=rid, item_id=item, delta=delta):
                if flight is not None and rid == flight.server_rid and flight.item is not None:
                    # Skip (at the wire rate) what the lost worker already delivered of this reply.
                    cut = min(flight.skip_audio, len(delta))
                    flight.skip_audio -= cut
                    flight.audio_bytes += len(delta) - cut
                    rid, item, delta = flight.rid, flight.item, delta[cut:]
                audio = self._rates.from_wire(delta) if delta else b""
                return ResponseOutputAudioDelta(rid, item, audio) if audio else None
            case ResponseOutputAudioTranscriptDelta(response_id=rid, delta=text):
                if flight is None or rid != flight.server_rid or flight.item is None:
                    return event
                cut = min(flight.skip_text, len(text))
                flight.skip_text -= cut
                if cut == len(text):
                    return None
                flight.text_chars += len(text) - cut
                return ResponseOutputAudioTranscriptDelta(flight.rid, flight.item, text[cut:])
            case ResponseDone(response_id=rid) if flight is not None and rid == flight.server_rid:
                self._flight = None
                tail = self._rates.end_of_output()
                if tail and flight.item is not None:
                    self._events.put_nowait(ResponseOutputAudioDelta(flight.rid, flight.item, tail))
                output = tuple(self._media_item(i) for i in event.output)
                if event.status == "completed" or any(i.text for i in output):
                    self._unanswered.clear()
                    self._transcripts_delivered = 0
                return ResponseDone(flight.rid, event.status, event.reason, output, event.action)
            case ConversationItemTruncated(item_id=item):
                return ConversationItemTruncated(
                    self._item_ids.get(item, item), event.audio_end_ms, event.text
                )
        return event

    def _media_item(self, item: ConversationItem) -> ConversationItem:
        media_id = self._item_ids.get(item.id, item.id)
        return ConversationItem(media_id, item.role, item.text, item.status)

    # ---- failover ---------------------------------------------------------------------------------

    async def _failover(self) -> bool:
        """Carry the call over to another worker; False (and the call's reply failed) if none can."""
        lost = self.workers[-1] if self.workers else "?"
        logger.warning("lost worker %s; placing the call again", lost, extra={"session_id": self.id})
        self._ws = None
        for attempt in range(self._engine.reconnects):
            try:
                ws, worker = await self._engine.connect(self.id, exclude=self.workers)
                await self._handshake(ws)
            except (VoiceAgentError, ConnectionClosed, TimeoutError, OSError) as exc:
                logger.warning(
                    "failover attempt %d failed: %s", attempt + 1, exc, extra={"session_id": self.id}
                )
                if isinstance(exc, NoWorkerError):
                    await asyncio.sleep(0.2 * (attempt + 1))
                continue
            self.workers.append(worker)
            self.failovers += 1
            try:
                await self._replay(ws)
            except ConnectionClosed:
                continue
            self._ws = ws
            return True
        self._fail(f"worker {lost} was lost and no other worker could take the call")
        return False

    async def _replay(self, ws: ClientConnection) -> None:
        """Send the new worker what the lost one had not answered yet."""
        self._skip_transcripts = self._transcripts_delivered
        self._item_ids.clear()
        for audio in self._unanswered:
            await self._send_audio(ws, audio)
            await ws.send(encode_client(InputAudioBufferCommit(), self._wire))
        for audio in self._pending:
            await self._send_audio(ws, audio)
        flight = self._flight
        if flight is not None and not flight.cancelled:
            flight.retrying, flight.server_rid, flight.server_item = True, None, None
            flight.skip_audio, flight.skip_text = flight.audio_bytes, flight.text_chars
            await ws.send(encode_client(ResponseCreate(), self._wire))
        elif flight is not None:
            # Cancelled while its worker died: it will never finish there, so finish it here.
            self._flight = None
            self._events.put_nowait(ResponseDone(flight.rid, "cancelled", "client_cancelled"))
        elif self._response_asked:
            await ws.send(encode_client(ResponseCreate(), self._wire))

    async def _send_audio(self, ws: ClientConnection, audio: bytes) -> None:
        for start in range(0, len(audio), _RESEND_CHUNK_BYTES):
            chunk = InputAudioBufferAppend(audio[start : start + _RESEND_CHUNK_BYTES])
            await ws.send(encode_client(chunk, self._wire))

    def _fail(self, message: str) -> None:
        self._failed = message
        self._events.put_nowait(EngineErrorEvent(message, code="worker_unavailable"))
        flight, self._flight = self._flight, None
        if flight is not None:
            self._events.put_nowait(ResponseDone(flight.rid, "failed", message))
        elif self._response_asked:
            rid = new_id("resp")
            self._events.put_nowait(ResponseCreated(rid))
            self._events.put_nowait(ResponseDone(rid, "failed", message))


def _without_conversation(event: ClientEvent) -> ClientEvent:
    """The conversation id travels in the URL; a session.update without our extension suits any server."""
    if isinstance(event, SessionUpdate) and event.session.conversation_id is not None:
        return SessionUpdate(replace(event.session, conversation_id=None))
    return event
