"""Repository functions on SQLite: idempotent writes, the outbox, keyset pagination with filters."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from voiceagent.store import (
    CallEnded,
    CallStarted,
    EventRecord,
    RecordingRecord,
    TurnRecord,
    create_engine,
    session_factory,
)
from voiceagent.store import repository as repo
from voiceagent.store.models import Base, Call, CallEventRow, WebhookOutbox

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine: AsyncEngine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield session_factory(engine)
    await engine.dispose()


def _started(i: int, **kw: object) -> CallStarted:
    values: dict[str, object] = {
        "id": f"call-{i:04d}",
        "direction": "inbound",
        "channel": "sip",
        "started_at": T0 + timedelta(minutes=i // 3),  # three calls per minute: ties on started_at
        "from_number": f"+1555000{i % 5}",
        "to_number": "+18005550100",
        "agent": "sales" if i % 2 else "support",
    }
    values.update(kw)
    return CallStarted(**values)  # type: ignore[arg-type]


async def _count(s: AsyncSession, model: type[Base]) -> int:
    return (await s.execute(select(func.count()).select_from(model))).scalar_one()


async def test_a_whole_call_is_written_once_however_often_it_is_replayed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    started = _started(1, answered_at=None)
    turn = TurnRecord(
        started.id, 0, "agent", "How can I help?", 0.0, 1800.0, truncated=True, audio_end_ms=950.0
    )
    events = [EventRecord(started.id, n, "vad.start", T0, 20.0 * n, {"n": n}) for n in range(5)]
    ended = CallEnded(started.id, T0 + timedelta(seconds=42), "caller-hangup", sip_cause=16, answered_at=T0)
    for _ in range(2):  # the second pass is what a replayed spool batch does
        async with sessions() as s, s.begin():
            await repo.record_call_started(s, call=started)
            await repo.add_turn(s, turn=turn)
            await repo.add_events(s, call_id=started.id, events=events)
            await repo.add_recording(s, recording=RecordingRecord(started.id, "both", "file:///r.wav", 42.0))
            await repo.record_call_ended(s, call=ended)
    async with sessions() as s:
        call = await repo.get_call(s, call_id=started.id)
        outbox = (await s.scalars(select(WebhookOutbox).order_by(WebhookOutbox.id))).all()
        assert await _count(s, CallEventRow) == 5
    assert call is not None
    assert (call.ended_at, call.end_reason, call.sip_cause, call.answered_at) == (
        ended.ended_at,
        "caller-hangup",
        16,
        T0,
    )
    assert [t.audio_end_ms for t in call.turns] == [950.0]
    assert [e.seq for e in call.events] == [0, 1, 2, 3, 4]
    assert [r.leg for r in call.recordings] == ["both"]
    assert [o.event_type for o in outbox] == [
        "call.started",
        "turn.completed",
        "recording.ready",
        "call.ended",
    ]
    assert outbox[1].payload["text"] == "How can I help?"
    assert outbox[2].payload["uri"] == "file:///r.wav"
    assert outbox[3].payload["ended_at"] == ended.ended_at.isoformat()
    assert all(o.delivered_at is None and o.attempts == 0 for o in outbox)


async def test_answered_at_is_not_overwritten_by_the_end(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s, s.begin():
        await repo.record_call_started(s, call=_started(1, answered_at=T0))
        await repo.record_call_ended(
            s,
            call=CallEnded(
                "call-0001", T0 + timedelta(seconds=9), "x", answered_at=T0 + timedelta(seconds=5)
            ),
        )
    async with sessions() as s:
        call = await repo.get_call(s, call_id="call-0001")
    assert call is not None
    assert call.answered_at == T0


async def test_outbox_rows_roll_back_with_the_change(sessions: async_sessionmaker[AsyncSession]) -> None:
    async def start_then_fail() -> None:
        async with sessions() as s, s.begin():
            await repo.record_call_started(s, call=_started(1))
            raise RuntimeError("the rest of the transaction failed")

    with pytest.raises(RuntimeError):
        await start_then_fail()
    async with sessions() as s:
        assert await _count(s, Call) == 0
        assert await _count(s, WebhookOutbox) == 0


async def test_add_events_checks_the_call_id(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s:
        with pytest.raises(ValueError, match="another call"):
            await repo.add_events(s, call_id="a", events=[EventRecord("b", 0, "x", T0)])
        await repo.add_events(s, events=[])  # nothing to do, no statement


async def _page_through(s: AsyncSession, limit: int, **filters: object) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        rows, cursor = await repo.list_calls(s, limit=limit, cursor=cursor, **filters)  # type: ignore[arg-type]
        seen += [r.id for r in rows]
        assert len(rows) <= limit
        if cursor is None:
            return seen


async def test_cursor_pagination_over_250_calls_with_filters(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    calls = [_started(i) for i in range(250)]
    async with sessions() as s, s.begin():
        for c in calls:
            await repo.record_call_started(s, call=c)
    newest_first = sorted(calls, key=lambda c: (c.started_at, c.id), reverse=True)
    async with sessions() as s:
        assert await _page_through(s, 50) == [c.id for c in newest_first]
        assert await _page_through(s, 7) == [c.id for c in newest_first]  # pages split tied timestamps
        by_number = await _page_through(s, 10, from_number="+15550003")
        assert by_number == [c.id for c in newest_first if c.from_number == "+15550003"]
        assert len(by_number) == 50
        since, until = T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)
        window = await _page_through(s, 4, agent="sales", since=since, until=until)
        expected = [c.id for c in newest_first if c.agent == "sales" and since <= c.started_at < until]
        assert window == expected
        assert len(expected) == 15
        assert await _page_through(s, 10, to_number="+19999999999") == []
        rows, cursor = await repo.list_calls(s, limit=250)
        assert len(rows) == 250
        assert cursor is None


async def test_bad_cursors_and_limits_are_value_errors(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as s:
        with pytest.raises(ValueError, match="cursor"):
            await repo.list_calls(s, limit=10, cursor="not-a-cursor")
        with pytest.raises(ValueError, match="limit"):
            await repo.list_calls(s, limit=0)
        assert await repo.get_call(s, call_id="missing") is None
    at = T0 + timedelta(microseconds=1)
    assert repo.decode_cursor(repo.encode_cursor(at, "id|with|bars")) == (at, "id|with|bars")
