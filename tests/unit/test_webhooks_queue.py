"""The delivery queue on SQLite without HTTP: fan-out, claims, the retry schedule, 410, resend,
and which call-log writes become which events."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from voiceagent.config import load_settings
from voiceagent.errors import WebhookError
from voiceagent.store import CallStarted, EventRecord, RecordingRecord, create_engine, session_factory
from voiceagent.store import repository as repo
from voiceagent.store.migrate import upgrade_async
from voiceagent.store.models import WebhookOutbox
from voiceagent.webhooks import (
    WebhookDelivery,
    create_endpoint,
    delete_endpoint,
    disable_endpoint,
    enable_endpoint,
    get_endpoint,
    list_deliveries,
    list_endpoints,
    resend,
    rotate_secret,
    secrets_in_use,
)
from voiceagent.webhooks.queue import Job, Outcome, claim_due, fan_out, prune, record_outcome, record_outcomes

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[Sessions]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}")
    await upgrade_async(engine)
    yield session_factory(engine)
    await engine.dispose()


async def _start(sessions: Sessions, call_id: str, agent: str | None = "Front desk") -> None:
    async with sessions() as s, s.begin():
        await repo.record_call_started(s, call=CallStarted(call_id, "inbound", "sip", T0, agent=agent))


async def _claim_one(sessions: Sessions, now: datetime) -> Job:
    async with sessions() as s, s.begin():
        jobs = await claim_due(s, limit=10, lease_s=45.0, now=now)
    assert len(jobs) == 1
    return jobs[0]


async def test_the_default_schedule_retries_over_more_than_a_day_then_fails(sessions: Sessions) -> None:
    schedule = load_settings().webhook_retry_schedule_s
    assert schedule == (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)
    async with sessions() as s, s.begin():
        await create_endpoint(s, url="http://127.0.0.1:9/h", events="call.started")
    await _start(sessions, "c1")
    async with sessions() as s, s.begin():
        assert await fan_out(s, now=T0) == 1
    now = T0
    gaps = []
    for attempt in range(1, len(schedule) + 1):
        job = await _claim_one(sessions, now)
        assert job.attempt == attempt
        assert job.msg_id == "call.started:c1"
        async with sessions() as s, s.begin():
            # While claimed (leased) nobody else gets it.
            assert await claim_due(s, limit=10, lease_s=45.0, now=now) == []
            row = await record_outcome(
                s,
                job=job,
                outcome=Outcome(ok=False, latency_ms=3.0, response_code=500, error="HTTP 500"),
                schedule_s=schedule,
                now=now,
            )
        assert row is not None
        if row.next_attempt_at is None:
            break
        gaps.append((row.next_attempt_at - now).total_seconds())
        now = row.next_attempt_at
    assert gaps == list(schedule[1:])
    assert now - T0 >= timedelta(hours=24)
    assert (row.status, row.attempts, row.response_code, row.last_error) == ("failed", 10, 500, "HTTP 500")


async def test_410_disables_the_endpoint_and_its_other_deliveries_wait(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        made = await create_endpoint(s, url="http://127.0.0.1:9/h", events=["call.started"])
    await _start(sessions, "c1")
    await _start(sessions, "c2")
    async with sessions() as s, s.begin():
        assert await fan_out(s, now=T0) == 2
        (job, _) = await claim_due(s, limit=10, lease_s=0.0, now=T0)
        await record_outcome(s, job=job, outcome=Outcome(False, 2.0, 410), schedule_s=(0.0, 1.0), now=T0)
    async with sessions() as s, s.begin():
        endpoint = await get_endpoint(s, endpoint_id=made.endpoint.id)
        assert endpoint is not None
        assert not endpoint.enabled
        assert await claim_due(s, limit=10, lease_s=0.0, now=T0 + timedelta(hours=1)) == []
        await enable_endpoint(s, endpoint_id=made.endpoint.id)
        assert len(await claim_due(s, limit=10, lease_s=0.0, now=T0 + timedelta(hours=1))) == 1


async def test_fan_out_follows_events_and_agent_and_happens_once(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        everyone = await create_endpoint(s, url="https://a.example/h", events="call.started,recording.ready")
        desk = await create_endpoint(
            s, url="https://b.example/h", events=["call.started"], agent="Front desk"
        )
        await create_endpoint(s, url="https://c.example/h", events=["call.ended"])
    await _start(sessions, "c1", agent="Front desk")
    await _start(sessions, "c2", agent="Billing")
    async with sessions() as s, s.begin():
        await repo.add_recording(s, recording=RecordingRecord("c2", "both", "file:///r.wav", 3.0))
    async with sessions() as s, s.begin():
        assert await fan_out(s) == 4
        assert await fan_out(s) == 0
    async with sessions() as s:
        pairs = {(d.endpoint_id, d.event_id) for d in await list_deliveries(s)}
        assert await list_deliveries(s, endpoint_id=desk.endpoint.id, status="pending", limit=1)
    assert pairs == {
        (everyone.endpoint.id, "call.started:c1"),
        (everyone.endpoint.id, "call.started:c2"),
        (everyone.endpoint.id, "recording.ready:c2:both"),
        (desk.endpoint.id, "call.started:c1"),
    }


async def test_timeline_events_become_answered_transferred_and_dtmf(sessions: Sessions) -> None:
    await _start(sessions, "c1")
    events = [
        EventRecord("c1", 0, "call_started", T0, 0.0),
        EventRecord("c1", 1, "sip_state", T0, 5.0, {"state": "confirmed", "code": 200}),
        EventRecord("c1", 2, "dtmf", T0, 900.0, {"digit": "4", "method": "rfc2833"}),
        EventRecord("c1", 3, "vad.prob", T0, 920.0, {"p": 0.5}),
        EventRecord("c1", 4, "transfer_status", T0, 990.0, {"code": 100, "final": False}),
        EventRecord("c1", 5, "transfer_status", T0, 999.0, {"code": 200, "reason": "OK", "final": True}),
    ]
    for _ in range(2):  # a replayed batch adds nothing
        async with sessions() as s, s.begin():
            await repo.add_events(s, events=events)
    async with sessions() as s:
        rows = (await s.scalars(select(WebhookOutbox).order_by(WebhookOutbox.id))).all()
    assert [r.event_id for r in rows] == [
        "call.started:c1",
        "call.answered:c1",
        "dtmf.received:c1:2",
        "call.transferred:c1",
    ]
    assert rows[2].payload["data"] == {"digit": "4", "method": "rfc2833"}
    assert rows[2].payload["media_ms"] == 900.0


async def test_resend_starts_a_fresh_schedule_and_keeps_the_count(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await create_endpoint(s, url="http://127.0.0.1:9/h", events="call.started")
    await _start(sessions, "c1")
    async with sessions() as s, s.begin():
        await fan_out(s, now=T0)
    job = await _claim_one(sessions, T0)
    async with sessions() as s, s.begin():
        await record_outcome(s, job=job, outcome=Outcome(True, 4.0, 200), schedule_s=(0.0,), now=T0)
        assert await claim_due(s, limit=10, lease_s=0.0, now=T0 + timedelta(days=9)) == []
        (delivery,) = await list_deliveries(s)
        again = await resend(s, delivery_id=delivery.id)
        assert await resend(s, delivery_id=delivery.id + 99) is None
    assert again is not None
    assert (again.status, again.retry_step) == ("pending", 0)
    job = await _claim_one(sessions, datetime.now(UTC))
    assert (job.attempt, job.msg_id) == (2, "call.started:c1")


async def test_endpoint_admin_rotation_and_validation(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        made = await create_endpoint(s, url="https://x.example/h", events="call.ended, turn.completed")
        assert made.endpoint.event_types == ["call.ended", "turn.completed"]
        for bad_url in ["ftp://x/h", "not a url", "http:///nohost"]:
            with pytest.raises(WebhookError):
                await create_endpoint(s, url=bad_url, events="call.ended")
        for bad_events in ["", "call.ended,call.exploded", []]:
            with pytest.raises(WebhookError, match="event type"):
                await create_endpoint(s, url="https://x.example/h", events=bad_events)
        old = made.secret
        new = await rotate_secret(s, endpoint_id=made.endpoint.id, overlap_s=60.0, now=T0)
        assert new is not None
        endpoint = await get_endpoint(s, endpoint_id=made.endpoint.id)
        assert endpoint is not None
        assert secrets_in_use(endpoint, now=T0 + timedelta(seconds=59)) == [new, old]
        assert secrets_in_use(endpoint, now=T0 + timedelta(seconds=60)) == [new]
        assert await rotate_secret(s, endpoint_id="ep_nope", overlap_s=1.0) is None
        await disable_endpoint(s, endpoint_id=made.endpoint.id)
        assert [e.enabled for e in await list_endpoints(s)] == [False]
        assert await delete_endpoint(s, endpoint_id=made.endpoint.id)
        assert not await delete_endpoint(s, endpoint_id=made.endpoint.id)
        assert await list_endpoints(s) == []
    async with sessions() as s:
        with pytest.raises(WebhookError):
            await list_deliveries(s, status="lost")
        with pytest.raises(WebhookError):
            await list_deliveries(s, limit=0)
        assert (await s.scalars(select(WebhookDelivery))).all() == []


async def test_prune_keeps_what_is_still_owed(sessions: Sessions) -> None:
    async with sessions() as s, s.begin():
        await create_endpoint(s, url="http://127.0.0.1:9/h", events="call.started")
    for call_id in ("old-ok", "old-pending", "new-ok"):
        await _start(sessions, call_id)
    async with sessions() as s, s.begin():
        await fan_out(s, now=T0)
        jobs = await claim_due(s, limit=10, lease_s=0.0, now=T0)
        ok = [(j, Outcome(True, 1.0, 200)) for j in jobs if j.msg_id != "call.started:old-pending"]
        await record_outcomes(s, results=ok, schedule_s=(0.0,), now=T0)
        # The newest one was handed out and settled later.
        newest = (
            await s.scalars(select(WebhookDelivery).where(WebhookDelivery.event_id.like("%new-ok")))
        ).one()
        newest.created_at = T0 + timedelta(days=40)
        outbox = (await s.scalars(select(WebhookOutbox).where(WebhookOutbox.event_id.like("%new-ok")))).one()
        outbox.delivered_at = T0 + timedelta(days=40)
    async with sessions() as s, s.begin():
        assert await prune(s, older_than=T0 + timedelta(days=30)) == (1, 1)
    async with sessions() as s:
        left = {d.event_id: d.status for d in await list_deliveries(s)}
        events = set((await s.scalars(select(WebhookOutbox.event_id))).all())
    assert left == {"call.started:old-pending": "pending", "call.started:new-ok": "succeeded"}
    assert events == {"call.started:old-pending", "call.started:new-ok"}
