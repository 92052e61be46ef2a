"""CallLogWriter on SQLite: batching, spooling while the database is unreachable, exact replay."""

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from voiceagent.store import CallEnded, CallStarted, EventRecord, LogRecord, TurnRecord, create_engine
from voiceagent.store.models import Base, Call, CallEventRow, Turn, WebhookOutbox
from voiceagent.store.spool import Spool
from voiceagent.store.writer import CallLogWriter

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield engine
    await engine.dispose()


def _dead_url() -> str:
    # A port that was free a moment ago: connecting is refused at once.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/none"


def _call(
    call_id: str, events: int, *, seq0: int = 0, start: bool = True, end: bool = True
) -> list[LogRecord]:
    records: list[LogRecord] = []
    if start:
        records.append(CallStarted(call_id, "inbound", "webrtc", T0, from_number="+1"))
    records += [
        EventRecord(call_id, n, "frame", T0 + timedelta(milliseconds=20 * n), 20.0 * n, {"n": n})
        for n in range(seq0, seq0 + events)
    ]
    if end:
        records.append(TurnRecord(call_id, 0, "caller", "hello", 0.0, 500.0))
        records.append(CallEnded(call_id, T0 + timedelta(minutes=1), "caller-hangup"))
    return records


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        out = {}
        tables = {"calls": Call, "events": CallEventRow, "turns": Turn, "outbox": WebhookOutbox}
        for name, model in tables.items():
            out[name] = (await conn.execute(select(func.count()).select_from(model))).scalar_one()
        ended = await conn.execute(select(func.count()).select_from(Call).where(Call.ended_at.is_not(None)))
        out["ended"] = ended.scalar_one()
    return out


