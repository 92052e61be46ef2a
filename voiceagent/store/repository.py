"""Keyword-only async functions over the call log.

None of them commits: they run inside the caller's transaction (``async with session.begin()``),
so the webhook outbox row written here lands or vanishes together with the change it describes.
Every write is idempotent (insert-or-ignore on the natural key, updates that set absolute values),
because the writer may replay a batch whose commit it never saw acknowledged.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Insert, Table, bindparam, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from voiceagent.store.models import Base, Call, CallEventRow, Recording, Turn, WebhookOutbox, utcnow
from voiceagent.store.records import CallEnded, CallStarted, EventRecord, RecordingRecord, TurnRecord

__all__ = [
    "MAX_PAGE",
    "add_events",
    "add_recording",
    "add_recordings",
    "add_turn",
    "add_turns",
    "decode_cursor",
    "encode_cursor",
    "get_call",
    "list_calls",
    "record_call_ended",
    "record_call_started",
    "record_calls_ended",
    "record_calls_started",
]

MAX_PAGE = 500


def _insert_ignore(session: AsyncSession, model: type[Base]) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING in the session's dialect (Postgres or SQLite)."""
    # The Core table, not the mapped class: the ORM's bulk path costs more and adds nothing here.
    table = cast(Table, model.__table__)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"insert-or-ignore for {dialect}")


def _outbox_row(event_id: str, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": event_type, "payload": payload, "created_at": utcnow()}


def _values(record: Any) -> dict[str, Any]:
    # Shallow on purpose: dataclasses.asdict deep-copies every event's data dict, which was most of
    # the cost of a bulk insert.
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


async def _insert_many(session: AsyncSession, model: type[Base], rows: list[dict[str, Any]]) -> None:
    if rows:  # executemany with no parameter sets is an error, not a no-op
        await session.execute(_insert_ignore(session, model), rows)


async def record_calls_started(session: AsyncSession, *, calls: Sequence[CallStarted]) -> None:
    """Insert the calls' rows (once each) and queue a ``call.started`` for each, in two statements."""
    rows = [_values(c) for c in calls]
    await _insert_many(session, Call, rows)
    # call_id as in every other event's payload; id kept for receivers written against it.
    started = [{**_jsonable(r), "call_id": r["id"]} for r in rows]
    outbox = [_outbox_row(f"call.started:{r['id']}", "call.started", r) for r in started]
    await _insert_many(session, WebhookOutbox, outbox)


async def record_call_started(session: AsyncSession, *, call: CallStarted) -> None:
    """Insert the call's row (once) and queue ``call.started``."""
    await record_calls_started(session, calls=[call])


async def record_calls_ended(session: AsyncSession, *, calls: Sequence[CallEnded]) -> None:
    """Set the end of each call (and its answer time if still unknown) and queue ``call.ended``."""
    if not calls:
        return
    # Absolute values and COALESCE: applying the same end twice gives the same row. The Core table:
    # an executemany UPDATE on the mapped class would be the ORM's bulk-by-primary-key path.
    calls_table = cast(Table, Call.__table__)
    statement = (
        update(calls_table)
        .where(calls_table.c.id == bindparam("b_call_id"))
        .values(
            ended_at=bindparam("b_ended_at"),
            end_reason=bindparam("b_end_reason"),
            sip_cause=bindparam("b_sip_cause"),
            answered_at=func.coalesce(calls_table.c.answered_at, bindparam("b_answered_at")),
        )
    )
    rows = [_values(c) for c in calls]
    await session.execute(statement, [{f"b_{k}": v for k, v in r.items()} for r in rows])
    outbox = [_outbox_row(f"call.ended:{r['call_id']}", "call.ended", _jsonable(r)) for r in rows]
    await _insert_many(session, WebhookOutbox, outbox)


async def record_call_ended(session: AsyncSession, *, call: CallEnded) -> None:
    """Set the end of the call (and its answer time if still unknown) and queue ``call.ended``."""
    await record_calls_ended(session, calls=[call])


async def add_turns(session: AsyncSession, *, turns: Sequence[TurnRecord]) -> None:
    """Insert completed turns (once each) and queue a ``turn.completed`` for each."""
    rows = [_values(t) for t in turns]
    await _insert_many(session, Turn, rows)
    outbox = [_outbox_row(f"turn.completed:{r['call_id']}:{r['index']}", "turn.completed", r) for r in rows]
    await _insert_many(session, WebhookOutbox, outbox)


async def add_turn(session: AsyncSession, *, turn: TurnRecord) -> None:
    """Insert a completed turn (once) and queue ``turn.completed``."""
    await add_turns(session, turns=[turn])


async def add_events(
    session: AsyncSession, *, events: Sequence[EventRecord], call_id: str | None = None
) -> None:
    """Insert timeline events in one statement; ones already stored (same call and seq) are skipped.

    ``call_id``, when given, asserts that every event belongs to that call; the writer leaves it out
    to insert a batch that spans many calls at once.
    """
    if call_id is not None and any(e.call_id != call_id for e in events):
        raise ValueError(f"add_events(call_id={call_id!r}) got events of another call")
    await _insert_many(session, CallEventRow, [_values(e) for e in events])
    outbox = [row for e in events if (row := _event_outbox_row(e)) is not None]
    await _insert_many(session, WebhookOutbox, outbox)


def _event_outbox_row(event: EventRecord) -> dict[str, Any] | None:
    """The webhook a timeline event stands for, if any (answer, transfer, DTMF), else None."""
    kind, data = event.kind, event.data
    if kind == "dtmf":
        event_type, event_id = "dtmf.received", f"dtmf.received:{event.call_id}:{event.seq}"
    elif kind == "call_started" or (kind == "sip_state" and data.get("state") == "confirmed"):
        # Media starts flowing when a call is answered; the first such event wins (one per call).
        event_type, event_id = "call.answered", f"call.answered:{event.call_id}"
    elif kind == "call_transferred" or (
        kind == "transfer_status" and data.get("final") and 200 <= int(data.get("code") or 0) < 300
    ):
        event_type, event_id = "call.transferred", f"call.transferred:{event.call_id}"
    else:
        return None
    payload = {
        "call_id": event.call_id,
        "seq": event.seq,
        "at": event.at.isoformat(),
        "media_ms": event.media_ms,
    }
    return _outbox_row(event_id, event_type, {**payload, "data": data})


async def add_recordings(session: AsyncSession, *, recordings: Sequence[RecordingRecord]) -> None:
    """Insert where legs' audio was written (once per call and leg) and queue ``recording.ready``."""
    rows = [_values(r) for r in recordings]
    await _insert_many(session, Recording, [{**r, "created_at": utcnow()} for r in rows])
    outbox = [_outbox_row(f"recording.ready:{r['call_id']}:{r['leg']}", "recording.ready", r) for r in rows]
    await _insert_many(session, WebhookOutbox, outbox)


async def add_recording(session: AsyncSession, *, recording: RecordingRecord) -> None:
    """Insert where a leg's audio was written (once per call and leg)."""
    await add_recordings(session, recordings=[recording])


def encode_cursor(started_at: datetime, call_id: str) -> str:
    """An opaque cursor pointing just after the call (started_at, id) in newest-first order."""
    raw = f"{started_at.isoformat()}|{call_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of :func:`encode_cursor`; ``ValueError`` for a cursor we did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, call_id = raw.split("|", 1)
        at = datetime.fromisoformat(stamp)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"bad cursor {cursor!r}") from exc
    if at.tzinfo is None or not call_id:
        raise ValueError(f"bad cursor {cursor!r}")
    return at, call_id


