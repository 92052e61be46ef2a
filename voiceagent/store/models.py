"""The call log's tables as SQLAlchemy 2 typed declarative models (SQLite and Postgres alike).

Types are chosen to mean the same on both databases: JSON (JSONB on Postgres), timezone-aware
timestamps that come back in UTC on SQLite too, and string "enums" guarded by CHECK constraints so
that a new value is a migration of one constraint, not of a native type.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Agent",
    "Base",
    "Call",
    "CallEventRow",
    "Recording",
    "Turn",
    "UTCDateTime",
    "WebhookOutbox",
]

# Named constraints, so that migrations can drop and alter them on every database by name.
_NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

DIRECTIONS = ("inbound", "outbound")
CHANNELS = ("sip", "webrtc", "file")
SPEAKERS = ("caller", "agent")
LEGS = ("caller", "agent", "both")


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that refuses naive values and always returns aware UTC ones.

    SQLite stores no offset: without this, a value written as 12:00+02:00 would read back as a naive
    12:00, and keyset comparisons between rows written from different zones would be wrong.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the call log stores aware timestamps only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
_BIGID = BigInteger().with_variant(Integer(), "sqlite")
_JSON = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base whose metadata Alembic migrates."""

    metadata = MetaData(naming_convention=_NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: _JSON}


class Call(Base):
    """One phone or browser call, from the first SIP/WebRTC signal to hang-up."""

    __tablename__ = "calls"
    __table_args__ = (
        CheckConstraint(_one_of("direction", DIRECTIONS), name="direction"),
        CheckConstraint(_one_of("channel", CHANNELS), name="channel"),
        # Recent calls and keyset pagination walk (started_at, id) backwards: a b-tree serves both ways.
        Index("ix_calls_started_at_id", "started_at", "id"),
        Index("ix_calls_from_number_started_at", "from_number", "started_at"),
        Index("ix_calls_to_number_started_at", "to_number", "started_at"),
        Index("ix_calls_agent_started_at", "agent", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(8))
    from_number: Mapped[str | None] = mapped_column(String(64))
    to_number: Mapped[str | None] = mapped_column(String(64))
    agent: Mapped[str | None] = mapped_column(String(128))
    trunk: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(64))
    sip_cause: Mapped[int | None] = mapped_column(Integer)

    # lazy="raise": an async session cannot lazy-load, so forgetting selectinload fails loudly.
    turns: Mapped[list[Turn]] = relationship(
        back_populates="call", order_by="Turn.index", lazy="raise", passive_deletes=True
    )
    events: Mapped[list[CallEventRow]] = relationship(
        back_populates="call", order_by="CallEventRow.seq", lazy="raise", passive_deletes=True
    )
    recordings: Mapped[list[Recording]] = relationship(
        back_populates="call", order_by="Recording.leg", lazy="raise", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Call {self.id} {self.direction}/{self.channel} {self.started_at:%Y-%m-%dT%H:%M:%S}>"


class Turn(Base):
    """One completed turn: what the caller said, or what the agent said and the caller heard."""

    __tablename__ = "turns"
    __table_args__ = (CheckConstraint(_one_of("speaker", SPEAKERS), name="speaker"),)

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    speaker: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    start_ms: Mapped[float] = mapped_column(Double)
    end_ms: Mapped[float] = mapped_column(Double)
    truncated: Mapped[bool] = mapped_column(default=False)
    # What the caller actually heard of a truncated agent turn (DESIGN §7), from playout accounting.
    audio_end_ms: Mapped[float | None] = mapped_column(Double)

    call: Mapped[Call] = relationship(back_populates="turns", lazy="raise")


class CallEventRow(Base):
    """One entry of a call's timeline; ``(call_id, seq)`` makes replayed writes idempotent."""

    __tablename__ = "call_events"

    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(64))
    media_ms: Mapped[float | None] = mapped_column(Double)
    at: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    call: Mapped[Call] = relationship(back_populates="events", lazy="raise")


class Recording(Base):
    """Where a call's audio is kept: one row per leg (or one for both, as stereo)."""

    __tablename__ = "recordings"
    __table_args__ = (
        CheckConstraint(_one_of("leg", LEGS), name="leg"),
        UniqueConstraint("call_id", "leg"),
    )

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    leg: Mapped[str] = mapped_column(String(8))
    uri: Mapped[str] = mapped_column(Text)
    duration_s: Mapped[float] = mapped_column(Double)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    call: Mapped[Call] = relationship(back_populates="recordings", lazy="raise")


class Agent(Base):
    """An agent definition as edited in the console (the YAML/TOML file's content as JSON)."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    definition: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookOutbox(Base):
    """A webhook event waiting for delivery, written in the transaction of the change it describes.

    ``event_id`` is derived from the change (``call.ended:<call id>``), so writing the same change
    twice (a replayed spool batch) leaves one row; it doubles as the Standard Webhooks message id.
    """

    __tablename__ = "webhook_outbox"
    __table_args__ = (Index("ix_webhook_outbox_delivered_at_id", "delivered_at", "id"),)

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(160), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)


# Tables defined in modules of their own register on Base.metadata here, so that Alembic's
# autogenerate and the migration tests see the whole schema whatever was imported first.
from voiceagent.store import apikey_models as _apikey_models  # noqa: E402, F401
from voiceagent.store import console_models as _console_models  # noqa: E402, F401
from voiceagent.webhooks import models as _webhook_models  # noqa: E402, F401
