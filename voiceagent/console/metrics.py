"""The metrics overview, computed from the call log: calls per hour, latencies, barge-in, errors.

Computed in Python over the window's rows rather than in SQL, so it reads the same on SQLite and
Postgres; the window is bounded (at most a week) to keep that cheap.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from voiceagent.bench.stats import percentile
from voiceagent.console.callviews import turn_latencies
from voiceagent.store.models import Call, CallEventRow, Turn

__all__ = ["ERROR_EVENTS", "Overview", "overview"]

# Timeline events that stop the agent's audio when the caller cuts in (DESIGN §7): the first one
# after an onset is when the line went quiet.
_STOP_EVENTS = ("agent_paused", "barge_in")
ERROR_EVENTS = ("engine_error",)
_FAILED_REASONS = ("setup_failed", "error", "engine_error", "failed")


@dataclass(frozen=True, slots=True)
class Overview:
    hours: list[datetime]
    calls_per_hour: list[int]
    calls: int
    first_audio_p50_ms: float | None
    first_audio_p95_ms: float | None
    answered_turns: int
    barge_in_p50_ms: float | None
    barge_in_p95_ms: float | None
    barge_ins: int
    error_events: int
    failed_calls: int
    end_reasons: list[tuple[str, int]]


def _pct(values: list[float], q: float) -> float | None:
    return percentile(values, q) if values else None


async def overview(session: AsyncSession, *, now: datetime, hours: int) -> Overview:
    """Figures for the ``hours`` before ``now`` (rounded up to the hour)."""
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    calls = list(
        (await session.scalars(select(Call).where(Call.started_at >= start, Call.started_at < end))).all()
    )
    ids = [c.id for c in calls]
    per_hour = Counter(c.started_at.replace(minute=0, second=0, microsecond=0) for c in calls)
    slots = [start + timedelta(hours=i) for i in range(hours)]

    latencies: list[float] = []
    stops: list[float] = []
    errors = 0
    if ids:
        turns_by_call: dict[str, list[Turn]] = defaultdict(list)
        for turn in (
            await session.scalars(
                select(Turn).where(Turn.call_id.in_(ids)).order_by(Turn.call_id, Turn.index)
            )
        ).all():
            turns_by_call[turn.call_id].append(turn)
        for turns in turns_by_call.values():
            latencies.extend(t.latency_ms for t in turn_latencies(turns))
        events = (
            await session.scalars(
                select(CallEventRow)
                .where(CallEventRow.call_id.in_(ids), CallEventRow.kind.in_((*_STOP_EVENTS, *ERROR_EVENTS)))
                .order_by(CallEventRow.call_id, CallEventRow.seq)
            )
        ).all()
        first_stop: dict[tuple[str, float], float] = {}
        for event in events:
            if event.kind in ERROR_EVENTS:
                errors += 1
                continue
            onset = event.data.get("onset_ms")
            if isinstance(onset, int | float) and event.media_ms is not None:
                first_stop.setdefault((event.call_id, float(onset)), max(0.0, event.media_ms - onset))
        stops = list(first_stop.values())
    reasons = Counter(c.end_reason or ("live" if c.ended_at is None else "unknown") for c in calls)
    return Overview(
        hours=slots,
        calls_per_hour=[per_hour.get(slot, 0) for slot in slots],
        calls=len(calls),
        first_audio_p50_ms=_pct(latencies, 50),
        first_audio_p95_ms=_pct(latencies, 95),
        answered_turns=len(latencies),
        barge_in_p50_ms=_pct(stops, 50),
        barge_in_p95_ms=_pct(stops, 95),
        barge_ins=len(stops),
        error_events=errors,
        failed_calls=sum(n for reason, n in reasons.items() if reason in _FAILED_REASONS),
        end_reasons=reasons.most_common(),
    )
