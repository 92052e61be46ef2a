"""The REST API against a real PostgreSQL and Redis (127.0.0.1, see scripts/services.sh).

The module gets a database of its own (``va_api_<random>``, created through the ``postgres``
database and dropped at the end) and a Redis key prefix of its own (deleted at the end).
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
import schemathesis
from alembic.script import ScriptDirectory
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from redis.exceptions import RedisError
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from voiceagent.agents import Message
from voiceagent.api import create_app
from voiceagent.api.deps import ApiState
from voiceagent.config import Settings, load_settings
from voiceagent.memory import CallSummary, RedisMemory, SessionMemory
from voiceagent.store import (
    CallStarted,
    EventRecord,
    RecordingRecord,
    TurnRecord,
    agents_repo,
    create_engine,
    session_factory,
)
from voiceagent.store import repository as repo
from voiceagent.store.apikeys import create_api_key
from voiceagent.store.migrate import alembic_config, current_revision, upgrade

PG = os.environ.get("VOICEAGENT_TEST_PG", "postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("VOICEAGENT_TEST_REDIS", "redis://127.0.0.1:6379/0")
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
AGENT = {"name": "Front desk", "fallback": "Sorry, I can't help with that."}
SCOPES = {"admin": ["admin"], "calls": ["calls:read"], "memory": ["memory:delete"]}
# With no SIP media process running (none here), POST /v1/calls answers 503 sip_unavailable by
# design; every other check still applies to it, and tests/integration/test_sip_api.py places
# real calls through it.
_NEEDS_SIP = {"POST /v1/calls"}


def _checks(label: str) -> list[Any]:
    return CHECKS[1:] if label in _NEEDS_SIP else CHECKS


CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(f"postgresql://{PG}/postgres", timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _redis_ping() -> None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        await client.ping()
    finally:
        await client.aclose()


def _services_up() -> bool:
    try:
        asyncio.run(_admin("SELECT 1"))
        asyncio.run(_redis_ping())
    except (OSError, asyncpg.PostgresError, RedisError):
        return False
    return True


pytestmark = pytest.mark.skipif(not _services_up(), reason="PostgreSQL or Redis not running on 127.0.0.1")


async def _delete_prefix(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def _seed(url: str) -> dict[str, str]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as s, s.begin():
            keys = {name: (await create_api_key(s, name=name, scopes=sc)).key for name, sc in SCOPES.items()}
            calls = [
                CallStarted(
                    f"c{i:02d}", "inbound", "sip", T0 + timedelta(seconds=i // 2), from_number=f"+1{i % 2}"
                )
                for i in range(15)
            ]
            await repo.record_calls_started(s, calls=calls)
            await repo.add_turn(s, turn=TurnRecord("c01", 0, "caller", "Hello?", 0.0, 500.0))
            await repo.add_events(s, events=[EventRecord("c01", 0, "vad.start", T0, data={"p": 0.9})])
            await repo.add_recording(s, recording=RecordingRecord("c01", "both", "c01.wav", 1.0))
            await agents_repo.create_agent(
                s, agent_id="agt_known", name="known", definition={"name": "known", "fallback": "Sorry."}
            )
        return keys
    finally:
        await engine.dispose()


@dataclass
class Env:
    settings: Settings
    keys: dict[str, str]
    prefix: str

    def memory(self, settings: Settings) -> SessionMemory:
        assert settings.redis_url is not None
        return RedisMemory(settings.redis_url, prefix=self.prefix)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    name = f"va_api_{uuid.uuid4().hex[:12]}"
    prefix = f"{name}:"
    recordings = tmp_path_factory.mktemp("rec")
    (recordings / "c01.wav").write_bytes(b"RIFF")
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        url = f"postgresql+asyncpg://{PG}/{name}"
        upgrade(url)
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert asyncio.run(current_revision(url)) == head
        app_settings = load_settings(database_url=url, redis_url=REDIS_URL, recordings_dir=recordings)
        yield Env(app_settings, asyncio.run(_seed(url)), prefix)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(_delete_prefix(prefix))


@dataclass
class Api:
    client: httpx.AsyncClient
    state: ApiState
    keys: dict[str, str]

    def auth(self, key: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}


@pytest.fixture
async def api(env: Env) -> AsyncIterator[Api]:
    app = create_app(env.settings, memory_factory=env.memory)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        yield Api(client, app.state.api, env.keys)


async def test_ready_on_postgres(api: Api) -> None:
    assert (await api.client.get("/readyz")).json() == {"status": "ok", "checks": {"database": "ok"}}


async def test_auth_on_postgres(api: Api) -> None:
    assert (await api.client.get("/v1/calls")).status_code == 401
    bad = {"Authorization": "Bearer va_000000000000_" + "A" * 43}
    assert (await api.client.get("/v1/calls", headers=bad)).status_code == 401
    assert (await api.client.get("/v1/agents", headers=api.auth("calls"))).status_code == 403
    assert (await api.client.get("/v1/calls", headers=api.auth("calls"))).status_code == 200


async def test_calls_pagination_and_filters_on_postgres(api: Api) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 4, "from_number": "+11", **({"cursor": cursor} if cursor else {})}
        body = (await api.client.get("/v1/calls", params=params, headers=api.auth("calls"))).json()
        seen += [c["id"] for c in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"c{i:02d}" for i in range(13, -1, -2)]
    since = (T0 + timedelta(seconds=6)).isoformat()
    recent = (await api.client.get("/v1/calls", params={"since": since}, headers=api.auth())).json()
    assert [c["id"] for c in recent["items"]] == ["c14", "c13", "c12"]
    nul = await api.client.get("/v1/calls", params={"to_number": "+1\x00"}, headers=api.auth())
    assert (nul.status_code, nul.json()["items"]) == (200, [])


async def test_call_detail_and_recording_on_postgres(api: Api) -> None:
    call = (await api.client.get("/v1/calls/c01", headers=api.auth())).json()
    assert [t["text"] for t in call["turns"]] == ["Hello?"]
    assert call["events"][0]["data"] == {"p": 0.9}
    recording = await api.client.get("/v1/calls/c01/recording", headers=api.auth())
    assert (recording.status_code, recording.content) == (200, b"RIFF")
    for path in ("/v1/calls/nope", "/v1/calls/nope/recording", "/v1/calls/c%00x"):
        assert (await api.client.get(path, headers=api.auth())).status_code == 404


async def test_agents_on_postgres(api: Api) -> None:
    created = await api.client.post("/v1/agents", json=AGENT, headers=api.auth())
    assert created.status_code == 201, created.text
    url = f"/v1/agents/{created.json()['id']}"
    assert (await api.client.post("/v1/agents", json=AGENT, headers=api.auth())).status_code == 409
    nul = await api.client.put(url, json={**AGENT, "greeting": "hi\x00"}, headers=api.auth())
    assert (nul.status_code, nul.json()["details"][0]["loc"]) == (422, ["body", "greeting"])
    long_name = await api.client.put(url, json={**AGENT, "name": "x" * 129}, headers=api.auth())
    assert long_name.status_code == 422
    assert (
        await api.client.put(url, json={**AGENT, "greeting": "Hi"}, headers=api.auth())
    ).status_code == 200
    assert (await api.client.get(url, headers=api.auth())).json()["definition"]["greeting"] == "Hi"
    assert (await api.client.delete(url, headers=api.auth())).status_code == 204
    assert (await api.client.get(url, headers=api.auth())).status_code == 404


async def test_forget_caller_in_redis(api: Api) -> None:
    memory = api.state.memory
    await memory.append("call-9", Message("user", "It's Ada."))
    await memory.bind_caller("call-9", "+15550199")
    await memory.remember_caller("+15550199", CallSummary(), call_id="call-9")
    response = await api.client.delete("/v1/callers/+15550199/memory", headers=api.auth("memory"))
    assert response.status_code == 204
    assert await memory.recall_caller("+15550199") is None
    assert await memory.messages("call-9") == []


async def test_redis_down_is_503_not_500(env: Env) -> None:
    app = create_app(
        env.settings,
        memory_factory=lambda _s: RedisMemory("redis://127.0.0.1:1/0", prefix=env.prefix, timeout_s=0.5),
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        headers = {"Authorization": f"Bearer {env.keys['memory']}"}
        response = await client.delete("/v1/callers/+1555/memory", headers=headers)
    assert response.status_code == 503
    assert response.json()["code"] == "memory_unavailable"


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schema_conformance_on_postgres(env: Env, mode: GenerationMode) -> None:
    # Postgres refuses what SQLite takes (NUL characters, over-long VARCHARs): schemathesis finds those.
    app = create_app(env.settings, memory_factory=env.memory)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {env.keys['admin']}"}
    known = {"call_id": "c01", "agent_id": "agt_known", "caller_id": "+15550100"}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        names = {p.name for p in operation.path_parameters}
        for fixed in [{}, {n: known[n] for n in names if n in known}] if names else [{}]:

            @given(
                case=operation.as_strategy(
                    generation_mode=mode, path_parameters=fixed or None, headers=headers
                )
            )
            @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            def run(case: schemathesis.Case) -> None:
                case.call_and_validate(headers=headers, checks=_checks(case.operation.label))

            try:
                run()
            except Unsatisfiable:
                pass
            except Exception as exc:
                failures.append(f"{operation.label} {fixed}: {exc}")
    assert failures == [], "\n\n".join(failures)
