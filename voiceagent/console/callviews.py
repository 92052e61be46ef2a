"""The call log as the console shows it: history search, and a call's transcript and latencies."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from voiceagent.store import repository
from voiceagent.store.models import Call, Turn

__all__ = ["HistoryFilter", "TurnLatency", "search_calls", "turn_latencies"]

PAGE = 50


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """What the history page's form asks for; empty strings mean "any"."""

    q: str = ""
    channel: str = ""
    agent: str = ""
    since: datetime | None = None
    until: datetime | None = None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_calls(
    session: AsyncSession, *, where: HistoryFilter, cursor: str | None = None, limit: int = PAGE
) -> tuple[list[Call], str | None]:
    """Calls newest first matching ``where`` (``q`` searches id, numbers and agent), keyset-paged."""
    conditions: list[ColumnElement[bool]] = []
    if where.q:
        pattern = _like(where.q)
        conditions.append(
            or_(
                *(
                    c.ilike(pattern, escape="\\")
                    for c in (Call.id, Call.from_number, Call.to_number, Call.agent)
                )
            )
        )
    if where.channel:
        conditions.append(Call.channel == where.channel)
    if where.agent:
        conditions.append(Call.agent == where.agent)
    if where.since is not None:
        conditions.append(Call.started_at >= where.since)
    if where.until is not None:
        conditions.append(Call.started_at < where.until)
    if cursor:
        at, call_id = repository.decode_cursor(cursor)
        conditions.append(tuple_(Call.started_at, Call.id) < tuple_(at, call_id))
    query = select(Call).where(*conditions).order_by(Call.started_at.desc(), Call.id.desc()).limit(limit + 1)
    rows = list((await session.scalars(query)).all())
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, repository.encode_cursor(rows[-1].started_at, rows[-1].id)


@dataclass(frozen=True, slots=True)
class TurnLatency:
    """From the end of a caller turn to the agent's first audio, as the call log recorded it."""

    index: int
    latency_ms: float


def turn_latencies(turns: list[Turn]) -> list[TurnLatency]:
    """One figure per agent turn that answers the caller turn just before it."""
    found: list[TurnLatency] = []
    for before, turn in itertools.pairwise(turns):
        if before.speaker == "caller" and turn.speaker == "agent":
            found.append(
                TurnLatency(index=len(found) + 1, latency_ms=max(0.0, turn.start_ms - before.end_ms))
            )
    return found
