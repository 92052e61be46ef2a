"""JSON codec for the speech-session events (DESIGN §4), shared by the worker and the realtime client.

The wire format is the OpenAI Realtime API's: GA event names are written, and both the GA and the
beta names are read (``response.output_audio.delta`` and ``response.audio.delta``, ...), so the
official SDK can drive a worker and our client can drive a Realtime-compatible server. Audio travels
base64-encoded; the session's formats (PCM16 at 16 or 24 kHz, G.711 µ-law or A-law at 8 kHz) are
carried by :class:`WireSession`, which the worker uses to convert G.711 at its edge.

Server events we do not model (``response.output_item.added``, ``rate_limits.updated``, ...)
decode to ``None`` so a client can skip them; an unknown *client* event is a
:class:`~voiceagent.errors.ProtocolError`, which a server answers with an ``error`` event.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

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
from voiceagent.engines.items import new_id
from voiceagent.errors import ProtocolError

__all__ = [
    "PCM_RATES",
    "AudioFormat",
    "WireSession",
    "decode_client",
    "decode_server",
    "encode_client",
    "encode_server",
    "parse_session",
    "session_json",
]

AudioFormat = Literal["pcm16", "pcmu", "pcma"]
# PCM16 rates a worker accepts; the Realtime API itself only knows 24 kHz.
PCM_RATES = (16000, 24000)
_G711_RATE = 8000
_GA_FORMATS: dict[str, AudioFormat] = {"audio/pcm": "pcm16", "audio/pcmu": "pcmu", "audio/pcma": "pcma"}
_BETA_FORMATS: dict[str, AudioFormat] = {"pcm16": "pcm16", "g711_ulaw": "pcmu", "g711_alaw": "pcma"}
_GA_NAMES = {v: k for k, v in _GA_FORMATS.items()}


@dataclass(frozen=True)
class WireSession:
    """A session as negotiated on the wire: the engine's config plus the audio encodings."""

    # The Realtime API's default: PCM16 at 24 kHz both ways.
    config: SessionConfig = field(default_factory=lambda: SessionConfig(24000, 24000))
    input_format: AudioFormat = "pcm16"
    output_format: AudioFormat = "pcm16"
    id: str = ""
    model: str = "voiceagent"


# ---- sessions -------------------------------------------------------------------------------------


def _format(spec: Any, where: str) -> tuple[AudioFormat, int | None]:
    """(encoding, rate or None for 'keep') from a GA format object or a beta format string."""
    if isinstance(spec, str):
        if spec not in _BETA_FORMATS:
            raise ProtocolError(f"{where}: unknown audio format {spec!r}")
        fmt = _BETA_FORMATS[spec]
        return fmt, (24000 if fmt == "pcm16" else _G711_RATE)
    if not isinstance(spec, dict):
        raise ProtocolError(f"{where}: audio format must be an object or a string")
    kind = spec.get("type", "audio/pcm")
    if kind not in _GA_FORMATS:
        raise ProtocolError(f"{where}: unknown audio format {kind!r}")
    fmt = _GA_FORMATS[kind]
    if fmt != "pcm16":
        return fmt, _G711_RATE
    rate = spec.get("rate")
    if rate is not None and rate not in PCM_RATES:
        raise ProtocolError(f"{where}: PCM rate {rate!r} not supported (use 16000 or 24000)")
    return fmt, rate


def _turn_detection(value: Any) -> Literal["server_vad"] | None:
    if value is None:
        return None
    if isinstance(value, dict) and value.get("type") in ("server_vad", "semantic_vad"):
        return "server_vad"
    raise ProtocolError(f"turn_detection: expected null or an object with a type, got {value!r}")