async def list_calls(
    session: AsyncSession,
    *,
    limit: int = 50,
    cursor: str | None = None,
    from_number: str | None = None,
    to_number: str | None = None,
    agent: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[Call], str | None]:
    """Calls newest first, ``limit`` at a time; pass the returned cursor back for the next page.

    Keyset pagination on (started_at, id): a page costs the same at any depth, and calls that start
    while someone pages through do not shift the pages already seen. ``since`` is inclusive,
    ``until`` exclusive. The returned cursor is None on the last page.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be in 1..{MAX_PAGE}, got {limit}")
    conditions: list[ColumnElement[bool]] = []
    if cursor is not None:
        at, call_id = decode_cursor(cursor)
        conditions.append(tuple_(Call.started_at, Call.id) < tuple_(at, call_id))
    if from_number is not None:
        conditions.append(Call.from_number == from_number)
    if to_number is not None:
        conditions.append(Call.to_number == to_number)
    if agent is not None:
        conditions.append(Call.agent == agent)
    if since is not None:
        conditions.append(Call.started_at >= since)
    if until is not None:
        conditions.append(Call.started_at < until)
    query = select(Call).where(*conditions).order_by(Call.started_at.desc(), Call.id.desc()).limit(limit + 1)
    rows = list((await session.scalars(query)).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].started_at, rows[-1].id)


async def get_call(session: AsyncSession, *, call_id: str) -> Call | None:
    """One call with its turns, events and recordings loaded (in order), or None."""
    query = (
        select(Call)
        .where(Call.id == call_id)
        .options(selectinload(Call.turns), selectinload(Call.events), selectinload(Call.recordings))
    )
    return (await session.scalars(query)).one_or_none()
