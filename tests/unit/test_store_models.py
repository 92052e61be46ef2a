"""Call-log models and records on SQLite: round trips, timestamps, JSON, the schema from migrations."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from voiceagent.errors import StoreError
from voiceagent.store import (
    CallEnded,
    CallStarted,
    EventRecord,
    RecordingRecord,
    TurnRecord,
    create_engine,
    session_factory,
)
from voiceagent.store.migrate import context_options, current_revision, downgrade, upgrade, upgrade_async
from voiceagent.store.models import Agent, Base, Call, CallEventRow, Turn
from voiceagent.store.records import record_from_json, record_to_json

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


async def test_call_with_turns_and_events_round_trips(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    plus2 = timezone(timedelta(hours=2))
    async with sessions() as s, s.begin():
        s.add(Call(id="c1", direction="inbound", channel="sip", started_at=T0.astimezone(plus2)))
        s.add(Turn(call_id="c1", index=0, speaker="agent", text="Hello", start_ms=0, end_ms=900.5))
        s.add(CallEventRow(call_id="c1", seq=0, kind="vad.start", media_ms=20.0, at=T0, data={"p": 0.9}))
    async with sessions() as s:
        call = await s.get_one(Call, "c1")
        event = (await s.scalars(select(CallEventRow))).one()
        turn = (await s.scalars(select(Turn))).one()
    # Written at +02:00, read back as the same instant in UTC (SQLite keeps no offset itself).
    assert call.started_at == T0
    assert call.started_at.tzinfo is not None
    assert call.started_at.utcoffset() == timedelta(0)
    assert event.data == {"p": 0.9}
    assert (turn.truncated, turn.end_ms, turn.audio_end_ms) == (False, 900.5, None)


async def test_naive_datetimes_and_unknown_enums_are_refused(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    with pytest.raises(StatementError, match="naive"):
        async with sessions() as s, s.begin():
            s.add(Call(id="c1", direction="inbound", channel="sip", started_at=datetime(2026, 1, 1)))
    with pytest.raises(IntegrityError, match="CHECK"):
        async with sessions() as s, s.begin():
            s.add(Call(id="c2", direction="sideways", channel="sip", started_at=T0))


async def test_foreign_keys_are_enforced_on_sqlite(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as s:
        mode = (await s.execute(text("PRAGMA journal_mode"))).scalar()
    assert mode == "wal"
    with pytest.raises(IntegrityError, match="FOREIGN KEY"):
        async with session_factory(engine)() as s, s.begin():
            s.add(CallEventRow(call_id="nope", seq=0, kind="x", at=T0, data={}))


async def test_agent_names_are_unique(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with sessions() as s, s.begin():
        s.add(Agent(id="a1", name="front-desk", definition={"persona": "kind"}))
    with pytest.raises(IntegrityError):
        async with sessions() as s, s.begin():
            s.add(Agent(id="a2", name="front-desk", definition={}))


@pytest.mark.parametrize(
    "record",
    [
        CallStarted("c1", "inbound", "sip", T0, from_number="+100", agent="desk"),
        CallEnded("c1", T0 + timedelta(seconds=30), "caller-hangup", sip_cause=16, answered_at=T0),
        TurnRecord("c1", 3, "agent", "Hi — 你好", 10.0, 900.0, truncated=True, audio_end_ms=440.0),
        EventRecord("c1", 7, "bargein", T0, 123.4, {"nested": {"a": [1, 2]}}),
        RecordingRecord("c1", "both", "file:///rec/c1.wav", 31.5),
    ],
)
def test_records_round_trip_through_json(record: object) -> None:
    as_json = record_to_json(record)  # type: ignore[arg-type]
    assert record_from_json(as_json) == record


def test_unknown_record_types_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown"):
        record_from_json({"type": "call.exploded"})
    with pytest.raises(ValueError, match="bad event"):
        record_from_json({"type": "event", "call_id": "c1"})


def test_bad_urls_are_store_errors() -> None:
    with pytest.raises(StoreError, match="unsupported"):
        create_engine("mysql+aiomysql://x/y")
    with pytest.raises(StoreError, match="bad database URL"):
        create_engine("not a url")


def _diff(conn: Connection) -> list[object]:
    opts = context_options(conn)
    context = MigrationContext.configure(conn, opts={"compare_type": opts["compare_type"]})
    return list(compare_metadata(context, Base.metadata))


def test_migrations_match_the_models_on_sqlite_and_downgrade_to_nothing(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'migrated.db'}"
    upgrade(url)

    async def inspect_db() -> tuple[list[object], set[str], str | None]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                diff = await conn.run_sync(_diff)
                tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()
        return diff, tables, await current_revision(url)

    diff, tables, revision = asyncio.run(inspect_db())
    assert diff == []
    assert tables >= {
        "calls",
        "turns",
        "call_events",
        "recordings",
        "agents",
        "webhook_outbox",
        "webhook_deliveries",
    }
    assert revision == "0004"  # the chain 0001 call log -> 0002 API keys -> 0003 webhooks -> 0004 console
    downgrade(url, "base")
    _diff_after, tables, revision = asyncio.run(inspect_db())
    assert tables == {"alembic_version"}
    assert revision is None


async def test_sync_migrate_refuses_a_running_loop(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="upgrade_async"):
        upgrade(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")


def test_migration_failures_are_store_errors_without_the_password(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="revision") as info:
        upgrade(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", "no-such-revision")
    assert "x.db" in str(info.value)
    with pytest.raises(StoreError, match=r"postgres:\*\*\*@") as info:
        upgrade("postgresql+asyncpg://postgres:secret@127.0.0.1:1/none")
    assert "secret" not in str(info.value)


async def test_a_database_from_an_unknown_migration_is_a_clear_store_error(tmp_path: Path) -> None:
    # A call log stamped by another build (a newer voiceagent, another branch): the embedded
    # database is migrated on first use, and that must say what is wrong, not print a traceback.
    url = f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}"
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            await conn.execute(text("INSERT INTO alembic_version VALUES ('9999')"))
        with pytest.raises(StoreError, match=r"migration failed on sqlite.*'9999'"):
            await upgrade_async(engine)
    finally:
        await engine.dispose()