def parse_session(obj: Any, current: WireSession | None = None) -> WireSession:
    """Apply a ``session`` object (GA or beta shape, possibly partial) on top of ``current``."""
    if not isinstance(obj, dict):
        raise ProtocolError("session must be a JSON object")
    wire = current or WireSession()
    config = wire.config
    in_fmt, out_fmt = wire.input_format, wire.output_format
    in_rate, out_rate = config.input_sample_rate, config.output_sample_rate
    turns = config.turn_detection
    audio = obj.get("audio")
    if isinstance(audio, dict):  # GA: audio.input.format / audio.output.format
        inp, out = audio.get("input") or {}, audio.get("output") or {}
        if "format" in inp:
            in_fmt, rate = _format(inp["format"], "session.audio.input.format")
            in_rate = rate or in_rate
        if "turn_detection" in inp:
            turns = _turn_detection(inp["turn_detection"])
        if "format" in out:
            out_fmt, rate = _format(out["format"], "session.audio.output.format")
            out_rate = rate or out_rate
    if "input_audio_format" in obj:  # beta
        in_fmt, rate = _format(obj["input_audio_format"], "session.input_audio_format")
        in_rate = rate or in_rate
    if "output_audio_format" in obj:
        out_fmt, rate = _format(obj["output_audio_format"], "session.output_audio_format")
        out_rate = rate or out_rate
    if "turn_detection" in obj:
        turns = _turn_detection(obj["turn_detection"])
    instructions = obj.get("instructions", config.instructions)
    if instructions is not None and not isinstance(instructions, str):
        raise ProtocolError("session.instructions must be a string")
    ours = obj.get("voiceagent") or {}
    conversation_id = ours.get("conversation_id", config.conversation_id) if isinstance(ours, dict) else None
    if conversation_id is not None and not isinstance(conversation_id, str):
        raise ProtocolError("session.voiceagent.conversation_id must be a string")
    config = SessionConfig(in_rate, out_rate, turns, instructions, conversation_id)
    model = obj.get("model", wire.model)
    return replace(
        wire, config=config, input_format=in_fmt, output_format=out_fmt, model=str(model or wire.model)
    )


def _format_json(fmt: AudioFormat, rate: int) -> dict[str, Any]:
    return {"type": _GA_NAMES[fmt], "rate": rate} if fmt == "pcm16" else {"type": _GA_NAMES[fmt]}


def session_json(wire: WireSession) -> dict[str, Any]:
    """The GA ``session`` object; our one extension (``voiceagent``) carries the conversation id."""
    c = wire.config
    turns = None if c.turn_detection is None else {"type": c.turn_detection}
    data: dict[str, Any] = {
        "type": "realtime",
        "object": "realtime.session",
        "model": wire.model,
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": _format_json(wire.input_format, c.input_sample_rate),
                "turn_detection": turns,
            },
            "output": {"format": _format_json(wire.output_format, c.output_sample_rate)},
        },
    }
    if wire.id:
        data["id"] = wire.id
    if c.instructions is not None:
        data["instructions"] = c.instructions
    if c.conversation_id is not None:
        data["voiceagent"] = {"conversation_id": c.conversation_id}
    return data


# ---- helpers --------------------------------------------------------------------------------------


