"""The webhook tables: endpoints (who wants which events, with what secret) and deliveries (the log).

One outbox event (``webhook_outbox``, written with the change it describes) fans out into one
delivery row per subscribed endpoint; a delivery row is both the retry queue and the delivery log,
so both survive a restart. Endpoint secrets are kept as written: HMAC signing needs the secret
itself, unlike API keys, which only need to be recognised.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from voiceagent.store.models import Base, utcnow

__all__ = ["DELIVERY_STATUSES", "EVENT_TYPES", "WebhookDelivery", "WebhookEndpoint"]

EVENT_TYPES = (
    "call.started",
    "call.answered",
    "call.ended",
    "turn.completed",
    "call.transferred",
    "dtmf.received",
    "recording.ready",
)
"""Every event type an endpoint may subscribe to."""

DELIVERY_STATUSES = ("pending", "succeeded", "failed")

_BIGID = BigInteger().with_variant(Integer(), "sqlite")


class WebhookEndpoint(Base):
    """An integrator's URL, the events it wants (optionally only one agent's) and its signing secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    # Space-separated event types, like API-key scopes: a short closed vocabulary.
    events: Mapped[str] = mapped_column(String(512))
    # None: every agent's calls.
    agent: Mapped[str | None] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(256), default="")
    secret: Mapped[str] = mapped_column(String(128))
    # During a rotation's overlap window messages carry a signature for both secrets.
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[datetime | None]
    enabled: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def event_types(self) -> list[str]:
        """The subscribed event types as a list."""
        return self.events.split()

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"<WebhookEndpoint {self.id} {self.url} [{self.events}] {state}>"


class WebhookDelivery(Base):
    """One event for one endpoint: its state, when it is next due, and how the last attempt went."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
        # Fan-out may run twice over the same outbox row (a crash before its commit): one row each.
        UniqueConstraint("endpoint_id", "outbox_id"),
        # The dispatcher's claim query: due pending rows, oldest due first.
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    outbox_id: Mapped[int] = mapped_column(ForeignKey("webhook_outbox.id", ondelete="CASCADE"))
    # Copied from the outbox row so that the log lists without a join; event_id is the webhook-id.
    event_id: Mapped[str] = mapped_column(String(160))
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # Every attempt ever made (the log); retry_step is the position in the retry schedule, which
    # a manual resend starts again from zero.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    retry_step: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    response_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Double)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"<WebhookDelivery {self.id} {self.event_id} -> {self.endpoint_id} {self.status}>"