async def test_records_are_written_in_batches_of_at_most_batch_size(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    commits: list[int] = []
    event.listen(engine.sync_engine, "commit", lambda conn: commits.append(1))
    writer = CallLogWriter(engine, spool_dir=tmp_path / "spool", batch_size=500, flush_interval_s=0.02)
    records = _call("a", 600) + _call("b", 597)  # 1,203 records
    for r in records:
        writer.submit(r)
    await writer.start()
    await asyncio.wait_for(writer.flush(), 10)
    await writer.aclose()
    assert len(commits) == 3
    assert await _counts(engine) == {"calls": 2, "events": 1197, "turns": 2, "outbox": 6, "ended": 2}
    s = writer.stats
    assert (s.submitted, s.written, s.spooled, s.dropped, s.queued) == (1203, 1203, 0, 0, 0)


async def test_a_partial_batch_is_written_after_the_flush_interval(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    writer = CallLogWriter(engine, spool_dir=tmp_path / "spool", flush_interval_s=0.05)
    await writer.start()
    try:
        for r in _call("a", 3, end=False):
            writer.submit(r)
        await asyncio.sleep(0.3)  # no flush(), no full batch: the interval alone must write them
        assert (await _counts(engine))["events"] == 3
    finally:
        await writer.aclose()


async def test_replaying_a_spool_that_overlaps_the_table_duplicates_nothing(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    writer = CallLogWriter(engine, spool_dir=tmp_path / "spool")
    await writer.start()
    for r in _call("a", 50, end=False):
        writer.submit(r)
    await writer.flush()
    await writer.aclose()
    # As if a batch had committed but its acknowledgement was lost: spooled anyway, then more.
    spool = Spool(tmp_path / "spool")
    spool.write(spool.reserve(), _call("a", 80, end=True))
    writer = CallLogWriter(engine, spool_dir=tmp_path / "spool")
    await writer.start()
    await asyncio.wait_for(writer.flush(), 10)
    await writer.aclose()
    assert await _counts(engine) == {"calls": 1, "events": 80, "turns": 1, "outbox": 3, "ended": 1}
    assert writer.stats.replayed == 83
    assert list((tmp_path / "spool").glob("*.jsonl")) == []


async def test_spools_while_the_database_is_unreachable_and_replays_in_order(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    dead = create_engine(_dead_url(), connect_timeout_s=1)
    writer = CallLogWriter(
        dead, spool_dir=tmp_path / "spool", batch_size=50, flush_interval_s=0.01, retry_max_s=0.2
    )
    await writer.start()
    records = [r for i in range(10) for r in _call(f"c{i}", 40)]
    try:
        for i, r in enumerate(records):
            writer.submit(r)
            if i % 100 == 0:
                await asyncio.sleep(0.01)  # let the writer fail a few times along the way
        await asyncio.sleep(0.5)
        assert writer.stats.written == 0
        assert writer.stats.spooled == len(records)
        assert writer.stats.spool_segments > 1
        writer.replace_engine(engine)
        await asyncio.wait_for(writer.flush(), 10)
    finally:
        await writer.aclose()
        await dead.dispose()
    # Ended calls prove the order held: an end replayed before its start would update nothing.
    assert await _counts(engine) == {"calls": 10, "events": 400, "turns": 10, "outbox": 30, "ended": 10}
    assert (writer.stats.replayed, writer.stats.rejected, writer.stats.dropped) == (len(records), 0, 0)
    assert list((tmp_path / "spool").glob("*.jsonl")) == []


async def test_queue_overflow_spills_to_disk_instead_of_dropping(engine: AsyncEngine, tmp_path: Path) -> None:
    dead = create_engine(_dead_url(), connect_timeout_s=1)
    writer = CallLogWriter(
        dead, spool_dir=tmp_path / "spool", batch_size=10, max_queue=100, retry_initial_s=5, retry_max_s=5
    )
    await writer.start()
    records = _call("big", 1000)
    try:
        await asyncio.sleep(0.1)
        for r in records:
            writer.submit(r)
        await asyncio.sleep(0.3)  # the writer is in its 5 s back-off: only the spiller runs
        assert writer.stats.queued <= 100
        assert writer.stats.spooled >= len(records) - 100
        writer.replace_engine(engine)
    finally:
        await writer.aclose(timeout_s=15)
        await dead.dispose()
    assert (await _counts(engine))["events"] == 1000
    assert writer.stats.dropped == 0


async def test_closing_while_down_keeps_everything_for_the_next_writer(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    dead = create_engine(_dead_url(), connect_timeout_s=1)
    writer = CallLogWriter(dead, spool_dir=tmp_path / "spool", retry_initial_s=10)
    await writer.start()
    for r in _call("a", 30):
        writer.submit(r)
    await writer.aclose(timeout_s=2)
    await dead.dispose()
    assert writer.stats.spooled == 33
    writer = CallLogWriter(engine, spool_dir=tmp_path / "spool")
    await writer.start()
    await asyncio.wait_for(writer.flush(), 10)
    await writer.aclose()
    assert await _counts(engine) == {"calls": 1, "events": 30, "turns": 1, "outbox": 3, "ended": 1}


async def test_records_the_database_refuses_are_kept_aside(engine: AsyncEngine, tmp_path: Path) -> None:
    writer = CallLogWriter(engine, spool_dir=tmp_path / "spool")
    await writer.start()
    for r in _call("a", 5, end=False):
        writer.submit(r)
    writer.submit(EventRecord("no-such-call", 0, "orphan", T0))  # foreign key to nothing
    writer.submit(EventRecord("a", 99, "late", T0))
    await asyncio.wait_for(writer.flush(), 10)
    await writer.aclose()
    assert (await _counts(engine))["events"] == 6
    assert writer.stats.rejected == 1
    lines = (tmp_path / "spool" / "rejected.jsonl").read_text().splitlines()
    assert [json.loads(line)["record"]["call_id"] for line in lines] == ["no-such-call"]


def test_batch_size_must_fit_the_queue(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        CallLogWriter(
            create_engine("sqlite+aiosqlite:///:memory:"), spool_dir=tmp_path, batch_size=10, max_queue=5
        )


async def test_submit_after_close_and_flush_before_start_are_errors(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    writer = CallLogWriter(engine, spool_dir=tmp_path / "spool")
    with pytest.raises(RuntimeError, match="before start"):
        await writer.flush()
    await writer.start()
    await writer.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit(EventRecord("a", 0, "x", T0))


async def test_closing_a_writer_that_never_started_spools_its_queue(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    writer = CallLogWriter(engine, spool_dir=tmp_path / "spool")
    for r in _call("a", 3):
        writer.submit(r)
    await writer.aclose()
    assert writer.stats.spooled == 6
    assert len(list((tmp_path / "spool").glob("*.jsonl"))) == 1
