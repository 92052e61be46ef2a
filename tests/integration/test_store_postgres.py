"""The call log against a real PostgreSQL (127.0.0.1:5432, see scripts/services.sh).

Each test gets a database of its own (``va_test_<random>``), created through the ``postgres``
database and dropped afterwards, so tests never see each other's rows or schema.
"""

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from voiceagent.store import CallEnded, CallStarted, EventRecord, TurnRecord, create_engine, session_factory
from voiceagent.store import repository as repo
from voiceagent.store.migrate import context_options, downgrade, upgrade, upgrade_async
from voiceagent.store.models import Base, Call, CallEventRow, Turn, WebhookOutbox
from voiceagent.store.writer import CallLogWriter

from .postgres_support import postgres_up, requires_postgres, scratch_database

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

pytestmark = requires_postgres


@pytest.fixture
def database_url() -> Iterator[str]:
    with scratch_database("va_test") as url:
        try:
            yield url
        finally:
            _ensure_postgres_running()  # the restart test may have left the server down; the drop needs it


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await upgrade_async(engine)
    yield engine
    await engine.dispose()


def _diff(conn: Connection) -> list[object]:
    opts = context_options(conn)
    context = MigrationContext.configure(conn, opts={"compare_type": opts["compare_type"]})
    return list(compare_metadata(context, Base.metadata))


def test_migrations_match_the_models_and_downgrade_to_nothing(database_url: str) -> None:
    upgrade(database_url)

    async def inspect_db() -> tuple[list[object], set[str]]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                diff = await conn.run_sync(_diff)
                tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()
        return diff, tables

    diff, tables = asyncio.run(inspect_db())
    assert diff == []
    # At least these: later migrations (console, SIP trunks) add tables of their own.
    assert tables >= {
        "alembic_version",
        "calls",
        "turns",
        "call_events",
        "recordings",
        "agents",
        "webhook_outbox",
        "api_keys",
        "webhook_endpoints",
        "webhook_deliveries",
    }
    downgrade(database_url, "base")
    _, tables = asyncio.run(inspect_db())
    assert tables == {"alembic_version"}
    upgrade(database_url)  # and back up again: the downgrade left nothing in the way
    assert asyncio.run(inspect_db())[0] == []


async def test_repository_on_postgres(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    calls = [
        CallStarted(f"c{i:03d}", "outbound", "sip", T0 + timedelta(seconds=i // 2), to_number=f"+4{i % 3}")
        for i in range(60)
    ]
    for _ in range(2):
        async with sessions() as s, s.begin():
            for c in calls:
                await repo.record_call_started(s, call=c)
            await repo.add_events(
                s, call_id="c001", events=[EventRecord("c001", n, "x", T0) for n in range(4)]
            )
    seen: list[str] = []
    cursor: str | None = None
    async with sessions() as s:
        while True:
            rows, cursor = await repo.list_calls(s, limit=7, cursor=cursor, to_number="+41")
            seen += [r.id for r in rows]
            if cursor is None:
                break
        call = await repo.get_call(s, call_id="c001")
        outbox = (await s.execute(select(func.count()).select_from(WebhookOutbox))).scalar_one()
    expected = sorted(
        (c for c in calls if c.to_number == "+41"), key=lambda c: (c.started_at, c.id), reverse=True
    )
    assert seen == [c.id for c in expected]
    assert call is not None
    assert [e.seq for e in call.events] == [0, 1, 2, 3]
    assert outbox == 60


def _pg_ctl(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True,
        capture_output=True,
        timeout=60,
    )


def _ensure_postgres_running() -> None:
    if not postgres_up() and shutil.which("pg_ctlcluster") and os.path.isdir("/etc/postgresql"):
        _pg_ctl("start")


@pytest.mark.slow
@pytest.mark.skipif(
    not shutil.which("pg_ctlcluster") or os.geteuid() != 0, reason="needs pg_ctlcluster as root"
)
async def test_no_event_is_lost_or_duplicated_across_a_postgres_restart(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    writer = CallLogWriter(
        engine, spool_dir=tmp_path / "spool", batch_size=200, flush_interval_s=0.05, retry_max_s=0.5
    )
    calls = [f"call-{i:02d}" for i in range(20)]
    seq = dict.fromkeys(calls, 0)
    running = True

    async def media() -> None:
        # 20 calls, one event each every 10 ms: what 20 live calls' timelines look like.
        for call_id in calls:
            writer.submit(CallStarted(call_id, "inbound", "sip", datetime.now(UTC), from_number="+1"))
        while running:
            for call_id in calls:
                writer.submit(
                    EventRecord(call_id, seq[call_id], "frame", datetime.now(UTC), 10.0 * seq[call_id])
                )
                seq[call_id] += 1
            await asyncio.sleep(0.01)
        for call_id in calls:
            writer.submit(TurnRecord(call_id, 0, "caller", "bye", 0.0, 100.0))
            writer.submit(CallEnded(call_id, datetime.now(UTC), "caller-hangup"))

    await writer.start()
    producer = asyncio.create_task(media())
    try:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(_pg_ctl, "stop")
        await asyncio.sleep(2.0)  # the media layer keeps going while the database is gone
        assert writer.stats.spooled > 0
        await asyncio.to_thread(_pg_ctl, "start")
        await asyncio.sleep(1.0)
        running = False
        await producer
        await asyncio.wait_for(writer.flush(), 60)
    finally:
        running = False
        await asyncio.gather(producer, return_exceptions=True)
        await writer.aclose()
        await asyncio.to_thread(_ensure_postgres_running)
    submitted = sum(seq.values())
    async with engine.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(CallEventRow))).scalar_one()
        distinct = (
            await conn.execute(text("SELECT count(*) FROM (SELECT DISTINCT call_id, seq FROM call_events) d"))
        ).scalar_one()
        per_call = dict(
            (
                await conn.execute(
                    select(CallEventRow.call_id, func.max(CallEventRow.seq) + 1).group_by(
                        CallEventRow.call_id
                    )
                )
            ).all()
        )
        ended = (
            await conn.execute(select(func.count()).select_from(Call).where(Call.ended_at.is_not(None)))
        ).scalar_one()
        turns = (await conn.execute(select(func.count()).select_from(Turn))).scalar_one()
        outbox = (await conn.execute(select(func.count()).select_from(WebhookOutbox))).scalar_one()
    assert total == distinct == submitted
    assert per_call == seq
    assert (ended, turns, outbox) == (20, 20, 60)
    assert writer.stats.dropped == 0
    assert writer.stats.replayed > 0
