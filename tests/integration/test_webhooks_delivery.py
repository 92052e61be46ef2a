"""Webhook delivery end to end: a real dispatcher, a real SQLite call log, real loopback receivers
that verify with the ``standardwebhooks`` library. Retry schedules are seconds long here."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from voiceagent.api import create_app
from voiceagent.config import Settings, load_settings
from voiceagent.memory import InProcessMemory
from voiceagent.store import CallEnded, CallStarted, TurnRecord, create_engine, session_factory
from voiceagent.store import repository as repo
from voiceagent.store.migrate import upgrade_async
from voiceagent.webhooks import (
    WebhookDelivery,
    WebhookDispatcher,
    create_endpoint,
    get_endpoint,
    list_deliveries,
    rotate_secret,
)

from .webhooks_receiver import Receiver

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
FAST = (0.0, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2)


@dataclass
class Db:
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


def _settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "webhook_retry_schedule_s": FAST,
        "webhook_poll_interval_s": 0.05,
        "webhook_timeout_s": 1.0,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Db]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}"
    engine = create_engine(url)
    await upgrade_async(engine)
    yield Db(url, engine, session_factory(engine))
    await engine.dispose()


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def _calls(db: Db, ids: list[str], agent: str = "Front desk") -> set[str]:
    """Write whole calls (start, two turns, end) through the call log; returns their event ids."""
    events: set[str] = set()
    async with db.sessions() as s, s.begin():
        for n, call_id in enumerate(ids):
            start = T0 + timedelta(minutes=n)
            await repo.record_call_started(
                s, call=CallStarted(call_id, "inbound", "sip", start, from_number="+15550100", agent=agent)
            )
            await repo.add_turns(
                s,
                turns=[
                    TurnRecord(call_id, 0, "caller", "Where is my order 4411?", 0.0, 1500.0),
                    TurnRecord(call_id, 1, "agent", "It ships tomorrow.", 1900.0, 3100.0),
                ],
            )
            await repo.record_call_ended(
                s, call=CallEnded(call_id, start + timedelta(seconds=42), "caller_hangup")
            )
            events |= {f"call.started:{call_id}", f"turn.completed:{call_id}:0"}
            events |= {f"turn.completed:{call_id}:1", f"call.ended:{call_id}"}
    return events


ALL = "call.started,call.ended,turn.completed"


async def _endpoint(db: Db, url: str, events: str = ALL) -> tuple[str, str]:
    async with db.sessions() as s, s.begin():
        made = await create_endpoint(s, url=url, events=events)
    return made.endpoint.id, made.secret


async def _deliveries(db: Db) -> list[WebhookDelivery]:
    async with db.sessions() as s:
        return list((await s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))).all())


async def _all_settled(db: Db) -> bool:
    rows = await _deliveries(db)
    return bool(rows) and all(r.status != "pending" for r in rows)


async def test_down_then_500s_then_200_gives_every_event_exactly_once(db: Db) -> None:
    receiver = Receiver(secrets=[])
    receiver.reserve_port()  # down: nothing listens yet
    _endpoint_id, secret = await _endpoint(db, receiver.url)
    receiver.secrets.append(secret)
    expected = await _calls(db, ["c1", "c2", "c3"])
    receiver.respond = lambda n: 500 if n <= 8 else 200

    dispatcher = WebhookDispatcher(db.sessions, _settings(db.url))
    await dispatcher.start()
    try:
        # While it is down every attempt is refused and rescheduled.
        await _until(lambda: _attempted(db, at_least=2))
        assert receiver.requests == 0
        await receiver.start()
        await _until(lambda: _all_settled(db))
    finally:
        await dispatcher.aclose()
        await receiver.stop()

    assert set(receiver.unique) == expected
    assert all(r.verified_with == [0] for r in receiver.received)
    rows = await _deliveries(db)
    assert {r.status for r in rows} == {"succeeded"}
    assert {r.response_code for r in rows} == {200}
    assert max(r.attempts for r in rows) >= 3  # refused twice at least, then maybe a 500
    assert all(r.latency_ms is not None and r.latency_ms > 0 for r in rows)
    # The 500s were retried: more requests than events, and never more copies than attempts.
    assert receiver.requests == len(expected) + 8
    body = receiver.unique["call.ended:c1"].body
    assert body["type"] == "call.ended"
    assert body["data"]["end_reason"] == "caller_hangup"
    assert body["data"]["summary"]["duration_s"] == 42.0
    assert body["data"]["summary"]["caller_said"] == ["Where is my order 4411?"]
    assert receiver.unique["turn.completed:c2:0"].body["data"]["text"] == "Where is my order 4411?"


async def _attempted(db: Db, *, at_least: int) -> bool:
    rows = await _deliveries(db)
    return bool(rows) and min(r.attempts for r in rows) >= at_least


async def test_a_platform_restart_in_the_middle_of_retries_loses_nothing(db: Db) -> None:
    receiver = Receiver(secrets=[], respond=lambda n: 503)
    await receiver.start()
    _, secret = await _endpoint(db, receiver.url)
    receiver.secrets.append(secret)
    expected = await _calls(db, ["r1", "r2"])
    settings = _settings(db.url)
    try:
        await _run_platform(settings, until=lambda: _attempted(db, at_least=1))
        failed_before = receiver.requests
        assert failed_before >= len(expected)
        receiver.respond = lambda n: 200
        await _run_platform(settings, until=lambda: _all_settled(db))
    finally:
        await receiver.stop()

    assert set(receiver.unique) == expected
    rows = await _deliveries(db)
    assert {r.status for r in rows} == {"succeeded"}
    assert all(r.attempts >= 2 for r in rows)


async def _run_platform(settings: Settings, *, until: Callable[[], Awaitable[bool]]) -> None:
    """One 'process': its own engine and dispatcher on the database, stopped once ``until`` holds."""
    engine = create_engine(settings.database_url)
    dispatcher = WebhookDispatcher(session_factory(engine), settings)
    await dispatcher.start()
    try:
        await _until(until)
    finally:
        await dispatcher.aclose()
        await engine.dispose()


async def test_the_delivery_log_survives_a_restart(db: Db) -> None:
    receiver = Receiver(secrets=[], respond=lambda n: 202)
    await receiver.start()
    endpoint_id, secret = await _endpoint(db, receiver.url, events="call.ended")
    receiver.secrets.append(secret)
    await _calls(db, ["l1"])
    dispatcher = WebhookDispatcher(db.sessions, _settings(db.url))
    try:
        await _until(lambda: _sent_once(dispatcher))
    finally:
        await dispatcher.aclose()
        await receiver.stop()
    await db.engine.dispose()

    engine = create_engine(db.url)
    try:
        async with session_factory(engine)() as s:
            (row,) = await list_deliveries(s, endpoint_id=endpoint_id)
    finally:
        await engine.dispose()
    assert (row.status, row.response_code, row.attempts) == ("succeeded", 202, 1)
    assert row.event_id == "call.ended:l1"
    assert row.latency_ms is not None
    assert 0 < row.latency_ms < 1000
    assert row.delivered_at is not None
    assert row.last_attempt_at == row.delivered_at


async def _sent_once(dispatcher: WebhookDispatcher) -> bool:
    return await dispatcher.run_once() > 0 or dispatcher.stats.succeeded > 0


async def test_410_disables_the_endpoint_and_nothing_more_is_sent(db: Db) -> None:
    receiver = Receiver(secrets=[], respond=lambda n: 410)
    await receiver.start()
    endpoint_id, secret = await _endpoint(db, receiver.url, events="call.started")
    receiver.secrets.append(secret)
    await _calls(db, ["g1", "g2"])
    dispatcher = WebhookDispatcher(db.sessions, _settings(db.url, webhook_batch_size=1))
    try:
        assert await dispatcher.run_once() == 1
        await _calls(db, ["g3"])
        for _ in range(5):
            await dispatcher.run_once()
    finally:
        await dispatcher.aclose()
        await receiver.stop()
    async with db.sessions() as s:
        endpoint = await get_endpoint(s, endpoint_id=endpoint_id)
    assert endpoint is not None
    assert not endpoint.enabled
    assert endpoint.disabled_reason is not None
    assert "410" in endpoint.disabled_reason
    rows = await _deliveries(db)
    assert receiver.requests == 1  # the first 410 disabled it: nothing after it is sent
    assert [(r.event_id, r.status, r.response_code) for r in rows if r.attempts] == [
        ("call.started:g1", "failed", 410)
    ]
    # Fanned out before the 410 (g2, with a batch size of 1 maybe not): waiting, not sent.
    assert all(r.status == "pending" and r.event_id == "call.started:g2" for r in rows[1:])


async def test_timeouts_count_as_failures_and_are_retried(db: Db) -> None:
    receiver = Receiver(secrets=[], delay_s=1.0)
    await receiver.start()
    _, secret = await _endpoint(db, receiver.url, events="call.ended")
    receiver.secrets.append(secret)
    await _calls(db, ["t1"])
    dispatcher = WebhookDispatcher(db.sessions, _settings(db.url, webhook_timeout_s=0.2))
    await dispatcher.start()
    try:
        await _until(lambda: _attempted(db, at_least=2))
        (row,) = await _deliveries(db)
        assert row.status == "pending"
        assert row.response_code is None
        assert row.last_error is not None
        assert "timed out" in row.last_error
        assert row.latency_ms is not None
        assert row.latency_ms >= 150
        receiver.delay_s = 0.0
        await _until(lambda: _all_settled(db))
    finally:
        await dispatcher.aclose()
        await receiver.stop()
    (row,) = await _deliveries(db)
    assert (row.status, row.response_code) == ("succeeded", 200)
    assert set(receiver.unique) == {"call.ended:t1"}


async def test_rotation_signs_with_both_secrets_during_the_overlap_then_only_the_new(db: Db) -> None:
    receiver = Receiver(secrets=[])
    await receiver.start()
    endpoint_id, old = await _endpoint(db, receiver.url, events="call.started")
    async with db.sessions() as s, s.begin():
        new = await rotate_secret(s, endpoint_id=endpoint_id, overlap_s=1.0)
    assert new is not None
    assert new != old
    assert new.startswith("whsec_")
    receiver.secrets += [old, new]
    dispatcher = WebhookDispatcher(db.sessions, _settings(db.url))
    try:
        await _calls(db, ["o1"])
        await dispatcher.run_once()
        await asyncio.sleep(1.1)  # the overlap window ends
        await _calls(db, ["o2"])
        await dispatcher.run_once()
    finally:
        await dispatcher.aclose()
        await receiver.stop()
    during, after = receiver.unique["call.started:o1"], receiver.unique["call.started:o2"]
    assert during.verified_with == [0, 1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert after.verified_with == [1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1


async def test_events_fan_out_only_to_subscribed_endpoints_of_the_right_agent(db: Db) -> None:
    a, b = Receiver(secrets=[]), Receiver(secrets=[])
    await a.start()
    await b.start()
    async with db.sessions() as s, s.begin():
        made_a = await create_endpoint(s, url=a.url, events=["call.ended"], agent="Front desk")
        made_b = await create_endpoint(s, url=b.url, events=["turn.completed"], agent="Billing")
    a.secrets.append(made_a.secret)
    b.secrets.append(made_b.secret)
    await _calls(db, ["f1"], agent="Front desk")
    await _calls(db, ["f2"], agent="Billing")
    dispatcher = WebhookDispatcher(db.sessions, _settings(db.url))
    try:
        await dispatcher.run_once()
    finally:
        await dispatcher.aclose()
        await a.stop()
        await b.stop()
    assert set(a.unique) == {"call.ended:f1"}
    assert set(b.unique) == {"turn.completed:f2:0", "turn.completed:f2:1"}


async def test_the_api_process_runs_the_dispatcher_for_its_lifetime(db: Db) -> None:
    receiver = Receiver(secrets=[])
    await receiver.start()
    _, secret = await _endpoint(db, receiver.url, events="call.ended")
    receiver.secrets.append(secret)
    app = create_app(_settings(db.url), memory_factory=lambda _s: InProcessMemory())
    try:
        async with app.router.lifespan_context(app):
            await _calls(db, ["a1"])  # written while the API runs, like a call would be
            await _until(lambda: _all_settled(db))
        assert app.state.webhooks is not None
        await _calls(db, ["a2"])
        await asyncio.sleep(0.3)  # stopped with the app: nothing more is sent
    finally:
        await receiver.stop()
    assert set(receiver.unique) == {"call.ended:a1"}
    assert receiver.requests == 1


async def test_a_slow_endpoint_does_not_hold_up_the_others(db: Db) -> None:
    slow, fast = Receiver(secrets=[], delay_s=2.5), Receiver(secrets=[])
    await slow.start()
    await fast.start()
    slow_id, slow_secret = await _endpoint(db, slow.url, events="call.started,call.ended")
    fast_id, fast_secret = await _endpoint(db, fast.url, events="call.started,call.ended")
    slow.secrets.append(slow_secret)
    fast.secrets.append(fast_secret)
    expected = {e for e in await _calls(db, ["s1", "s2", "s3", "s4"]) if not e.startswith("turn.")}
    dispatcher = WebhookDispatcher(
        db.sessions, _settings(db.url, webhook_concurrency=4, webhook_timeout_s=5.0)
    )
    await dispatcher.start()
    try:
        await _until(lambda: _settled_for(db, fast_id, len(expected)), timeout_s=10)
        # Every fast delivery is done while the slow endpoint still sits on its first answers.
        async with db.sessions() as s:
            assert {d.attempts for d in await list_deliveries(s, endpoint_id=slow_id)} == {0}
    finally:
        await dispatcher.aclose()
        await slow.stop()
        await fast.stop()
    assert set(fast.unique) == expected


async def _settled_for(db: Db, endpoint_id: str, count: int) -> bool:
    async with db.sessions() as s:
        rows = await list_deliveries(s, endpoint_id=endpoint_id, status="succeeded")
    return len(rows) == count


async def test_stopping_mid_send_hands_the_claim_back_at_once(db: Db) -> None:
    receiver = Receiver(secrets=[], delay_s=3.0)
    await receiver.start()
    _, secret = await _endpoint(db, receiver.url, events="call.started")
    receiver.secrets.append(secret)
    await _calls(db, ["m1"])
    settings = _settings(db.url, webhook_timeout_s=10.0)  # a lease of 40 s, were it kept
    first = WebhookDispatcher(db.sessions, settings)
    await first.start()
    try:
        await _until(lambda: _received(receiver, 1))
    finally:
        await first.aclose()  # the send is cut off before its answer
    (row,) = await _deliveries(db)
    assert (row.status, row.attempts) == ("pending", 0)
    receiver.delay_s = 0.0
    second = WebhookDispatcher(db.sessions, settings)
    try:
        assert await second.run_once() == 1  # due now, not in 40 s
    finally:
        await second.aclose()
        await receiver.stop()
    (row,) = await _deliveries(db)
    assert (row.status, row.attempts) == ("succeeded", 1)
    assert set(receiver.unique) == {"call.started:m1"}
    assert receiver.requests == 2  # the cut-off copy and the delivered one: same webhook-id


async def _received(receiver: Receiver, count: int) -> bool:
    return receiver.requests >= count


class _Outage:
    """A session factory whose database is down for the first ``failures`` sessions."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], failures: int) -> None:
        self.sessions = sessions
        self.failures = failures

    def __call__(self) -> AsyncSession:
        if self.failures > 0:
            self.failures -= 1
            raise OperationalError("connect", {}, ConnectionRefusedError("database restarting"))
        return self.sessions()


async def test_a_database_outage_delays_delivery_and_loses_nothing(
    db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("voiceagent.webhooks.dispatcher._DB_RETRY_S", 0.05)
    receiver = Receiver(secrets=[])
    await receiver.start()
    _, secret = await _endpoint(db, receiver.url, events="call.started,call.ended")
    receiver.secrets.append(secret)
    expected = {e for e in await _calls(db, ["d1", "d2"]) if not e.startswith("turn.")}
    outage = _Outage(db.sessions, failures=6)
    dispatcher = WebhookDispatcher(outage, _settings(db.url))  # type: ignore[arg-type]
    await dispatcher.start()
    try:
        await _until(lambda: _all_settled(db))
    finally:
        await dispatcher.aclose()
        await receiver.stop()
    assert outage.failures == 0
    assert set(receiver.unique) == expected
