"""Several dispatchers on one Postgres database: FOR UPDATE SKIP LOCKED hands each delivery to one
of them, so a healthy receiver gets every event exactly once, with no duplicates to drop."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from voiceagent.config import load_settings
from voiceagent.store import CallEnded, CallStarted, create_engine, session_factory
from voiceagent.store import repository as repo
from voiceagent.store.migrate import upgrade_async
from voiceagent.webhooks import WebhookDelivery, WebhookDispatcher, create_endpoint

from .postgres_support import requires_postgres, scratch_database
from .webhooks_receiver import Receiver

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

pytestmark = requires_postgres


@pytest.fixture
def database_url() -> Iterator[str]:
    with scratch_database("va_webhooks") as url:
        yield url


async def test_three_dispatchers_send_each_event_once(database_url: str) -> None:
    settings = load_settings(
        database_url=database_url,
        webhook_poll_interval_s=0.02,
        webhook_batch_size=4,
        webhook_concurrency=4,
        webhook_retry_schedule_s=(0.0, 0.2, 0.2, 0.2),
    )
    engine = create_engine(database_url)
    await upgrade_async(engine)
    sessions = session_factory(engine)
    receiver = Receiver(secrets=[], delay_s=0.01)
    await receiver.start()
    async with sessions() as s, s.begin():
        made = await create_endpoint(s, url=receiver.url, events="call.started,call.ended")
    receiver.secrets.append(made.secret)
    expected = set()
    async with sessions() as s, s.begin():
        for n in range(40):
            call_id = f"p{n}"
            await repo.record_call_started(s, call=CallStarted(call_id, "inbound", "sip", T0))
            await repo.record_call_ended(s, call=CallEnded(call_id, T0 + timedelta(seconds=n), "done"))
            expected |= {f"call.started:{call_id}", f"call.ended:{call_id}"}

    engines = [create_engine(database_url) for _ in range(3)]
    dispatchers = [WebhookDispatcher(session_factory(e), settings) for e in engines]
    try:
        for d in dispatchers:
            await d.start()
        deadline = asyncio.get_running_loop().time() + 30
        while len(receiver.unique) < len(expected):
            assert asyncio.get_running_loop().time() < deadline, len(receiver.unique)
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # room for a duplicate to show up, were there one
    finally:
        for d in dispatchers:
            await d.aclose()
        for e in engines:
            await e.dispose()
        await receiver.stop()

    async with sessions() as s:
        rows = (await s.scalars(select(WebhookDelivery))).all()
    await engine.dispose()
    assert set(receiver.unique) == expected
    assert receiver.requests == len(expected)  # no event was sent twice
    assert len(rows) == len(expected)
    assert {(r.status, r.attempts, r.response_code) for r in rows} == {("succeeded", 1, 200)}
    # The work was shared: more than one dispatcher sent something.
    assert sum(1 for d in dispatchers if d.stats.attempts) >= 2
