"""What the media layer hands to the call log: small frozen records that also round-trip as JSON.

The JSON form is what the writer's spool keeps on disk while the database is down, so it is tagged
with the record type and carries every timestamp as ISO 8601 with its offset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

__all__ = [
    "CallEnded",
    "CallStarted",
    "EventRecord",
    "LogRecord",
    "RecordingRecord",
    "TurnRecord",
    "record_from_json",
    "record_to_json",
]


@dataclass(frozen=True, slots=True)
class CallStarted:
    """A call was offered (inbound) or placed (outbound)."""

    id: str
    direction: str
    channel: str
    started_at: datetime
    from_number: str | None = None
    to_number: str | None = None
    agent: str | None = None
    trunk: str | None = None
    answered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CallEnded:
    """A call was hung up; ``answered_at`` fills in the answer time if it was not known at start."""

    call_id: str
    ended_at: datetime
    end_reason: str
    sip_cause: int | None = None
    answered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """A completed turn; ``audio_end_ms`` is what was heard of a truncated agent turn."""

    call_id: str
    index: int
    speaker: str
    text: str
    start_ms: float
    end_ms: float
    truncated: bool = False
    audio_end_ms: float | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One timeline event; ``seq`` counts from 0 per call and makes replays idempotent."""

    call_id: str
    seq: int
    kind: str
    at: datetime
    media_ms: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordingRecord:
    """Where one leg (or both) of a call's audio was written."""

    call_id: str
    leg: str
    uri: str
    duration_s: float


LogRecord = CallStarted | CallEnded | TurnRecord | EventRecord | RecordingRecord

_TAGS: dict[type[Any], str] = {
    CallStarted: "call.started",
    CallEnded: "call.ended",
    TurnRecord: "turn",
    EventRecord: "event",
    RecordingRecord: "recording",
}
_TYPES = {tag: cls for cls, tag in _TAGS.items()}
_DATETIME_FIELDS = {cls: frozenset(f.name for f in fields(cls) if "datetime" in str(f.type)) for cls in _TAGS}


def record_to_json(record: LogRecord) -> dict[str, Any]:
    """A JSON-ready dict with a ``"type"`` tag; datetimes as ISO 8601 strings."""
    out: dict[str, Any] = {"type": _TAGS[type(record)]}
    for name, value in asdict(record).items():
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def record_from_json(obj: dict[str, Any]) -> LogRecord:
    """Inverse of :func:`record_to_json`; ``ValueError`` for an unknown type or bad fields."""
    values = dict(obj)
    tag = values.pop("type", None)
    cls = _TYPES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise ValueError(f"unknown call-log record type {tag!r}")
    for name in _DATETIME_FIELDS[cls]:
        if values.get(name) is not None:
            values[name] = datetime.fromisoformat(values[name])
    try:
        record: LogRecord = cls(**values)
    except TypeError as exc:
        raise ValueError(f"bad {tag} record: {exc}") from exc
    return record
