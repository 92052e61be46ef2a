"""The webhook dispatcher: an asyncio service that moves events from the database to endpoints.

Its loop reads as three steps: fan out new outbox events into deliveries, claim the due ones,
start a send for each; every send records its own outcome. The dispatcher owns its loop task and
every send task, and ``aclose()`` cancels and awaits them all, then hands back what it had
claimed but not sent, so a restart loses nothing and delays nothing by a lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voiceagent import __version__
from voiceagent.config import Settings
from voiceagent.errors import WebhookError
from voiceagent.webhooks.queue import Job, Outcome, claim_due, fan_out, record_outcome, release
from voiceagent.webhooks.signing import sign_headers

__all__ = ["DispatcherStats", "WebhookDispatcher", "start_dispatcher"]

logger = logging.getLogger(__name__)

# A claim must outlive the send it covers, with room for recording the outcome.
_LEASE_MARGIN_S = 30.0
_DB_RETRY_S = 2.0
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
        self._lease_s = settings.webhook_timeout_s + _LEASE_MARGIN_S
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            follow_redirects=False,  # a redirect would resend the signed body to a URL nobody registered
            limits=httpx.Limits(max_connections=self._concurrency),
            headers={"user-agent": f"voiceagent-webhooks/{__version__}"},
        )
        self._loop_task: asyncio.Task[None] | None = None
        self._sends: dict[asyncio.Task[None], Job] = {}
        self._wake = asyncio.Event()
        self.stats = DispatcherStats()

    async def start(self) -> None:
        """Start the polling loop (once)."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name="webhook-dispatcher")

    def wake(self) -> None:
        """Look for work now instead of at the next poll."""
        self._wake.set()

    async def run_once(self) -> int:
        """Fan out, claim and send what is due, waiting for every send; returns attempts made."""
        jobs = await self._claim()
        await asyncio.gather(*(self._deliver(job) for job in jobs))
        return len(jobs)

    async def aclose(self) -> None:
        """Stop polling, cancel sends in flight, release their claims, close the HTTP client."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        unsent = [job.delivery_id for job in self._sends.values()]
        for task in list(self._sends):
            task.cancel()
        await asyncio.gather(*self._sends, return_exceptions=True)
        self._sends.clear()
        if unsent:
            try:
                async with self._sessions() as session, session.begin():
                    await release(session, delivery_ids=unsent)
            except (SQLAlchemyError, OSError) as exc:  # their leases expire on their own
                logger.warning("could not release %d webhook claims: %s", len(unsent), exc)
        if self._own_client:
            await self._client.aclose()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            full = False
            try:
                free = self._concurrency - len(self._sends)
                if free > 0:
                    jobs = await self._claim(limit=min(free, self._batch))
                    full = len(jobs) == min(free, self._batch)
                    for job in jobs:
                        task = asyncio.create_task(self._deliver(job), name=f"webhook-{job.delivery_id}")
                        self._sends[task] = job
                        task.add_done_callback(self._send_done)
            except (SQLAlchemyError, OSError) as exc:
                logger.warning("webhook dispatcher cannot reach the database: %s", exc)
                await asyncio.sleep(_DB_RETRY_S)
                continue
            if full and len(self._sends) < self._concurrency:
                continue  # more is due right now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)

    def _send_done(self, task: asyncio.Task[None]) -> None:
        self._sends.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            logger.error("webhook send crashed", exc_info=task.exception())
        self._wake.set()  # a free slot: claim more

    async def _claim(self, limit: int | None = None) -> list[Job]:
        async with self._sessions() as session, session.begin():
            await fan_out(session, limit=self._batch)
        async with self._sessions() as session, session.begin():
            return await claim_due(session, limit=limit or self._batch, lease_s=self._lease_s)

    async def _deliver(self, job: Job) -> None:
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
        try:
            async with self._sessions() as session, session.begin():
                await record_outcome(session, job=job, outcome=outcome, schedule_s=self._schedule_s)
        except (SQLAlchemyError, OSError) as exc:
            # The claim's lease runs out and the delivery is tried again: at least once, not lost.
            logger.warning("could not record webhook delivery %d: %s", job.delivery_id, exc)

    async def _send(self, job: Job) -> Outcome:
        started = time.perf_counter()
        try:
            headers = sign_headers(job.secrets, msg_id=job.msg_id, body=job.body)
            headers["content-type"] = "application/json"
            response = await self._client.post(
                job.url, content=job.body.encode("utf-8"), headers=headers, timeout=self._timeout_s
            )
        except httpx.TimeoutException:
            return Outcome(ok=False, latency_ms=_ms(started), error=f"timed out after {self._timeout_s:g} s")
        except (httpx.HTTPError, WebhookError) as exc:
            reason = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
            return Outcome(ok=False, latency_ms=_ms(started), error=reason)
        code = response.status_code
        ok = 200 <= code < 300
        error = None if ok else f"HTTP {code}"
        return Outcome(ok=ok, latency_ms=_ms(started), response_code=code, error=error)


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
