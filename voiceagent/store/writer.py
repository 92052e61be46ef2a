"""CallLogWriter: the media layer hands over call-log records and never waits on the database.

    submit() ──► deque ──► batch (≤ batch_size or every flush_interval_s) ──► one transaction
                  │ overflow                    │ database down
                  ▼                             ▼
               spool segment (JSONL, fsync'd) ◄─┘ ──► replayed oldest first once the database is back

Order is kept end to end: records leave the queue in submission order, a batch that fails keeps the
spool number reserved when it left, and nothing is taken from the queue while the spool holds older
records. Every write is idempotent (see :mod:`voiceagent.store.repository`), so replaying a batch
whose commit was in fact acknowledged just before the connection dropped leaves one copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from voiceagent.store import repository
from voiceagent.store.engine import session_factory
from voiceagent.store.records import (
    CallEnded,
    CallStarted,
    EventRecord,
    LogRecord,
    RecordingRecord,
    TurnRecord,
)
from voiceagent.store.spool import Spool

__all__ = ["CallLogWriter", "WriterStats", "apply_batch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters for metrics. ``written`` includes ``replayed``; ``dropped`` stays 0 by design."""

    submitted: int
    written: int
    spooled: int
    replayed: int
    rejected: int
    dropped: int
    queued: int
    spool_segments: int


class _DatabaseDownError(Exception):
    """A batch could not be written for a reason that retrying may fix (connection, lock, restart)."""


async def apply_batch(session: AsyncSession, batch: Sequence[LogRecord]) -> None:
    """Write ``batch`` in the session's transaction: one bulk statement per kind of record.

    Phases instead of submission order: calls start before anything refers to them and end after,
    which is the only order the foreign keys care about, and each kind becomes one statement.
    """
    by_type: dict[type[Any], list[Any]] = {}
    for record in batch:
        by_type.setdefault(type(record), []).append(record)
    await repository.record_calls_started(session, calls=by_type.get(CallStarted, []))
    await repository.add_events(session, events=by_type.get(EventRecord, []))
    await repository.add_turns(session, turns=by_type.get(TurnRecord, []))
    await repository.add_recordings(session, recordings=by_type.get(RecordingRecord, []))
    await repository.record_calls_ended(session, calls=by_type.get(CallEnded, []))


def _is_data_error(exc: BaseException) -> bool:
    # Bad records (a foreign key to no call, a naive datetime) fail the same way on every retry.
    if isinstance(exc, IntegrityError | DataError):
        return True
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


