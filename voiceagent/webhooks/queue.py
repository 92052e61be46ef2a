"""The delivery queue in the database: fan-out of outbox events, claiming due deliveries, outcomes.

Several API processes may run a dispatcher on one Postgres database: fan-out and claims lock rows
with ``FOR UPDATE SKIP LOCKED``, so each row goes to one process, and a claim is a lease
(``next_attempt_at`` pushed past the send's timeout) rather than a state, so a process that dies
mid-send only delays that delivery. SQLite has no row locks: one dispatcher per database there.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import Select, Table, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from voiceagent.store.models import Call, Turn, WebhookOutbox, utcnow
from voiceagent.webhooks.endpoints import secrets_in_use
from voiceagent.webhooks.models import WebhookDelivery, WebhookEndpoint

__all__ = [
    "Job",
    "Outcome",
    "claim_due",
    "event_body",
    "fan_out",
    "prune",
    "record_outcome",
    "record_outcomes",
    "release",
]

_Q = TypeVar("_Q", bound=Select[*tuple[Any, ...]])
_GONE_REASON = "the endpoint answered 410 Gone"
_SUMMARY_TURNS = 3
_CLIP_CHARS = 200


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed delivery attempt: everything needed to send it without the database."""

    delivery_id: int
    endpoint_id: str
    url: str
    secrets: tuple[str, ...]
    msg_id: str
    event_type: str
    body: str
    attempt: int  # 1-based, counting every attempt this delivery has had


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt went; ``gone`` is an HTTP 410, which disables the endpoint."""

    ok: bool
    latency_ms: float
    response_code: int | None = None
    error: str | None = None
    at: datetime | None = None  # when the attempt ended (default: when it is recorded)

    @property
    def gone(self) -> bool:
        return self.response_code == 410


def event_body(event_type: str, created_at: datetime, payload: dict[str, Any]) -> str:
    """The JSON body every endpoint receives: ``{"type", "timestamp", "data"}`` (Standard Webhooks)."""
    message = {"type": event_type, "timestamp": created_at.isoformat(), "data": payload}
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _locked(session: AsyncSession, query: _Q, *of: Any) -> _Q:
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True, of=of or None)
    return query


def _call_id(row: WebhookOutbox) -> str | None:
    value = row.payload.get("call_id", row.payload.get("id") if row.event_type == "call.started" else None)
    return value if isinstance(value, str) else None


async def _agents_of(session: AsyncSession, call_ids: set[str]) -> dict[str, str | None]:
    if not call_ids:
        return {}
    rows = await session.execute(select(Call.id, Call.agent).where(Call.id.in_(call_ids)))
    return {call_id: agent for call_id, agent in rows.all()}


async def _summaries(session: AsyncSession, call_ids: set[str]) -> dict[str, dict[str, Any]]:
    """What ``call.ended`` adds under ``summary``: who, how long, how many turns, what was asked."""
    if not call_ids:
        return {}
    calls = (await session.scalars(select(Call).where(Call.id.in_(call_ids)))).all()
    turn_query = select(Turn).where(Turn.call_id.in_(call_ids)).order_by(Turn.call_id, Turn.index)
    turns = (await session.scalars(turn_query)).all()
    out: dict[str, dict[str, Any]] = {}
    for call in calls:
        own = [t for t in turns if t.call_id == call.id]
        said = [t.text[:_CLIP_CHARS] for t in own if t.speaker == "caller" and t.text.strip()]
        duration = (call.ended_at - call.started_at).total_seconds() if call.ended_at else None
        out[call.id] = {
            "agent": call.agent,
            "channel": call.channel,
            "direction": call.direction,
            "from_number": call.from_number,
            "to_number": call.to_number,
            "duration_s": duration,
            "turns": len(own),
            "caller_said": said[:_SUMMARY_TURNS],
            "interrupted_replies": sum(1 for t in own if t.truncated),
        }
    return out


async def fan_out(session: AsyncSession, *, limit: int = 100, now: datetime | None = None) -> int:
    """Turn up to ``limit`` new outbox events into one pending delivery per subscribed endpoint.

    Marks each event handed over (``delivered_at``) in the same transaction, so an event is fanned
    out once; a replay after a crash before commit is absorbed by the (endpoint, outbox) key.
    Returns the number of deliveries created.
    """
    at = now or utcnow()
    query = select(WebhookOutbox).where(WebhookOutbox.delivered_at.is_(None)).order_by(WebhookOutbox.id)
    events = list((await session.scalars(_locked(session, query.limit(limit)))).all())
    if not events:
        return 0
    enabled = select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))
    endpoints = (await session.scalars(enabled)).all()
    call_ids = {c for c in map(_call_id, events) if c is not None}
    agents = await _agents_of(session, call_ids)
    ended = {c for e in events if e.event_type == "call.ended" and (c := _call_id(e)) is not None}
    summaries = await _summaries(session, ended)
    rows: list[dict[str, Any]] = []
    for event in events:
        call_id = _call_id(event)
        if event.event_type == "call.ended" and call_id in summaries:
            # A new dict: the JSON column notices replacement, not mutation in place.
            event.payload = {**event.payload, "summary": summaries[call_id]}
        agent = agents.get(call_id) if call_id is not None else None
        for endpoint in endpoints:
            if event.event_type not in endpoint.event_types:
                continue
            if endpoint.agent is not None and endpoint.agent != agent:
                continue
            rows.append(
                {
                    "endpoint_id": endpoint.id,
                    "outbox_id": event.id,
                    "event_id": event.event_id,
                    "event_type": event.event_type,
                    "status": "pending",
                    "attempts": 0,
                    "retry_step": 0,
                    "next_attempt_at": at,
                    "created_at": at,
                }
            )
        event.delivered_at = at
    if rows:
        await session.execute(_insert_ignore(session), rows)
    await session.flush()
    return len(rows)


def _insert_ignore(session: AsyncSession) -> Any:
    table = cast(Table, WebhookDelivery.__table__)
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


async def claim_due(
    session: AsyncSession,
    *,
    limit: int,
    lease_s: float,
    now: datetime | None = None,
    in_flight: Mapping[str, int] | None = None,
    per_endpoint: int | None = None,
) -> list[Job]:
    """Lease up to ``limit`` due deliveries of enabled endpoints for ``lease_s`` and return them.

    With ``per_endpoint``, no endpoint gets more than that many attempts in flight (counting
    ``in_flight``, the caller's own sends per endpoint): a slow or dead endpoint then holds a
    share of the sending slots, not all of them, and the others' events keep flowing.
    """
    at = now or utcnow()
    query = (
        select(WebhookDelivery, WebhookEndpoint, WebhookOutbox)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .join(WebhookOutbox, WebhookOutbox.id == WebhookDelivery.outbox_id)
        .where(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= at,
            WebhookEndpoint.enabled.is_(True),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    busy = Counter(in_flight or {})
    if per_endpoint is not None:
        full = [endpoint_id for endpoint_id, n in busy.items() if n >= per_endpoint]
        if full:
            query = query.where(WebhookDelivery.endpoint_id.not_in(full))
    rows = (await session.execute(_locked(session, query, WebhookDelivery))).all()
    lease_until = at + timedelta(seconds=lease_s)
    jobs = []
    for delivery, endpoint, event in rows:
        if per_endpoint is not None and busy[endpoint.id] >= per_endpoint:
            continue  # left unleased: due for the next claim, here or in another process
        busy[endpoint.id] += 1
        delivery.next_attempt_at = lease_until
        jobs.append(
            Job(
                delivery_id=delivery.id,
                endpoint_id=endpoint.id,
                url=endpoint.url,
                secrets=tuple(secrets_in_use(endpoint, now=at)),
                msg_id=event.event_id,
                event_type=event.event_type,
                body=event_body(event.event_type, event.created_at, event.payload),
                attempt=delivery.attempts + 1,
            )
        )
    await session.flush()
    return jobs


async def record_outcome(
    session: AsyncSession,
    *,
    job: Job,
    outcome: Outcome,
    schedule_s: Sequence[float],
    now: datetime | None = None,
) -> WebhookDelivery | None:
    """Write one attempt into the delivery log; see :func:`record_outcomes`."""
    rows = await record_outcomes(session, results=[(job, outcome)], schedule_s=schedule_s, now=now)
    return rows[0] if rows else await session.get(WebhookDelivery, job.delivery_id)


async def record_outcomes(
    session: AsyncSession,
    *,
    results: Sequence[tuple[Job, Outcome]],
    schedule_s: Sequence[float],
    now: datetime | None = None,
) -> list[WebhookDelivery]:
    """Write attempts into the delivery log and schedule the next ones (or give up); returns the
    deliveries changed. One query and one flush for the whole batch.

    Success ends a delivery; a 410 fails it and disables the endpoint; any other failure (an error
    status, a timeout, a refused connection) waits for the next step of ``schedule_s`` and fails
    the delivery when the schedule is used up. Deliveries no longer pending (deleted with their
    endpoint, or settled by another process after a lease ran out) are left alone.
    """
    if not results:
        return []
    ids = [job.delivery_id for job, _ in results]
    found = await session.scalars(select(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
    rows = {row.id: row for row in found.all()}
    changed: list[WebhookDelivery] = []
    gone: set[str] = set()
    for job, outcome in results:
        delivery = rows.get(job.delivery_id)
        if delivery is None or delivery.status != "pending":
            continue
        _apply(delivery, outcome, schedule_s, outcome.at or now or utcnow())
        if outcome.gone:
            gone.add(job.endpoint_id)
        changed.append(delivery)
    if gone:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id.in_(gone))
            .values(
                enabled=False, disabled_reason="the endpoint answered 410 Gone", updated_at=now or utcnow()
            )
        )
    await session.flush()
    return changed


def _apply(delivery: WebhookDelivery, outcome: Outcome, schedule_s: Sequence[float], at: datetime) -> None:
    delivery.attempts += 1
    delivery.last_attempt_at = at
    delivery.response_code = outcome.response_code
    delivery.latency_ms = outcome.latency_ms
    delivery.last_error = outcome.error
    if outcome.ok:
        delivery.status = "succeeded"
        delivery.delivered_at = at
        delivery.next_attempt_at = None
    elif outcome.gone:
        delivery.status = "failed"
        delivery.next_attempt_at = None
    else:
        delivery.retry_step += 1
        if delivery.retry_step < len(schedule_s):
            delivery.next_attempt_at = at + timedelta(seconds=schedule_s[delivery.retry_step])
        else:
            delivery.status = "failed"
            delivery.next_attempt_at = None


async def release(session: AsyncSession, *, delivery_ids: Sequence[int], now: datetime | None = None) -> None:
    """Make leased deliveries due again at once (a dispatcher stopping before it sent them)."""
    if delivery_ids:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(delivery_ids), WebhookDelivery.status == "pending")
            .values(next_attempt_at=now or utcnow())
        )


async def prune(session: AsyncSession, *, older_than: datetime) -> tuple[int, int]:
    """Delete settled deliveries created before ``older_than``, and the outbox events handed out
    before it that no delivery needs any more; returns (deliveries, events) deleted.

    Pending deliveries and their events are kept whatever their age: they are still owed.
    """
    deliveries = await session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.status != "pending", WebhookDelivery.created_at < older_than
        )
    )
    still_needed = select(WebhookDelivery.id).where(WebhookDelivery.outbox_id == WebhookOutbox.id).exists()
    events = await session.execute(
        delete(WebhookOutbox).where(
            WebhookOutbox.delivered_at.is_not(None), WebhookOutbox.delivered_at < older_than, ~still_needed
        )
    )
    return _rowcount(deliveries), _rowcount(events)


def _rowcount(result: Any) -> int:
    count = getattr(result, "rowcount", 0)
    return count if isinstance(count, int) and count >= 0 else 0
