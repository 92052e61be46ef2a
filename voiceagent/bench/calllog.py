"""Call-log write path: how long ``CallLogWriter.submit`` holds the media loop, and rows per second.

Simulates ``calls`` calls (``concurrent`` of them live at once), each submitting a start, about
``events_per_call`` timeline events, two turns and an end, as fast as one event loop can produce
them. Every ``submit()`` is timed on its own; that time is what the media loop waits for the call
log (the target is effectively zero: microseconds). Rows per second is end to end: from the first
submit until everything is committed. Without a URL it writes to a throw-away SQLite file; with a
Postgres URL it migrates that database to head, writes calls named ``bench-<run>-*`` and deletes
them again.
"""

from __future__ import annotations

import asyncio
import os
import platform
import tempfile
import time
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from voiceagent.bench.stats import percentile
from voiceagent.config import Settings
from voiceagent.store.engine import create_engine, display_url
from voiceagent.store.migrate import upgrade_async
from voiceagent.store.models import Call, WebhookOutbox
from voiceagent.store.records import CallEnded, CallStarted, EventRecord, LogRecord, TurnRecord
from voiceagent.store.writer import CallLogWriter

__all__ = ["run_calllog_bench"]


def _call_records(call_id: str, events: int) -> list[LogRecord]:
    t0 = datetime.now(UTC)
    records: list[LogRecord] = [
        CallStarted(call_id, "inbound", "sip", t0, from_number="+15550100", agent="bench")
    ]
    for n in range(events):
        at = t0 + timedelta(milliseconds=20 * n)
        records.append(EventRecord(call_id, n, "vad.prob", at, 20.0 * n, {"p": 0.5, "frame": n}))
    records.append(TurnRecord(call_id, 0, "caller", "what time do you open", 0.0, 1200.0))
    records.append(TurnRecord(call_id, 1, "agent", "We open at nine.", 1700.0, 3100.0))
    records.append(CallEnded(call_id, t0 + timedelta(milliseconds=20 * events), "caller-hangup"))
    return records


async def _produce(
    writer: CallLogWriter,
    prefix: str,
    calls: int,
    events_per_call: int,
    concurrent: int,
    rate_per_s: float | None,
) -> list[int]:
    """Submit every call's records, one record per live call per tick; returns submit() times (ns).

    With ``rate_per_s`` the ticks are paced to that many records per second overall; without, the
    loop only yields between ticks, which is far more than real calls produce.
    """
    pending = [_call_records(f"{prefix}-{i:06d}", events_per_call) for i in range(calls)]
    pending.reverse()
    live: list[list[LogRecord]] = []
    timings: list[int] = []
    clock = time.perf_counter_ns
    began = time.perf_counter()
    while pending or live:
        while pending and len(live) < concurrent:
            live.append(pending.pop()[::-1])  # reversed: pop() from the end is O(1)
        for records in live:
            record = records.pop()
            start = clock()
            writer.submit(record)
            timings.append(clock() - start)
        live = [r for r in live if r]
        delay = 0.0  # at least yield: one media tick lets the writer (and everything else) run
        if rate_per_s:
            delay = max(0.0, began + len(timings) / rate_per_s - time.perf_counter())
        await asyncio.sleep(delay)
    return timings


async def _delete_bench_rows(engine: AsyncEngine, prefix: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(WebhookOutbox).where(WebhookOutbox.event_id.like(f"%:{prefix}-%")))
        await conn.execute(delete(Call).where(Call.id.like(f"{prefix}-%")))  # cascades to the rest


async def run_calllog_bench(
    settings: Settings,
    *,
    url: str | None = None,
    calls: int = 1000,
    events_per_call: int = 100,
    concurrent: int = 100,
    rate_per_s: float | None = None,
    max_queue: int = 50_000,
) -> dict[str, Any]:
    """Run the simulation against ``url`` (a temporary SQLite file if None); figures in 'table'.

    ``max_queue`` is the writer's; below the number of records it decides whether a fast producer
    measures the database path or the spill-to-disk path.
    """
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="voiceagent-calllog-") as scratch:
        target = url or f"sqlite+aiosqlite:///{Path(scratch) / 'calls.db'}"
        engine = create_engine(target)
        try:
            await upgrade_async(engine)
            writer = CallLogWriter(engine, spool_dir=Path(scratch) / "spool", max_queue=max_queue)
            await writer.start()
            started = time.perf_counter()
            try:
                timings = await _produce(writer, prefix, calls, events_per_call, concurrent, rate_per_s)
                submitted_s = time.perf_counter() - started
                await writer.flush()
                wall_s = time.perf_counter() - started
            finally:
                await writer.aclose()
            if url is not None:
                await _delete_bench_rows(engine, prefix)
        finally:
            await engine.dispose()
    micros = [t / 1000 for t in timings]
    result: dict[str, Any] = {
        "url": display_url(target) if url else "sqlite (temporary file)",
        "calls": calls,
        "events_per_call": events_per_call,
        "concurrent": concurrent,
        "rate_per_s": rate_per_s,
        "max_queue": max_queue,
        "records": len(timings),
        "submit_us": {
            "p50": round(percentile(micros, 50), 2),
            "p99": round(percentile(micros, 99), 2),
            "max": round(max(micros), 1),
        },
        "submit_wall_s": round(submitted_s, 3),
        "wall_s": round(wall_s, 3),
        "rows_per_s": round(len(timings) / wall_s),
        "writer": asdict(writer.stats),
    }
    result["table"] = _table(result, settings)
    return result


def _table(r: dict[str, Any], settings: Settings) -> str:
    s, w = r["submit_us"], r["writer"]
    pace = f"{r['rate_per_s']:.0f} records/s" if r["rate_per_s"] else "as fast as the loop goes"
    return "\n".join(
        [
            "call log write path (CallLogWriter)",
            f"  {r['url']}; {os.cpu_count()} cores ({platform.machine()});"
            f" {r['calls']} calls x ~{r['events_per_call']} events, {r['concurrent']} live at once",
            f"  submission rate {pace}, writer max_queue {r['max_queue']}",
            f"  submit() per record (us):   p50 {s['p50']:.2f}   p99 {s['p99']:.2f}   max {s['max']:.1f}",
            f"  records {r['records']}: submitted in {r['submit_wall_s']:.2f} s,"
            f" all committed after {r['wall_s']:.2f} s -> {r['rows_per_s']} rows/s",
            f"  writer: written {w['written']}, spooled {w['spooled']}, replayed {w['replayed']},"
            f" rejected {w['rejected']}, dropped {w['dropped']}",
        ]
    )
