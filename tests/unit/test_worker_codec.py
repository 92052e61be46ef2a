"""The JSON codec of the speech-session protocol: round trips, Realtime GA and beta names, bad input."""

import base64
import json

import pytest

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
from voiceagent.engines.realtime.codec import (
    WireSession,
    decode_client,
    decode_server,
    encode_client,
    encode_server,
    parse_session,
)
from voiceagent.errors import ProtocolError

CONFIG = SessionConfig(16000, 16000, None, "be brief", "conv_1")

CLIENT_EVENTS: list[ClientEvent] = [
    SessionUpdate(CONFIG),
    InputAudioBufferAppend(b"\x01\x00\xff\x7f"),
    InputAudioBufferCommit(),
    InputAudioBufferClear(),
    ResponseCreate(),
    ResponseCancel("resp_1"),
    ResponseCancel(),
    ConversationItemTruncate("item_2", 1234, 0),
    ConversationItemCreate(ConversationItem("item_9", "user", "[pressed 1]")),
]

SERVER_EVENTS: list[ServerEvent] = [
    SessionCreated(CONFIG),
    SessionUpdated(CONFIG),
    InputAudioBufferCommitted("item_1"),
    ConversationItemCreated(ConversationItem("item_1", "user", "hello", "completed")),
    ConversationItemCreated(ConversationItem("item_2", "assistant", "", "in_progress")),
    InputAudioTranscriptionCompleted("item_1", "hello there"),
    ResponseCreated("resp_1"),
    ResponseOutputAudioDelta("resp_1", "item_2", b"\x00\x01" * 160),
    ResponseOutputAudioTranscriptDelta("resp_1", "item_2", "Hi. "),
    ResponseDone("resp_1", "completed", None, (ConversationItem("item_2", "assistant", "Hi."),), "transfer"),
    ResponseDone("resp_2", "cancelled", "client_cancelled", (), "answer"),
    ResponseDone("resp_3", "failed", "model crashed", (), "answer"),
    ConversationItemTruncated("item_2", 640, "Hi"),
    EngineErrorEvent("nope", "invalid_request_error"),
]


@pytest.mark.parametrize("event", CLIENT_EVENTS, ids=lambda e: type(e).__name__)
def test_client_events_round_trip(event: ClientEvent) -> None:
    wire = WireSession(CONFIG)
    decoded, after = decode_client(encode_client(event, wire), wire)
    assert decoded == event
    if isinstance(event, SessionUpdate):
        assert after.config == CONFIG


@pytest.mark.parametrize("event", SERVER_EVENTS, ids=lambda e: type(e).__name__)
def test_server_events_round_trip(event: ServerEvent) -> None:
    wire = WireSession(CONFIG)
    assert decode_server(encode_server(event, wire), wire) == event


def test_server_events_use_the_ga_names_and_base64_audio() -> None:
    obj = json.loads(encode_server(ResponseOutputAudioDelta("r", "i", b"\x01\x02")))
    assert obj["type"] == "response.output_audio.delta"
    assert base64.b64decode(obj["delta"]) == b"\x01\x02"
    session = json.loads(encode_server(SessionCreated(CONFIG), WireSession(CONFIG)))["session"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 16000}
    assert session["voiceagent"] == {"conversation_id": "conv_1"}


def test_beta_server_names_are_read() -> None:
    audio = {"type": "response.audio.delta", "response_id": "r", "item_id": "i", "delta": "AQI="}
    assert decode_server(json.dumps(audio)) == ResponseOutputAudioDelta("r", "i", b"\x01\x02")
    text = {"type": "response.audio_transcript.delta", "response_id": "r", "item_id": "i", "delta": "x"}
    assert decode_server(json.dumps(text)) == ResponseOutputAudioTranscriptDelta("r", "i", "x")
    added = {"type": "conversation.item.added", "item": {"id": "i", "role": "assistant", "content": []}}
    assert decode_server(json.dumps(added)) == ConversationItemCreated(ConversationItem("i", "assistant"))


def test_unmodelled_server_events_decode_to_none() -> None:
    assert decode_server('{"type": "response.output_item.added", "item": {}}') is None
    assert decode_server('{"type": "rate_limits.updated"}') is None


def test_beta_session_formats_are_understood() -> None:
    wire = parse_session({"input_audio_format": "g711_ulaw", "output_audio_format": "g711_alaw"})
    assert (wire.input_format, wire.output_format) == ("pcmu", "pcma")
    assert (wire.config.input_sample_rate, wire.config.output_sample_rate) == (8000, 8000)
    pcm = parse_session({"input_audio_format": "pcm16"}, wire)
    assert pcm.input_format == "pcm16"
    assert pcm.config.input_sample_rate == 24000
    assert pcm.output_format == "pcma"  # a partial update keeps the rest


def test_ga_session_update_from_the_sdk_shape() -> None:
    session = {
        "type": "realtime",
        "instructions": "hi",
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None}},
    }
    wire = parse_session(session, WireSession(SessionConfig(16000, 16000)))
    assert wire.config == SessionConfig(24000, 16000, None, "hi")


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "[1, 2]",
        '{"no": "type"}',
        '{"type": "conversation.item.create"}',
        '{"type": "conversation.item.create", "item": {"role": "assistant", "content": []}}',
        '{"type": "conversation.item.create", "item": {"role": "user", "content": [{"type": "x"}]}}',
        '{"type": "input_audio_buffer.append", "audio": "***"}',
        '{"type": "input_audio_buffer.append"}',
        '{"type": "conversation.item.truncate", "item_id": "i", "audio_end_ms": -5}',
        '{"type": "conversation.item.truncate", "audio_end_ms": 5}',
        '{"type": "session.update", "session": {"audio": {"input": {"format": {"rate": 44100}}}}}',
        '{"type": "session.update", "session": {"input_audio_format": "mp3"}}',
        '{"type": "session.update", "session": {"turn_detection": "yes"}}',
        '{"type": "session.update", "session": []}',
    ],
)
def test_bad_client_messages_raise_protocol_error(message: str) -> None:
    with pytest.raises(ProtocolError):
        decode_client(message)


def test_bad_server_messages_raise_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode_server(
            '{"type": "response.output_audio.delta", "response_id": "r", "item_id": "i", "delta": 5}'
        )
    with pytest.raises(ProtocolError):
        decode_server('{"type": "response.created", "response": "r"}')
