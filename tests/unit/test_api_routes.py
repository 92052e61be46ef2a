"""The REST API in process (httpx ASGITransport) on a migrated SQLite file and in-process memory."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from voiceagent.agents import Message
from voiceagent.api import create_app
from voiceagent.api.deps import ApiState
from voiceagent.config import load_settings
from voiceagent.memory import CallSummary, InProcessMemory
from voiceagent.store import (
    CallEnded,
    CallStarted,
    EventRecord,
    RecordingRecord,
    TurnRecord,
    create_engine,
    session_factory,
)
from voiceagent.store import repository as repo
from voiceagent.store.apikeys import create_api_key, revoke_api_key
from voiceagent.store.migrate import upgrade_async

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
AGENT = {
    "name": "Front desk",
    "fallback": "Sorry, I can't help with that.",
    "intents": [{"name": "hours", "examples": ["when are you open"], "answer": "Nine to five."}],
}


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    keys: dict[str, str]
    memory: InProcessMemory
    recordings_dir: Path

    @property
    def state(self) -> ApiState:
        state: ApiState = self.app.state.api
        return state

    def auth(self, key: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}

    async def get(self, url: str, key: str = "admin", **kwargs: Any) -> httpx.Response:
        return await self.client.get(url, headers=self.auth(key), **kwargs)


async def _seed_calls(api: Api) -> None:
    calls = [
        CallStarted(
            f"c{i:02d}",
            "inbound",
            "sip",
            T0 + timedelta(minutes=i // 2),  # pairs share a start: the id breaks the tie
            from_number=f"+100{i % 3}",
            to_number="+2000",
            agent="front-desk" if i % 2 else "sales",
        )
        for i in range(25)
    ]
    async with api.state.sessions() as s, s.begin():
        await repo.record_calls_started(s, calls=calls)
        await repo.add_turns(
            s,
            turns=[
                TurnRecord("c01", 0, "caller", "When are you open?", 0.0, 1200.0),
                TurnRecord(
                    "c01", 1, "agent", "Nine to five.", 1700.0, 2500.0, truncated=True, audio_end_ms=800.0
                ),
            ],
        )
        await repo.add_events(s, events=[EventRecord("c01", n, f"e{n}", T0, data={"n": n}) for n in range(3)])
        await repo.record_call_ended(s, call=CallEnded("c01", T0 + timedelta(minutes=2), "hangup"))


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}", recordings_dir=tmp_path / "rec"
    )
    engine = create_engine(settings.database_url)
    keys: dict[str, str] = {}
    try:
        await upgrade_async(engine)
        async with session_factory(engine)() as s, s.begin():
            for name, scopes in {
                "admin": ["admin"],
                "calls": ["calls:read"],
                "agents_read": ["agents:read"],
                "agents_write": ["agents:write"],
                "memory": ["memory:delete"],
                "revoked": ["admin"],
            }.items():
                keys[name] = (await create_api_key(s, name=name, scopes=scopes)).key
            await revoke_api_key(s, key_id=keys["revoked"].split("_")[1])
    finally:
        await engine.dispose()
    memory = InProcessMemory()
    app = create_app(settings, memory_factory=lambda _settings: memory)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        api = Api(app, client, keys, memory, settings.recordings_dir)
        await _seed_calls(api)
        yield api


def _v1_routes(app: FastAPI) -> list[tuple[str, str]]:
    # From the schema: FastAPI keeps included routers as objects of their own in app.routes.
    paths = app.openapi()["paths"]
    return [(m.upper(), path) for path, ops in paths.items() if path.startswith("/v1") for m in ops]


# --- health and auth -------------------------------------------------------------------------------


async def test_health_and_readiness_need_no_key(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok", "checks": {}}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok"}


async def test_readiness_fails_when_the_database_is_gone(api: Api, tmp_path: Path) -> None:
    await api.state.engine.dispose()
    (tmp_path / "calls.db").unlink()
    (tmp_path / "calls.db").mkdir()  # a directory where the file was: SQLite cannot open it
    ready = await api.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "checks": {"database": "unavailable"}}


async def test_every_v1_route_answers_401_without_a_key(api: Api) -> None:
    routes = _v1_routes(api.app)
    # The walk must see the routes (calls, agents, callers, webhooks, ...), whatever is added later.
    assert {("GET", "/v1/calls"), ("GET", "/v1/agents"), ("GET", "/v1/webhooks/endpoints")} <= set(routes)
    for method, path in routes:
        response = await api.client.request(method, path.replace("{", "x").replace("}", ""))
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["code"] == "unauthenticated"


@pytest.mark.parametrize(
    "header",
    [
        "Bearer va_000000000000_" + "A" * 43,  # well formed, unknown
        "Bearer nonsense",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
    ],
)
async def test_bad_keys_are_401(api: Api, header: str) -> None:
    response = await api.client.get("/v1/calls", headers={"Authorization": header})
    assert response.status_code == 401
    assert set(response.json()) == {"code", "message", "details"}


async def test_a_key_with_a_wrong_secret_or_revoked_is_401(api: Api) -> None:
    key = api.keys["admin"]
    forged = key[:-1] + ("B" if key[-1] != "B" else "C")
    assert (
        await api.client.get("/v1/calls", headers={"Authorization": f"Bearer {forged}"})
    ).status_code == 401
    assert (await api.get("/v1/calls", key="revoked")).status_code == 401


@pytest.mark.parametrize(
    ("key", "method", "path", "allowed"),
    [
        ("calls", "GET", "/v1/calls", True),
        ("calls", "GET", "/v1/agents", False),
        ("agents_read", "GET", "/v1/agents", True),
        ("agents_read", "GET", "/v1/calls", False),
        ("agents_read", "DELETE", "/v1/agents/x", False),
        ("agents_write", "GET", "/v1/agents", True),  # write implies read
        ("agents_write", "DELETE", "/v1/callers/+1555/memory", False),
        ("memory", "DELETE", "/v1/callers/+1555/memory", True),
        ("memory", "GET", "/v1/calls/c01", False),
    ],
)
async def test_scopes(api: Api, key: str, method: str, path: str, allowed: bool) -> None:
    response = await api.client.request(method, path, headers=api.auth(key))
    if allowed:
        assert response.status_code in (200, 204, 404)
    else:
        assert response.status_code == 403
        assert response.json()["code"] == "forbidden"


# --- calls ------------------------------------------------------------------------------------------


async def _all_pages(api: Api, params: dict[str, Any]) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        response = await api.get("/v1/calls", params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([c["id"] for c in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


async def test_calls_page_newest_first_without_gaps_or_repeats(api: Api) -> None:
    pages = await _all_pages(api, {"limit": 10})
    assert [len(p) for p in pages] == [10, 10, 5]
    seen = [i for p in pages for i in p]
    assert seen == [f"c{i:02d}" for i in range(24, -1, -1)]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"from_number": "+1001"}, [i for i in range(25) if i % 3 == 1]),
        ({"agent": "sales"}, [i for i in range(25) if i % 2 == 0]),
        ({"to_number": "+2000", "agent": "nobody"}, []),
        # since inclusive, until exclusive: minutes 3..4 are calls 6..9
        (
            {
                "since": (T0 + timedelta(minutes=3)).isoformat(),
                "until": (T0 + timedelta(minutes=5)).isoformat(),
            },
            [6, 7, 8, 9],
        ),
        ({"since": "2026-03-01T10:03:00+01:00", "until": "2026-03-01T09:05:00Z"}, [6, 7, 8, 9]),
        ({"agent": "bad\x00value"}, []),
    ],
)
async def test_calls_filters(api: Api, params: dict[str, Any], expected: list[int]) -> None:
    seen = [i for p in await _all_pages(api, {**params, "limit": 4}) for i in p]
    assert seen == [f"c{i:02d}" for i in sorted(expected, reverse=True)]


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 201}, ["query", "limit"]),
        ({"cursor": "not-a-cursor"}, ["query", "cursor"]),
        ({"since": "2026-03-01T09:00:00"}, ["query", "since"]),  # naive: whose local time?
        ({"until": "0001-01-01T00:00:00+05:00"}, ["query", "until"]),  # before year 1 in UTC
        ({"since": "yesterday"}, ["query", "since"]),
    ],
)
async def test_bad_call_queries_are_422_with_the_field(
    api: Api, params: dict[str, Any], loc: list[str]
) -> None:
    response = await api.get("/v1/calls", params=params)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["details"][0]["loc"] == loc


async def test_one_call_with_turns_events_and_recordings(api: Api) -> None:
    async with api.state.sessions() as s, s.begin():
        await repo.add_recording(s, recording=RecordingRecord("c01", "both", "c01.wav", 2.5))
    body = (await api.get("/v1/calls/c01")).json()
    assert body["id"] == "c01"
    assert body["end_reason"] == "hangup"
    assert [(t["speaker"], t["truncated"], t["audio_end_ms"]) for t in body["turns"]] == [
        ("caller", False, None),
        ("agent", True, 800.0),
    ]
    assert [(e["seq"], e["data"]) for e in body["events"]] == [(n, {"n": n}) for n in range(3)]
    assert [(r["leg"], r["duration_s"]) for r in body["recordings"]] == [("both", 2.5)]


@pytest.mark.parametrize("path", ["/v1/calls/nope", "/v1/calls/nope/recording", "/v1/calls/c02/recording"])
async def test_unknown_calls_and_missing_recordings_are_404(api: Api, path: str) -> None:
    response = await api.get(path)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


async def test_recording_is_served_as_wav(api: Api, tmp_path: Path) -> None:
    api.recordings_dir.mkdir()
    (api.recordings_dir / "c01.wav").write_bytes(b"RIFF-both")
    absolute = tmp_path / "elsewhere" / "c01-caller.wav"
    absolute.parent.mkdir()
    absolute.write_bytes(b"RIFF-caller")
    (tmp_path / "secret.wav").write_bytes(b"not yours")
    async with api.state.sessions() as s, s.begin():
        await repo.add_recordings(
            s,
            recordings=[
                RecordingRecord("c01", "both", "c01.wav", 1.0),
                RecordingRecord("c01", "caller", absolute.as_uri(), 1.0),
                RecordingRecord("c01", "agent", "../secret.wav", 1.0),  # relative paths stay inside
                RecordingRecord("c03", "both", "s3://bucket/c03.wav", 1.0),
            ],
        )
    both = await api.get("/v1/calls/c01/recording")
    assert (both.status_code, both.headers["content-type"], both.content) == (200, "audio/wav", b"RIFF-both")
    caller = await api.get("/v1/calls/c01/recording", params={"leg": "caller"})
    assert caller.content == b"RIFF-caller"
    assert (await api.get("/v1/calls/c01/recording", params={"leg": "agent"})).status_code == 404
    assert (await api.get("/v1/calls/c03/recording")).status_code == 404
    assert (await api.get("/v1/calls/c01/recording", params={"leg": "left"})).status_code == 422


# --- agents -----------------------------------------------------------------------------------------


async def test_agents_crud(api: Api) -> None:
    write = api.auth("agents_write")
    created = await api.client.post("/v1/agents", json=AGENT, headers=write)
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["id"].startswith("agt_")
    assert agent["name"] == "Front desk"
    assert agent["definition"]["intents"][0]["answer"] == "Nine to five."
    assert agent["definition"]["greeting"] is None  # defaults filled in by AgentDefinition

    url = f"/v1/agents/{agent['id']}"
    assert (await api.get(url, key="agents_read")).json() == agent
    changed = {**AGENT, "name": "Reception", "greeting": "Hello!"}
    replaced = await api.client.put(url, json=changed, headers=write)
    assert replaced.status_code == 200
    assert (replaced.json()["name"], replaced.json()["definition"]["greeting"]) == ("Reception", "Hello!")
    assert replaced.json()["created_at"] == agent["created_at"]

    listed = (await api.get("/v1/agents", key="agents_read")).json()
    assert [a["name"] for a in listed["items"]] == ["Reception"]
    assert listed["next_cursor"] is None

    assert (await api.client.delete(url, headers=write)).status_code == 204
    assert (await api.get(url)).status_code == 404
    assert (await api.client.delete(url, headers=write)).status_code == 404
    assert (await api.client.put(url, json=AGENT, headers=write)).status_code == 404


async def test_agents_page_by_id(api: Api) -> None:
    for n in range(5):
        response = await api.client.post("/v1/agents", json={**AGENT, "name": f"a{n}"}, headers=api.auth())
        assert response.status_code == 201
    names: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = (await api.get("/v1/agents", params=params)).json()
        names += [a["name"] for a in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(names) == [f"a{n}" for n in range(5)]
    assert len(names) == 5


async def test_agent_names_are_unique(api: Api) -> None:
    first = await api.client.post("/v1/agents", json=AGENT, headers=api.auth())
    other = await api.client.post("/v1/agents", json={**AGENT, "name": "Other"}, headers=api.auth())
    duplicate = await api.client.post("/v1/agents", json=AGENT, headers=api.auth())
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == "conflict"
    renamed = await api.client.put(f"/v1/agents/{other.json()['id']}", json=AGENT, headers=api.auth())
    assert renamed.status_code == 409
    same = await api.client.put(f"/v1/agents/{first.json()['id']}", json=AGENT, headers=api.auth())
    assert same.status_code == 200  # keeping one's own name is not a conflict


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"name": "x"}, ["body", "fallback"]),
        ({**AGENT, "fallbak": "typo"}, ["body", "fallbak"]),
        ({**AGENT, "intents": [{"name": "i", "answer": "a"}]}, ["body", "intents", 0]),
        ({**AGENT, "barge_in": {"onset_ms": 1}}, ["body", "barge_in", "onset_ms"]),
        ({**AGENT, "match_threshold": "high"}, ["body", "match_threshold"]),
        ({**AGENT, "name": "n" * 129}, ["body", "name"]),
        ({**AGENT, "persona": "nul\x00here"}, ["body", "persona"]),
        ([1, 2], ["body"]),
    ],
)
async def test_invalid_definitions_are_422_with_field_errors(api: Api, body: Any, loc: list[Any]) -> None:
    response = await api.client.post("/v1/agents", json=body, headers=api.auth())
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == "validation_error"
    assert loc in [d["loc"] for d in error["details"]]


async def test_malformed_json_is_422_not_500(api: Api) -> None:
    headers = {**api.auth(), "Content-Type": "application/json"}
    response = await api.client.post("/v1/agents", content=b"{not json", headers=headers)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


# --- memory and framework errors --------------------------------------------------------------------


async def test_forgetting_a_caller(api: Api) -> None:
    await api.memory.append("call-1", Message("user", "My name is Ada."))
    await api.memory.bind_caller("call-1", "+15550100")
    await api.memory.remember_caller("+15550100", CallSummary(), call_id="call-1")
    response = await api.client.delete("/v1/callers/+15550100/memory", headers=api.auth("memory"))
    assert (response.status_code, response.content) == (204, b"")
    assert await api.memory.recall_caller("+15550100") is None
    assert await api.memory.messages("call-1") == []
    again = await api.client.delete("/v1/callers/+15550100/memory", headers=api.auth("memory"))
    assert again.status_code == 204


async def test_unknown_routes_and_methods_use_the_error_shape(api: Api) -> None:
    missing = await api.client.get("/v2/nothing")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    wrong = await api.client.patch("/v1/calls", headers=api.auth())
    assert (wrong.status_code, wrong.json()["code"]) == (405, "method_not_allowed")


async def test_docs_only_in_development(tmp_path: Path) -> None:
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", environment="production"
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 200


async def test_bad_agent_cursors_are_422(api: Api) -> None:
    response = await api.get("/v1/agents", params={"cursor": "a\x00b"})
    assert (response.status_code, response.json()["details"][0]["loc"]) == (422, ["query", "cursor"])
    assert (await api.get("/v1/agents", params={"cursor": "x" * 65})).status_code == 422


async def test_a_bug_is_a_json_500(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(repo, "get_call", broken)
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        response = await client.get("/v1/calls/c01", headers=api.auth())
    assert response.status_code == 500
    assert response.json() == {"code": "internal_error", "message": "internal error", "details": []}
