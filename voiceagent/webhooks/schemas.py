"""Request and response bodies of ``/v1/webhooks`` (and so its part of the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from voiceagent.webhooks.models import WebhookDelivery, WebhookEndpoint

__all__ = [
    "DeliveryOut",
    "DeliveryPage",
    "EndpointCreate",
    "EndpointCreated",
    "EndpointOut",
    "EndpointPage",
    "EndpointPatch",
    "RotateRequest",
    "RotatedSecret",
]

EventType = Literal[
    "call.started",
    "call.answered",
    "call.ended",
    "turn.completed",
    "call.transferred",
    "dtmf.received",
    "recording.ready",
]


class EndpointCreate(BaseModel):
    """A URL to send events to, the events it wants, and optionally one agent's calls only."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048, examples=["https://example.com/hooks/voice"])
    events: list[EventType] = Field(min_length=1)
    agent: str | None = Field(default=None, min_length=1, max_length=128)
    description: str = Field(default="", max_length=256)


class EndpointPatch(BaseModel):
    """Enable or disable an endpoint."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool


class RotateRequest(BaseModel):
    """How long the old secret keeps signing (default: the server's webhook_secret_overlap_s)."""

    model_config = ConfigDict(extra="forbid")

    overlap_s: float | None = Field(default=None, ge=0, le=30 * 86400)


class EndpointOut(BaseModel):
    """A registered endpoint (its secret is shown only when made or rotated)."""

    id: str
    url: str
    events: list[str]
    agent: str | None
    description: str
    enabled: bool
    disabled_reason: str | None
    previous_secret_expires_at: datetime | None = Field(
        description="While in the future, messages are signed with the old and the new secret."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: WebhookEndpoint) -> EndpointOut:
        return cls(
            id=row.id,
            url=row.url,
            events=row.event_types,
            agent=row.agent,
            description=row.description,
            enabled=row.enabled,
            disabled_reason=row.disabled_reason,
            previous_secret_expires_at=row.previous_secret_expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class EndpointCreated(EndpointOut):
    """A new endpoint and its signing secret: store it now, it is not shown again."""

    secret: str


class EndpointPage(BaseModel):
    """Every endpoint, oldest first."""

    items: list[EndpointOut]


class RotatedSecret(BaseModel):
    """The new secret; the old one also signs until ``previous_secret_expires_at``."""

    secret: str
    previous_secret_expires_at: datetime | None


class DeliveryOut(BaseModel):
    """One event for one endpoint, and how its last attempt went."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    endpoint_id: str
    event_id: str = Field(description="The webhook-id header: the same on every attempt and resend.")
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    response_code: int | None
    latency_ms: float | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, row: WebhookDelivery) -> DeliveryOut:
        return cls.model_validate(row)


class DeliveryPage(BaseModel):
    """Deliveries newest first; pass ``next_before_id`` back as ``before_id`` (null: last page)."""

    items: list[DeliveryOut]
    next_before_id: int | None
