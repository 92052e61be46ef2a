"""Speech-session events between the media layer and an engine (DESIGN §4).

Named and shaped after the OpenAI Realtime event protocol so the same events can travel as JSON over
a WebSocket later; in-process they are plain dataclasses on queues. Audio is PCM16 little-endian
bytes at the rate negotiated in :class:`SessionConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

__all__ = [
    "ClientEvent",
    "ConversationItem",
    "ConversationItemCreate",
    "ConversationItemCreated",
    "ConversationItemTruncate",
    "ConversationItemTruncated",
    "EngineErrorEvent",
    "InputAudioBufferAppend",
    "InputAudioBufferClear",
    "InputAudioBufferCommit",
    "InputAudioBufferCommitted",
    "InputAudioTranscriptionCompleted",
    "ResponseCancel",
    "ResponseCreate",
    "ResponseCreated",
    "ResponseDone",
    "ResponseOutputAudioDelta",
    "ResponseOutputAudioTranscriptDelta",
    "ServerEvent",
    "SessionConfig",
    "SessionCreated",
    "SessionUpdate",
    "SessionUpdated",
]


@dataclass(frozen=True)
class SessionConfig:
    """What a session negotiates: audio rates and who detects turns."""

    input_sample_rate: int = 16000
    output_sample_rate: int = 16000
    # None: the client (our media layer) commits turns; "server_vad": the engine does.
    turn_detection: Literal["server_vad"] | None = None
    instructions: str | None = None
    # The conversation this session continues (its key in session memory): a call re-placed on
    # another worker after a failure resumes with the turns already remembered under this id.
    conversation_id: str | None = None


@dataclass(frozen=True)
class ConversationItem:
    """A message in the conversation; ``text`` is the transcript (what was heard, once truncated)."""

    id: str
    role: Literal["user", "assistant"]
    text: str = ""
    status: Literal["in_progress", "completed", "incomplete"] = "completed"


# ---- client -> engine -------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionUpdate:
    type: ClassVar[str] = "session.update"
    session: SessionConfig


@dataclass(frozen=True)
class InputAudioBufferAppend:
    type: ClassVar[str] = "input_audio_buffer.append"
    audio: bytes


@dataclass(frozen=True)
class InputAudioBufferCommit:
    type: ClassVar[str] = "input_audio_buffer.commit"


@dataclass(frozen=True)
class InputAudioBufferClear:
    type: ClassVar[str] = "input_audio_buffer.clear"


@dataclass(frozen=True)
class ResponseCreate:
    type: ClassVar[str] = "response.create"


@dataclass(frozen=True)
class ResponseCancel:
    type: ClassVar[str] = "response.cancel"
    response_id: str | None = None


@dataclass(frozen=True)
class ConversationItemTruncate:
    type: ClassVar[str] = "conversation.item.truncate"
    item_id: str
    audio_end_ms: int
    content_index: int = 0


@dataclass(frozen=True)
class ConversationItemCreate:
    """A user turn given as text, not audio: keypad digits (:func:`voiceagent.engines.items.dtmf_text`)."""

    type: ClassVar[str] = "conversation.item.create"
    item: ConversationItem


ClientEvent = (
    SessionUpdate
    | InputAudioBufferAppend
    | InputAudioBufferCommit
    | InputAudioBufferClear
    | ResponseCreate
    | ResponseCancel
    | ConversationItemTruncate
    | ConversationItemCreate
)

# ---- engine -> client -------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionCreated:
    type: ClassVar[str] = "session.created"
    session: SessionConfig


@dataclass(frozen=True)
class SessionUpdated:
    type: ClassVar[str] = "session.updated"
    session: SessionConfig


@dataclass(frozen=True)
class InputAudioBufferCommitted:
    type: ClassVar[str] = "input_audio_buffer.committed"
    item_id: str


@dataclass(frozen=True)
class ConversationItemCreated:
    type: ClassVar[str] = "conversation.item.created"
    item: ConversationItem


@dataclass(frozen=True)
class InputAudioTranscriptionCompleted:
    type: ClassVar[str] = "conversation.item.input_audio_transcription.completed"
    item_id: str
    transcript: str


@dataclass(frozen=True)
class ResponseCreated:
    type: ClassVar[str] = "response.created"
    response_id: str


@dataclass(frozen=True)
class ResponseOutputAudioDelta:
    type: ClassVar[str] = "response.output_audio.delta"
    response_id: str
    item_id: str
    delta: bytes


@dataclass(frozen=True)
class ResponseOutputAudioTranscriptDelta:
    type: ClassVar[str] = "response.output_audio_transcript.delta"
    response_id: str
    item_id: str
    delta: str


@dataclass(frozen=True)
class ResponseDone:
    type: ClassVar[str] = "response.done"
    response_id: str
    status: Literal["completed", "cancelled", "failed"]
    # Why a response ended early: "client_cancelled", "no_input", or an error message.
    reason: str | None = None
    output: tuple[ConversationItem, ...] = field(default=())
    # What the agent decided besides speaking: "answer", "transfer" or "hangup".
    action: str = "answer"


@dataclass(frozen=True)
class ConversationItemTruncated:
    type: ClassVar[str] = "conversation.item.truncated"
    item_id: str
    audio_end_ms: int
    text: str


@dataclass(frozen=True)
class EngineErrorEvent:
    type: ClassVar[str] = "error"
    message: str
    code: str = "engine_error"


ServerEvent = (
    SessionCreated
    | SessionUpdated
    | InputAudioBufferCommitted
    | ConversationItemCreated
    | InputAudioTranscriptionCompleted
    | ResponseCreated
    | ResponseOutputAudioDelta
    | ResponseOutputAudioTranscriptDelta
    | ResponseDone
    | ConversationItemTruncated
    | EngineErrorEvent
)
