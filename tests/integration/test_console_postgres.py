"""The console's store code against a real PostgreSQL (127.0.0.1): admins, sessions, search, metrics.

The module gets a database of its own (``va_console_<random>``), migrated with Alembic and dropped
at the end, so what runs here is what ``voiceagent migrate`` makes in production.
"""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from voiceagent.console.admins import (
    authenticate_admin,
    create_admin,
    end_session,
    find_session,
    start_session,
)
from voiceagent.console.callviews import HistoryFilter, search_calls
from voiceagent.console.metrics import overview
from voiceagent.errors import ConsoleAuthError
from voiceagent.store import CallStarted, EventRecord, TurnRecord, create_engine, session_factory
from voiceagent.store import repository as repo
from voiceagent.store.migrate import upgrade_async

from .postgres_support import create_database, drop_database, requires_postgres

NOW = datetime.now(UTC).replace(microsecond=0)

pytestmark = [
    requires_postgres,
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine() -> AsyncIterator[AsyncEngine]:
    url = await create_database("va_console")
    engine = create_engine(url)
    try:
        await upgrade_async(engine)
        async with session_factory(engine)() as s, s.begin():
            await repo.record_calls_started(
                s,
                calls=[
                    CallStarted("c_pct", "inbound", "sip", NOW - timedelta(minutes=3), from_number="+1 100%"),
                    CallStarted(
                        "c_under", "inbound", "sip", NOW - timedelta(minutes=2), from_number="+1_200"
                    ),
                    CallStarted("c_plain", "inbound", "webrtc", NOW - timedelta(minutes=1), agent="sales"),
                ],
            )
            await repo.add_turns(
                s,
                turns=[
                    TurnRecord("c_plain", 0, "caller", "Hours?", 0.0, 1000.0),
                    TurnRecord("c_plain", 1, "agent", "Nine to five.", 1500.0, 2500.0, True, 700.0),
                ],
            )
            await repo.add_events(
                s, events=[EventRecord("c_plain", 0, "agent_paused", NOW, 2080.0, {"onset_ms": 2000.0})]
            )
        yield engine
    finally:
        await engine.dispose()
        await drop_database(url)


async def test_admins_log_in_and_out_with_server_side_sessions(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    async with sessions() as s, s.begin():
        await create_admin(s, email="Lead@Example.com", password="a long password", role="admin")
    async with sessions() as s, s.begin():
        with pytest.raises(ConsoleAuthError, match="already exists"):
            await create_admin(s, email="lead@example.com", password="another password", role="viewer")
    async with sessions() as s, s.begin():
        assert await authenticate_admin(s, email="lead@example.com", password="wrong password") is None
        admin = await authenticate_admin(s, email="LEAD@example.com", password="a long password")
        assert admin is not None
        token, csrf = await start_session(s, admin=admin, ttl_s=60)
    async with sessions() as s:
        login = await find_session(s, token=token)
    assert login is not None
    assert (login.email, login.role, login.csrf_token) == ("lead@example.com", "admin", csrf)
    async with sessions() as s, s.begin():
        await end_session(s, token=token)
    async with sessions() as s:
        assert await find_session(s, token=token) is None


async def test_the_database_refuses_an_unknown_role(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as s:
        with pytest.raises(IntegrityError, match="ck_admins_role"):
            await s.execute(
                text(
                    "INSERT INTO admins (email, password_hash, role, created_at)"
                    " VALUES ('root@example.com', 'x', 'root', now())"
                )
            )


async def test_history_search_takes_percent_and_underscore_literally(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as s:
        percent, _ = await search_calls(s, where=HistoryFilter(q="100%"))
        underscore, _ = await search_calls(s, where=HistoryFilter(q="1_2"))
        webrtc, _ = await search_calls(s, where=HistoryFilter(channel="webrtc"))
        paged, cursor = await search_calls(s, where=HistoryFilter(), limit=2)
        rest, last = await search_calls(s, where=HistoryFilter(), cursor=cursor, limit=2)
    assert [c.id for c in percent] == ["c_pct"]
    assert [c.id for c in underscore] == ["c_under"]
    assert [c.id for c in webrtc] == ["c_plain"]
    assert [c.id for c in paged + rest] == ["c_plain", "c_under", "c_pct"]
    assert last is None


async def test_metrics_read_turns_and_jsonb_events(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as s:
        figures = await overview(s, now=NOW, hours=24)
    assert figures.calls == 3
    assert sum(figures.calls_per_hour) == 3
    assert figures.first_audio_p50_ms == 500.0
    assert figures.barge_in_p50_ms == 80.0
    assert figures.end_reasons == [("live", 3)]