def _load(data: str | bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"message is not JSON: {exc}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ProtocolError("message must be a JSON object with a string 'type'")
    return cast(dict[str, Any], obj)


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _b64decode(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise ProtocolError(f"{where}: audio must be a base64 string")
    try:
        audio = base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ProtocolError(f"{where}: audio is not valid base64") from exc
    return audio


def _b64(audio: bytes) -> str:
    return base64.b64encode(audio).decode("ascii")


def _str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{where}: '{key}' must be a non-empty string")
    return value


def _int(obj: dict[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(f"{where}: '{key}' must be a non-negative integer")
    return value


# ---- client -> server -----------------------------------------------------------------------------


def encode_client(event: ClientEvent, wire: WireSession | None = None) -> str:
    """One client event as a JSON text frame (``wire`` gives session.update its formats)."""
    match event:
        case InputAudioBufferAppend(audio=audio):
            return _dump({"type": event.type, "audio": _b64(audio)})
        case SessionUpdate(session=config):
            base = wire or WireSession()
            return _dump({"type": event.type, "session": session_json(replace(base, config=config))})
        case ResponseCancel(response_id=rid):
            return _dump({"type": event.type, **({"response_id": rid} if rid else {})})
        case ConversationItemTruncate(item_id=item, audio_end_ms=end, content_index=index):
            return _dump({"type": event.type, "item_id": item, "content_index": index, "audio_end_ms": end})
        case ConversationItemCreate(item=item):
            content = [{"type": "input_text", "text": item.text}]
            message = {"id": item.id, "type": "message", "role": item.role, "content": content}
            return _dump({"type": event.type, "item": message})
        case _:
            return _dump({"type": event.type})


_SIMPLE_CLIENT: dict[str, ClientEvent] = {
    "input_audio_buffer.commit": InputAudioBufferCommit(),
    "input_audio_buffer.clear": InputAudioBufferClear(),
    "response.create": ResponseCreate(),
}


def decode_client(data: str | bytes, current: WireSession | None = None) -> tuple[ClientEvent, WireSession]:
    """A client event from JSON, and the session as it stands after it (changed by session.update)."""
    obj = _load(data)
    kind = obj["type"]
    wire = current or WireSession()
    if kind in _SIMPLE_CLIENT:
        return _SIMPLE_CLIENT[kind], wire
    if kind == "input_audio_buffer.append":
        return InputAudioBufferAppend(_b64decode(obj.get("audio"), kind)), wire
    if kind == "session.update":
        wire = parse_session(obj.get("session", {}), wire)
        return SessionUpdate(wire.config), wire
    if kind == "response.cancel":
        rid = obj.get("response_id")
        return ResponseCancel(rid if isinstance(rid, str) and rid else None), wire
    if kind == "conversation.item.truncate":
        event = ConversationItemTruncate(
            item_id=_str(obj, "item_id", kind),
            audio_end_ms=_int(obj, "audio_end_ms", kind),
            content_index=_int(obj, "content_index", kind, 0),
        )
        return event, wire
    if kind == "conversation.item.create":
        return ConversationItemCreate(_text_item(obj.get("item"), kind)), wire
    raise ProtocolError(f"unsupported client event type {kind!r}")


def _text_item(item: Any, where: str) -> ConversationItem:
    """A user message of ``input_text`` parts: the only item a client may add (keypad digits)."""
    if not isinstance(item, dict) or item.get("type", "message") != "message" or item.get("role") != "user":
        raise ProtocolError(f"{where}: only a user message item can be added")
    content = item.get("content")
    if not isinstance(content, list) or not content:
        raise ProtocolError(f"{where}: the item needs content")
    parts = []
    for part in content:
        if (
            not isinstance(part, dict)
            or part.get("type") != "input_text"
            or not isinstance(part.get("text"), str)
        ):
            raise ProtocolError(f"{where}: only input_text content is supported")
        parts.append(part["text"])
    item_id = item.get("id")
    return ConversationItem(
        id=item_id if isinstance(item_id, str) and item_id else new_id("item"),
        role="user",
        text=" ".join(parts),
    )


# ---- server -> client -----------------------------------------------------------------------------


def _item_json(item: ConversationItem) -> dict[str, Any]:
    kind = "input_audio" if item.role == "user" else "output_audio"
    return {
        "id": item.id,
        "object": "realtime.item",
        "type": "message",
        "role": item.role,
        "status": item.status,
        "content": [{"type": kind, "transcript": item.text}],
    }


def _response_json(done: ResponseDone) -> dict[str, Any]:
    details: dict[str, Any] = {"type": done.status, "reason": done.reason}
    if done.status == "failed":
        details["error"] = {"type": "server_error", "message": done.reason or "failed"}
    return {
        "id": done.response_id,
        "object": "realtime.response",
        "status": done.status,
        "status_details": details,
        "output": [_item_json(item) for item in done.output],
        "metadata": {"action": done.action},
    }


def encode_server(event: ServerEvent, wire: WireSession | None = None) -> str:
    """One server event as a JSON text frame with its GA name."""
    obj: dict[str, Any]
    match event:
        case ResponseOutputAudioDelta(response_id=rid, item_id=item, delta=delta):
            obj = {"response_id": rid, "item_id": item, "output_index": 0, "content_index": 0}
            obj["delta"] = _b64(delta)
        case ResponseOutputAudioTranscriptDelta(response_id=rid, item_id=item, delta=delta):
            obj = {"response_id": rid, "item_id": item, "output_index": 0, "content_index": 0, "delta": delta}
        case SessionCreated(session=config) | SessionUpdated(session=config):
            obj = {"session": session_json(replace(wire or WireSession(), config=config))}
        case InputAudioBufferCommitted(item_id=item):
            obj = {"item_id": item, "previous_item_id": None}
        case ConversationItemCreated(item=item):
            obj = {"previous_item_id": None, "item": _item_json(item)}
        case InputAudioTranscriptionCompleted(item_id=item, transcript=text):
            obj = {"item_id": item, "content_index": 0, "transcript": text}
        case ResponseCreated(response_id=rid):
            obj = {
                "response": {"id": rid, "object": "realtime.response", "status": "in_progress", "output": []}
            }
        case ResponseDone():
            obj = {"response": _response_json(event)}
        case ConversationItemTruncated(item_id=item, audio_end_ms=end, text=text):
            obj = {"item_id": item, "content_index": 0, "audio_end_ms": end, "transcript": text}
        case EngineErrorEvent(message=message, code=code):
            obj = {"error": {"type": "server_error", "code": code, "message": message, "event_id": None}}
    return _dump({"type": event.type, **obj})


_SERVER_ALIASES = {
    "response.audio.delta": ResponseOutputAudioDelta.type,
    "response.audio_transcript.delta": ResponseOutputAudioTranscriptDelta.type,
    "response.text.delta": ResponseOutputAudioTranscriptDelta.type,
    "response.output_text.delta": ResponseOutputAudioTranscriptDelta.type,
    "conversation.item.added": ConversationItemCreated.type,
}


def _parse_item(obj: Any) -> ConversationItem:
    if not isinstance(obj, dict):
        raise ProtocolError("item must be an object")
    role = obj.get("role", "assistant")
    text = ""
    for part in obj.get("content") or []:
        if isinstance(part, dict):
            text += str(part.get("transcript") or part.get("text") or "")
    raw = obj.get("status")
    status: Literal["in_progress", "completed", "incomplete"] = (
        "in_progress" if raw == "in_progress" else "incomplete" if raw == "incomplete" else "completed"
    )
    return ConversationItem(
        id=_str(obj, "id", "item"), role="user" if role == "user" else "assistant", text=text, status=status
    )


def _parse_done(response: Any) -> ResponseDone:
    if not isinstance(response, dict):
        raise ProtocolError("response.done: 'response' must be an object")
    raw = response.get("status")
    details = response.get("status_details") or {}
    reason = details.get("reason") if isinstance(details, dict) else None
    status: Literal["completed", "cancelled", "failed"] = (
        "completed" if raw == "completed" else "cancelled" if raw in ("cancelled", "incomplete") else "failed"
    )
    if status == "failed" and reason is None and isinstance(details, dict):
        error = details.get("error") or {}
        reason = error.get("message") if isinstance(error, dict) else None
    output = tuple(
        _parse_item(item)
        for item in response.get("output") or []
        if isinstance(item, dict) and item.get("type", "message") == "message"
    )
    metadata = response.get("metadata") or {}
    action = metadata.get("action", "answer") if isinstance(metadata, dict) else "answer"
    return ResponseDone(_str(response, "id", "response.done"), status, reason, output, str(action))


def decode_server(data: str | bytes, current: WireSession | None = None) -> ServerEvent | None:
    """A server event from JSON (GA or beta names); ``None`` for an event we do not model."""
    obj = _load(data)
    kind = _SERVER_ALIASES.get(obj["type"], obj["type"])
    wire = current or WireSession()
    if kind == ResponseOutputAudioDelta.type:
        audio = _b64decode(obj.get("delta"), kind)
        return ResponseOutputAudioDelta(_str(obj, "response_id", kind), _str(obj, "item_id", kind), audio)
    if kind == ResponseOutputAudioTranscriptDelta.type:
        delta = obj.get("delta")
        text = delta if isinstance(delta, str) else ""
        return ResponseOutputAudioTranscriptDelta(
            _str(obj, "response_id", kind), _str(obj, "item_id", kind), text
        )
    if kind in (SessionCreated.type, SessionUpdated.type):
        config = parse_session(obj.get("session", {}), wire).config
        return SessionCreated(config) if kind == SessionCreated.type else SessionUpdated(config)
    if kind == InputAudioBufferCommitted.type:
        return InputAudioBufferCommitted(_str(obj, "item_id", kind))
    if kind == ConversationItemCreated.type:
        return ConversationItemCreated(_parse_item(obj.get("item")))
    if kind == InputAudioTranscriptionCompleted.type:
        return InputAudioTranscriptionCompleted(_str(obj, "item_id", kind), str(obj.get("transcript") or ""))
    if kind == ResponseCreated.type:
        response = obj.get("response")
        if not isinstance(response, dict):
            raise ProtocolError("response.created: 'response' must be an object")
        return ResponseCreated(_str(response, "id", kind))
    if kind == ResponseDone.type:
        return _parse_done(obj.get("response"))
    if kind == ConversationItemTruncated.type:
        end = _int(obj, "audio_end_ms", kind)
        return ConversationItemTruncated(_str(obj, "item_id", kind), end, str(obj.get("transcript") or ""))
    if kind == EngineErrorEvent.type:
        error = obj.get("error") or {}
        if not isinstance(error, dict):
            error = {"message": str(error)}
        return EngineErrorEvent(
            str(error.get("message") or "error"), str(error.get("code") or "engine_error")
        )
    return None
