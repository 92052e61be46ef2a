"""The webhook dispatcher: an asyncio service that moves events from the database to endpoints.

Its loop reads as three steps: fan out new outbox events into deliveries, claim the due ones,
start a send for each; a recorder task writes the outcomes in batches. The dispatcher owns its
loop, its recorder and every send task, and ``aclose()`` cancels and awaits them all, records
what was sent and hands back what it had claimed but not sent, so a restart loses nothing and
delays nothing by a lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voiceagent import __version__
from voiceagent.config import Settings
from voiceagent.errors import WebhookError
from voiceagent.store.models import utcnow
from voiceagent.webhooks.queue import Job, Outcome, claim_due, fan_out, prune, record_outcomes, release
from voiceagent.webhooks.signing import sign_headers

__all__ = ["DispatcherStats", "WebhookDispatcher", "start_dispatcher"]

logger = logging.getLogger(__name__)

# A claim must outlive the send it covers, with room for recording the outcome.
_LEASE_MARGIN_S = 30.0
_DB_RETRY_S = 2.0
_PRUNE_EVERY_S = 3600.0
_ERROR_CHARS = 500


@dataclass(slots=True)
class DispatcherStats:
    """Counters since start: attempts made and how they ended."""

    attempts: int = 0
    succeeded: int = 0
    failed_attempts: int = 0


class WebhookDispatcher:
    """Delivers webhook events from the database, at least once, signed, with retries.

    ``start()`` begins polling; ``wake()`` makes it look now (after a resend, say); ``run_once()``
    does one pass without the loop (tests, benchmarks); ``aclose()`` stops it.
    Outcomes are written in batches by a recorder task: one transaction for many attempts, which
    is what lets one process keep up with many endpoints.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._sessions = sessions
        self._schedule_s = tuple(settings.webhook_retry_schedule_s)
        self._timeout_s = settings.webhook_timeout_s
        self._poll_s = settings.webhook_poll_interval_s
        self._batch = settings.webhook_batch_size
        self._concurrency = settings.webhook_concurrency
        # Claim again once a quarter of the slots are free, not after every single send.
        self._refill = max(1, self._concurrency // 4)
        # While others have events due, one slow or dead endpoint holds half the slots at most.
        self._per_endpoint = max(1, self._concurrency // 2)
        self._lease_s = settings.webhook_timeout_s + _LEASE_MARGIN_S
        self._retention_s = settings.webhook_log_retention_days * 86400.0
        self._last_prune = -math.inf
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            follow_redirects=False,  # a redirect would resend the signed body to a URL nobody registered
            limits=httpx.Limits(max_connections=self._concurrency),
            headers={"user-agent": f"voiceagent-webhooks/{__version__}"},
        )
        self._loop_task: asyncio.Task[None] | None = None
        self._recorder_task: asyncio.Task[None] | None = None
        self._sends: dict[asyncio.Task[Outcome], Job] = {}
        self._results: list[tuple[Job, Outcome]] = []
        self._wake = asyncio.Event()
        self._have_results = asyncio.Event()
        self._last_fan_out = -math.inf
        self.stats = DispatcherStats()

    async def start(self) -> None:
        """Start the polling loop and the recorder (once)."""
        if self._loop_task is None:
            self._recorder_task = asyncio.create_task(self._record_loop(), name="webhook-recorder")
            self._loop_task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    def wake(self) -> None:
        """Look for work now instead of at the next poll."""
        self._wake.set()

    async def run_once(self) -> int:
        """Fan out, claim and send what is due, and record the outcomes; returns attempts made."""
        await self._fan_out()
        jobs = await self._claim(self._batch)
        outcomes = await asyncio.gather(*(self._attempt(job) for job in jobs))
        await self._record(list(zip(jobs, outcomes, strict=True)))
        return len(jobs)

    async def aclose(self) -> None:
        """Stop polling, cancel sends in flight, record what was sent, release the rest, close."""
        sends = list(self._sends.items())
        for task in (self._loop_task, *self._sends):
            if task is not None:
                task.cancel()
        for task in (self._loop_task, *self._sends):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._loop_task = None
        # Sends that finished before the cancel landed have their outcome in _results already.
        unsent = [job.delivery_id for task, job in sends if task.cancelled()]
        self._sends.clear()
        if self._recorder_task is not None:
            self._recorder_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recorder_task
            self._recorder_task = None
        results, self._results = self._results, []
        try:
            await self._record(results)
            if unsent:
                async with self._sessions() as session, session.begin():
                    await release(session, delivery_ids=unsent)
        except (SQLAlchemyError, OSError) as exc:  # their leases expire: sent again, not lost
            logger.warning("could not settle %d webhook claims on close: %s", len(results) + len(unsent), exc)
        if self._own_client:
            await self._client.aclose()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._prune_if_due()
                fanned_out_all = await self._fan_out_if_due()
                free = self._concurrency - len(self._sends)
                claimed = 0
                if free >= self._refill or not self._sends:
                    jobs = await self._claim(min(free, self._batch))
                    claimed = len(jobs)
                    for job in jobs:
                        task = asyncio.create_task(self._attempt(job), name=f"webhook-{job.delivery_id}")
                        self._sends[task] = job
                        task.add_done_callback(self._send_done)
            except (SQLAlchemyError, OSError) as exc:
                logger.warning("webhook dispatcher cannot reach the database: %s", exc)
                await asyncio.sleep(_DB_RETRY_S)
                continue
            except Exception:
                # A bug must not end delivery for the process's lifetime: log it loudly, go on.
                logger.exception("webhook dispatcher pass failed")
                await asyncio.sleep(_DB_RETRY_S)
                continue
            more_due = claimed == min(free, self._batch) and claimed > 0
            if (more_due or not fanned_out_all) and len(self._sends) < self._concurrency:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)

    def _send_done(self, task: asyncio.Task[Outcome]) -> None:
        job = self._sends.pop(task, None)
        if job is None or task.cancelled():
            return
        if task.exception() is not None:  # a bug: the lease runs out and the send is retried
            logger.error("webhook send crashed", exc_info=task.exception())
            return
        self._results.append((job, task.result()))
        self._have_results.set()
        self._wake.set()  # a free slot: maybe claim more

    async def _record_loop(self) -> None:
        while True:
            await self._have_results.wait()
            self._have_results.clear()
            results, self._results = self._results, []
            try:
                await self._record(results)
            except (SQLAlchemyError, OSError) as exc:
                logger.warning("could not record %d webhook attempts, retrying: %s", len(results), exc)
                self._results[:0] = results
                await asyncio.sleep(_DB_RETRY_S)
                self._have_results.set()
            except Exception:
                # Not retried (it would fail the same way): their leases run out and they are sent again.
                logger.exception("could not record %d webhook attempts", len(results))

    async def _record(self, results: list[tuple[Job, Outcome]]) -> None:
        if results:
            async with self._sessions() as session, session.begin():
                await record_outcomes(session, results=results, schedule_s=self._schedule_s)

    async def _fan_out_if_due(self) -> bool:
        """Fan out at most every poll interval; False when a full batch suggests more is waiting."""
        now = time.monotonic()
        if now - self._last_fan_out < self._poll_s and not self._wake.is_set():
            return True
        self._last_fan_out = now
        return await self._fan_out() < self._batch

    async def _prune_if_due(self) -> None:
        """Delete the log beyond its retention, at most once per ``_PRUNE_EVERY_S``."""
        now = time.monotonic()
        if self._retention_s <= 0 or now - self._last_prune < _PRUNE_EVERY_S:
            return
        self._last_prune = now
        cutoff = utcnow() - timedelta(seconds=self._retention_s)
        async with self._sessions() as session, session.begin():
            deliveries, events = await prune(session, older_than=cutoff)
        if deliveries or events:
            logger.info(
                "pruned %d webhook deliveries and %d sent events before %s", deliveries, events, cutoff
            )

    async def _fan_out(self) -> int:
        async with self._sessions() as session, session.begin():
            return await fan_out(session, limit=self._batch)

    async def _claim(self, limit: int) -> list[Job]:
        in_flight = Counter(job.endpoint_id for job in self._sends.values())
        async with self._sessions() as session, session.begin():
            jobs = await claim_due(
                session,
                limit=limit,
                lease_s=self._lease_s,
                in_flight=in_flight,
                per_endpoint=self._per_endpoint,
            )
            if len(jobs) < limit:
                # Nobody else is waiting: the capped endpoints may use the idle slots.
                jobs += await claim_due(session, limit=limit - len(jobs), lease_s=self._lease_s)
            return jobs

    async def _attempt(self, job: Job) -> Outcome:
        outcome = await self._send(job)
        self.stats.attempts += 1
        if outcome.ok:
            self.stats.succeeded += 1
        else:
            self.stats.failed_attempts += 1
            logger.info(
                "webhook %s to %s failed (attempt %d): %s",
                job.msg_id,
                job.endpoint_id,
                job.attempt,
                outcome.error,
                extra={"delivery_id": job.delivery_id, "endpoint_id": job.endpoint_id},
            )
        return outcome

    async def _send(self, job: Job) -> Outcome:
        started = time.perf_counter()
        try:
            headers = sign_headers(job.secrets, msg_id=job.msg_id, body=job.body)
            headers["content-type"] = "application/json"
            response = await self._client.post(
                job.url, content=job.body.encode("utf-8"), headers=headers, timeout=self._timeout_s
            )
        except httpx.TimeoutException:
            late = f"timed out after {self._timeout_s:g} s"
            return Outcome(ok=False, latency_ms=_ms(started), error=late, at=utcnow())
        except (httpx.HTTPError, WebhookError) as exc:
            reason = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
            return Outcome(ok=False, latency_ms=_ms(started), error=reason, at=utcnow())
        code = response.status_code
        ok = 200 <= code < 300
        error = None if ok else f"HTTP {code}"
        return Outcome(ok=ok, latency_ms=_ms(started), response_code=code, error=error, at=utcnow())


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


async def start_dispatcher(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> WebhookDispatcher | None:
    """A started dispatcher for an API process, or None when ``webhooks_enabled`` is off."""
    if not settings.webhooks_enabled:
        return None
    dispatcher = WebhookDispatcher(sessions, settings)
    await dispatcher.start()
    return dispatcher
