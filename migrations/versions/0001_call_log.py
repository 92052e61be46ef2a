"""The call log: calls, turns, call_events, recordings, agents, webhook_outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Written from an autogenerate run against voiceagent.store.models, then reviewed: types are spelled
out here (no imports from the app) so this file keeps working whatever the models become.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STAMP = sa.DateTime(timezone=True)
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _call_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["call_id"], ["calls.id"], name=op.f(f"fk_{table}_call_id_calls"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("from_number", sa.String(64), nullable=True),
        sa.Column("to_number", sa.String(64), nullable=True),
        sa.Column("agent", sa.String(128), nullable=True),
        sa.Column("trunk", sa.String(128), nullable=True),
        sa.Column("started_at", _STAMP, nullable=False),
        sa.Column("answered_at", _STAMP, nullable=True),
        sa.Column("ended_at", _STAMP, nullable=True),
        sa.Column("end_reason", sa.String(64), nullable=True),
        sa.Column("sip_cause", sa.Integer(), nullable=True),
        sa.CheckConstraint("channel IN ('sip', 'webrtc', 'file')", name=op.f("ck_calls_channel")),
        sa.CheckConstraint("direction IN ('inbound', 'outbound')", name=op.f("ck_calls_direction")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
    )
    op.create_index("ix_calls_started_at_id", "calls", ["started_at", "id"])
    op.create_index("ix_calls_from_number_started_at", "calls", ["from_number", "started_at"])
    op.create_index("ix_calls_to_number_started_at", "calls", ["to_number", "started_at"])
    op.create_index("ix_calls_agent_started_at", "calls", ["agent", "started_at"])

    op.create_table(
        "turns",
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("speaker", sa.String(8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start_ms", sa.Double(), nullable=False),
        sa.Column("end_ms", sa.Double(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("audio_end_ms", sa.Double(), nullable=True),
        sa.CheckConstraint("speaker IN ('caller', 'agent')", name=op.f("ck_turns_speaker")),
        _call_fk("turns"),
        sa.PrimaryKeyConstraint("call_id", "index", name=op.f("pk_turns")),
    )
    op.create_table(
        "call_events",
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("media_ms", sa.Double(), nullable=True),
        sa.Column("at", _STAMP, nullable=False),
        sa.Column("data", _json(), nullable=False),
        _call_fk("call_events"),
        # The primary key is the (call_id, seq) index that timeline reads and idempotent inserts use.
        sa.PrimaryKeyConstraint("call_id", "seq", name=op.f("pk_call_events")),
    )
    op.create_table(
        "recordings",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("leg", sa.String(8), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("duration_s", sa.Double(), nullable=False),
        sa.Column("created_at", _STAMP, nullable=False),
        sa.CheckConstraint("leg IN ('caller', 'agent', 'both')", name=op.f("ck_recordings_leg")),
        _call_fk("recordings"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
        sa.UniqueConstraint("call_id", "leg", name=op.f("uq_recordings_call_id_leg")),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("definition", _json(), nullable=False),
        sa.Column("created_at", _STAMP, nullable=False),
        sa.Column("updated_at", _STAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("name", name=op.f("uq_agents_name")),
    )
    op.create_table(
        "webhook_outbox",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(160), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("created_at", _STAMP, nullable=False),
        sa.Column("delivered_at", _STAMP, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_webhook_outbox_event_id")),
    )
    op.create_index("ix_webhook_outbox_delivered_at_id", "webhook_outbox", ["delivered_at", "id"])


def downgrade() -> None:
    # Indexes go with their tables on every database.
    for table in ("webhook_outbox", "agents", "recordings", "call_events", "turns", "calls"):
        op.drop_table(table)
