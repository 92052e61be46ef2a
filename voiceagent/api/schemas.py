"""Request and response bodies of the REST API (and so its OpenAPI schema)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from voiceagent.agents import AgentDefinition

__all__ = [
    "AgentOut",
    "AgentPage",
    "CallDetail",
    "CallEventOut",
    "CallOut",
    "CallPage",
    "Health",
    "RecordingOut",
    "TurnOut",
    "UtcDatetime",
]


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable instant
        raise ValueError("datetime out of range") from None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timestamp with an offset (naive ones are refused: whose local time?), converted to UTC."""


class _Row(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class CallOut(_Row):
    """One call, without its timeline."""

    id: str
    direction: Literal["inbound", "outbound"]
    channel: Literal["sip", "webrtc", "file"]
    from_number: str | None
    to_number: str | None
    agent: str | None
    trunk: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    sip_cause: int | None


class TurnOut(_Row):
    """One completed turn; for a truncated agent turn, ``audio_end_ms`` is how much was heard."""

    index: int
    speaker: Literal["caller", "agent"]
    text: str
    start_ms: float
    end_ms: float
    truncated: bool
    audio_end_ms: float | None


class CallEventOut(_Row):
    """One entry of the call's timeline."""

    seq: int
    kind: str
    media_ms: float | None
    at: datetime
    data: dict[str, Any]


class RecordingOut(_Row):
    """A stored recording; fetch its audio from ``GET /v1/calls/{id}/recording?leg=...``."""

    leg: Literal["caller", "agent", "both"]
    duration_s: float
    created_at: datetime


class CallDetail(CallOut):
    """One call with its turns, timeline and recordings, each in order."""

    turns: list[TurnOut]
    events: list[CallEventOut]
    recordings: list[RecordingOut]


class CallPage(BaseModel):
    """Calls newest first; pass ``next_cursor`` back as ``cursor`` for the next page (null: last)."""

    items: list[CallOut]
    next_cursor: str | None


class AgentOut(_Row):
    """A stored agent definition."""

    id: str
    name: str
    definition: AgentDefinition
    created_at: datetime
    updated_at: datetime


class AgentPage(BaseModel):
    """Agents in id order; pass ``next_cursor`` back as ``cursor`` for the next page (null: last)."""

    items: list[AgentOut]
    next_cursor: str | None


class Health(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict, description="Per dependency: ok or why not.")
