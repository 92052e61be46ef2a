"""Webhook delivery throughput on loopback: events per second from the outbox to a receiver that
verifies every signature with the ``standardwebhooks`` library, and per-attempt latency.

    voiceagent bench webhooks [--events 2000] [--concurrency 16] [--database URL] [--json]
    python benchmarks/webhooks.py ...   (the same)

The receiver is a separate uvicorn process (so the figures include real HTTP and its CPU cost on
this machine); the call log is a temporary SQLite file unless ``--database`` names a Postgres
database (migrated here if need be; the run removes its own rows afterwards, and other enabled
endpoints there would receive the benchmark's events too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select

from voiceagent.config import load_settings
from voiceagent.store import CallStarted, create_engine, session_factory
from voiceagent.store import repository as repo
from voiceagent.store.migrate import upgrade_async
from voiceagent.store.models import Call, WebhookOutbox
from voiceagent.webhooks import WebhookDelivery, WebhookDispatcher, WebhookEndpoint, create_endpoint

__all__ = ["describe", "main", "run_webhooks_bench"]

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _receiver_app(secret: str) -> Any:
    from standardwebhooks.webhooks import Webhook

    verifier = Webhook(secret)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        verifier.verify(body, headers)  # raises (a 500) on a bad signature
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def _serve_receiver(port: int, secret: str) -> None:
    import uvicorn

    uvicorn.run(_receiver_app(secret), host="127.0.0.1", port=port, log_level="warning", lifespan="off")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_listening(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


async def _clean_up(sessions: Any, run_id: str) -> None:
    """Leave a shared database as found: this run's endpoint, deliveries, calls and events go."""
    async with sessions() as s, s.begin():
        await s.execute(delete(WebhookOutbox).where(WebhookOutbox.event_id.like(f"%:{run_id}-%")))
        await s.execute(delete(Call).where(Call.id.like(f"{run_id}-%")))
        await s.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == run_id))


async def run_webhooks_bench(
    *, events: int = 2000, concurrency: int = 16, database: str | None = None
) -> dict[str, Any]:
    """Deliver ``events`` events to one loopback receiver and return the figures."""
    tmp = tempfile.TemporaryDirectory()
    url = database or f"sqlite+aiosqlite:///{Path(tmp.name) / 'calls.db'}"
    settings = load_settings(
        database_url=url,
        webhook_concurrency=concurrency,
        webhook_batch_size=min(200, max(concurrency, 50)),
        webhook_poll_interval_s=0.05,
    )
    engine = create_engine(url)
    await upgrade_async(engine)
    sessions = session_factory(engine)
    port = _free_port()
    async with sessions() as s, s.begin():
        made = await create_endpoint(s, url=f"http://127.0.0.1:{port}/hooks", events=["call.started"])
    # Started once, before the clock runs; not worth an asyncio subprocess.
    run_id = made.endpoint.id
    command = [sys.executable, "-m", "voiceagent.bench.webhooks", "--serve-receiver", str(port), made.secret]
    receiver = subprocess.Popen(command)  # noqa: ASYNC220
    try:
        await _wait_listening(port)
        async with sessions() as s, s.begin():
            calls = [
                CallStarted(f"{run_id}-{n}", "inbound", "sip", T0 + timedelta(milliseconds=n))
                for n in range(events)
            ]
            await repo.record_calls_started(s, calls=calls)
        dispatcher = WebhookDispatcher(sessions, settings)
        started = time.perf_counter()
        await dispatcher.start()
        done_query = (
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == run_id, WebhookDelivery.status == "succeeded")
        )
        try:
            while True:
                async with sessions() as s:
                    done = (await s.execute(done_query)).scalar_one()
                if done >= events:
                    break
                await asyncio.sleep(0.05)
        finally:
            elapsed_s = time.perf_counter() - started
            await dispatcher.aclose()
        async with sessions() as s:
            rows = (
                await s.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == run_id))
            ).all()
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
        await _clean_up(sessions, run_id)
        await engine.dispose()
        tmp.cleanup()
    latencies = sorted(r.latency_ms for r in rows if r.latency_ms is not None)
    return {
        "database": engine.dialect.name,
        "events": events,
        "concurrency": concurrency,
        "seconds": round(elapsed_s, 3),
        "events_per_s": round(events / elapsed_s, 1),
        "attempts": sum(r.attempts for r in rows),
        "latency_ms_p50": round(statistics.median(latencies), 2),
        "latency_ms_p95": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database", default=None, help="postgresql+asyncpg://... (default: temp SQLite)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve-receiver", nargs=2, metavar=("PORT", "SECRET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receiver:
        _serve_receiver(int(args.serve_receiver[0]), args.serve_receiver[1])
        return
    bench = run_webhooks_bench(events=args.events, concurrency=args.concurrency, database=args.database)
    result = asyncio.run(bench)
    print(json.dumps(result) if args.json else describe(result))


def describe(result: dict[str, Any]) -> str:
    """One line of figures for people."""
    return (
        f"{result['events']} events to 1 endpoint on {result['database']},"
        f" concurrency {result['concurrency']}:"
        f" {result['events_per_s']} events/s ({result['seconds']} s, {result['attempts']} attempts);"
        f" attempt latency p50 {result['latency_ms_p50']} ms, p95 {result['latency_ms_p95']} ms"
    )


if __name__ == "__main__":
    main()