class CallLogWriter:
    """Batches call-log records into the database in the background, spooling to disk when it can't.

    ``submit`` is for the event loop's thread (as everything in the media layer is); ``start`` and
    ``aclose`` bracket the background tasks. ``aclose`` writes what is queued, or spools it if the
    database is down; the next writer on the same ``spool_dir`` replays it.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        spool_dir: Path,
        batch_size: int = 500,
        flush_interval_s: float = 0.1,
        max_queue: int = 50_000,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
    ) -> None:
        if batch_size < 1 or max_queue < batch_size:
            raise ValueError("need 1 <= batch_size <= max_queue")
        self._sessions = session_factory(engine)
        self.engine = engine
        self._spool = Spool(spool_dir)
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_queue = max_queue
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._queue: deque[LogRecord] = deque()
        self._wakeup = asyncio.Event()  # a full batch is waiting, or closing
        self._overflow = asyncio.Event()  # the queue passed max_queue: spill it
        self._spills_idle = asyncio.Event()
        self._spills_idle.set()
        self._spills_running = 0
        self._inflight: tuple[int, list[LogRecord]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._closed = False
        self._counts = dict.fromkeys(("submitted", "written", "spooled", "replayed", "rejected"), 0)

    # ---- the media layer's side -------------------------------------------------------------

    def submit(self, record: LogRecord) -> None:
        """Queue one record; O(1), never blocks, never drops (overflow goes to the spool).

        The deque has no ``maxlen`` on purpose (that would drop the oldest): past ``max_queue`` the
        spiller moves the queue to disk. Raises RuntimeError after :meth:`aclose`, when nothing
        would write the record any more.
        """
        if self._closed:
            raise RuntimeError("CallLogWriter is closed")
        self._queue.append(record)
        self._counts["submitted"] += 1
        size = len(self._queue)
        if size >= self._batch_size:
            self._wakeup.set()
        if size > self._max_queue:
            self._overflow.set()

    @property
    def stats(self) -> WriterStats:
        """A snapshot of the counters."""
        return WriterStats(
            **self._counts, dropped=0, queued=len(self._queue), spool_segments=len(self._spool)
        )

    def replace_engine(self, engine: AsyncEngine) -> None:
        """Write through ``engine`` from the next batch on (the caller disposes of the old one)."""
        self.engine = engine
        self._sessions = session_factory(engine)

    # ---- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background writer and spiller (replaying any spool left by an earlier run)."""
        if self._tasks:
            raise RuntimeError("CallLogWriter already started")
        self._tasks = {
            asyncio.create_task(self._run(), name="calllog-writer"),
            asyncio.create_task(self._spill_on_overflow(), name="calllog-spiller"),
        }

    async def flush(self) -> None:
        """Wait until everything submitted so far is in the database (waits while it is down)."""
        if not self._tasks:
            raise RuntimeError("CallLogWriter.flush() before start() would never return")
        while self._queue or self._inflight is not None or len(self._spool) or self._spills_running:
            self._wakeup.set()
            await asyncio.sleep(self._flush_interval_s / 4)

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Write or spool what is left, then stop; after ``timeout_s`` the rest goes to the spool."""
        self._closing = True
        self._closed = True
        self._wakeup.set()
        self._overflow.set()
        tasks, self._tasks = self._tasks, set()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._inflight is not None:  # cut off mid-write: may be committed too; replay is idempotent
            seq, batch = self._inflight
            self._inflight = None
            await self._spool_batch(seq, batch)
        await self._spill()

    # ---- background: writing ------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self._retry_initial_s
        while True:
            try:
                worked = await self._step()
            except Exception as exc:
                await self._spill()  # while down, keep memory small and the records crash-safe
                if self._closing:
                    log.warning("call log: database down at close, %d segments spooled", len(self._spool))
                    return
                if isinstance(exc, _DatabaseDownError):
                    log.warning("call log: database unavailable (%s); retrying in %.1f s", exc, delay)
                else:  # a spool file we cannot read, or a bug: keep the records and keep trying
                    log.exception("call log: writer step failed; retrying in %.1f s", delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup_on_close(), timeout=delay)
                delay = min(delay * 2, self._retry_max_s)
                continue
            if worked:
                delay = self._retry_initial_s
                continue
            if self._closing:
                return
            await self._wait_for_batch()

    async def _wakeup_on_close(self) -> None:
        while not self._closing:
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _wait_for_batch(self) -> None:
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout=self._flush_interval_s)

    async def _step(self) -> bool:
        """Write one spool segment or one batch from the queue; False when there was nothing."""
        await self._spills_idle.wait()  # a spill in progress holds records older than the queue's
        oldest = self._spool.oldest()
        if oldest is not None:
            await self._replay(oldest)
            return True
        if not self._queue:
            return False
        count = min(len(self._queue), self._batch_size)
        batch = [self._queue.popleft() for _ in range(count)]
        self._inflight = (self._spool.reserve(), batch)
        try:
            await self._write(batch)
        except _DatabaseDownError:
            seq, _ = self._inflight
            self._inflight = None
            await self._spool_batch(seq, batch)
            raise
        self._inflight = None
        self._counts["written"] += len(batch)
        return True

    async def _replay(self, seq: int) -> None:
        records = await asyncio.to_thread(self._spool.read, seq)
        # A segment may be one large spill: write it in batches; on a failure the whole segment
        # is replayed again later, and the batches already written are skipped as duplicates.
        for start in range(0, len(records), self._batch_size):
            await self._write(records[start : start + self._batch_size])
        await asyncio.to_thread(self._spool.remove, seq)
        self._counts["written"] += len(records)
        self._counts["replayed"] += len(records)
        log.info("call log: replayed %d records from spool segment %d", len(records), seq)

    async def _write(self, batch: Sequence[LogRecord]) -> None:
        try:
            async with self._sessions() as session, session.begin():
                await apply_batch(session, batch)
        except Exception as exc:
            if not _is_data_error(exc):
                raise _DatabaseDownError(_short(exc)) from exc
            await self._write_one_by_one(batch)

    async def _write_one_by_one(self, batch: Sequence[LogRecord]) -> None:
        # Find the bad records so the good ones of the batch still land; keep the bad ones on disk.
        for record in batch:
            try:
                async with self._sessions() as session, session.begin():
                    await apply_batch(session, [record])
            except Exception as exc:
                if not _is_data_error(exc):
                    raise _DatabaseDownError(_short(exc)) from exc
                log.error("call log: record rejected by the database: %s: %s", record, _short(exc))
                await asyncio.to_thread(self._spool.reject, [record], _short(exc))
                self._counts["rejected"] += 1

    # ---- background: spilling -----------------------------------------------------------------

    async def _spill_on_overflow(self) -> None:
        while not self._closing:
            await self._overflow.wait()
            self._overflow.clear()
            if len(self._queue) > self._max_queue:
                log.warning(
                    "call log: queue over %d records, spilling to %s", self._max_queue, self._spool.directory
                )
                await self._spill()

    async def _spill(self) -> None:
        """Move the whole queue into one spool segment."""
        if not self._queue:
            return
        batch = list(self._queue)
        self._queue.clear()
        await self._spool_batch(self._spool.reserve(), batch)

    async def _spool_batch(self, seq: int, batch: list[LogRecord]) -> None:
        self._spills_running += 1
        self._spills_idle.clear()
        try:
            await asyncio.to_thread(self._spool.write, seq, batch)
            self._counts["spooled"] += len(batch)
        except OSError as exc:
            # Disk full or gone: the records are still ours. Put them back ahead of newer ones.
            log.error(
                "call log: cannot write spool segment %d (%s); keeping %d in memory", seq, exc, len(batch)
            )
            self._queue.extendleft(reversed(batch))
        finally:
            self._spills_running -= 1
            if self._spills_running == 0:
                self._spills_idle.set()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
