"""``/v1/webhooks`` in process (httpx ASGITransport) on a migrated SQLite file: scopes, shapes, errors."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
from fastapi import FastAPI

from voiceagent.api.deps import ApiState
from voiceagent.api.errors import install_error_handlers
from voiceagent.config import load_settings
from voiceagent.memory import InProcessMemory
from voiceagent.store import CallStarted, create_engine, session_factory
from voiceagent.store import repository as repo
from voiceagent.store.apikeys import create_api_key
from voiceagent.store.migrate import upgrade_async
from voiceagent.webhooks import EVENT_TYPES, routes
from voiceagent.webhooks.queue import fan_out
from voiceagent.webhooks.schemas import EventType

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    keys: dict[str, str]

    def h(self, key: str = "write") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}

    async def call(self, method: str, url: str, key: str = "write", **kw: Any) -> httpx.Response:
        return await self.client.request(method, url, headers=self.h(key), **kw)


class _Woken:
    count = 0

    def wake(self) -> None:
        self.count += 1


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}")
    engine = create_engine(settings.database_url)
    await upgrade_async(engine)
    sessions = session_factory(engine)
    keys = {}
    async with sessions() as s, s.begin():
        for name, scopes in {
            "read": ["webhooks:read"],
            "write": ["webhooks:write"],
            "calls": ["calls:read"],
            "admin": ["admin"],
        }.items():
            keys[name] = (await create_api_key(s, name=name, scopes=scopes)).key
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(routes.router)
    app.state.api = ApiState(settings=settings, engine=engine, sessions=sessions, memory=InProcessMemory())
    app.state.webhooks = _Woken()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield Api(app, client, keys)
    await engine.dispose()


async def test_every_route_needs_a_key_and_the_right_scope(api: Api) -> None:
    # From the schema: FastAPI keeps included routers as objects of their own in app.routes.
    schema = api.app.openapi()["paths"]
    paths = [(m.upper(), p) for p, ops in schema.items() for m in ops]
    assert len(paths) == 9
    for method, path in paths:
        url = path.replace("{endpoint_id}", "ep_x").replace("{delivery_id}", "1")
        assert (await api.client.request(method, url)).status_code == 401, (method, path)
        assert (await api.call(method, url, key="calls")).status_code == 403, (method, path)
        expected_read = method == "GET"
        status = (await api.call(method, url, key="read", json={})).status_code
        assert (status != 403) == expected_read, (method, path, status)


async def test_register_list_disable_rotate_delete(api: Api) -> None:
    made = await api.call(
        "POST", "/v1/webhooks/endpoints", json={"url": "https://example.com/h", "events": ["call.ended"]}
    )
    assert made.status_code == 201
    body = made.json()
    assert body["secret"].startswith("whsec_")
    assert (body["events"], body["enabled"], body["agent"]) == (["call.ended"], True, None)
    endpoint_id = body["id"]

    listed = (await api.call("GET", "/v1/webhooks/endpoints", key="read")).json()["items"]
    assert [e["id"] for e in listed] == [endpoint_id]
    assert "secret" not in listed[0]

    patched = await api.call("PATCH", f"/v1/webhooks/endpoints/{endpoint_id}", json={"enabled": False})
    assert patched.json()["enabled"] is False
    assert patched.json()["disabled_reason"]

    rotated = await api.call(
        "POST", f"/v1/webhooks/endpoints/{endpoint_id}/rotate-secret", json={"overlap_s": 60}
    )
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != body["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None

    assert (await api.call("DELETE", f"/v1/webhooks/endpoints/{endpoint_id}")).status_code == 204
    assert (await api.call("GET", f"/v1/webhooks/endpoints/{endpoint_id}")).status_code == 404
    assert (await api.call("DELETE", f"/v1/webhooks/endpoints/{endpoint_id}")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.com/h", "events": ["call.ended"]},
        {"url": "https://example.com/h", "events": ["call.exploded"]},
        {"url": "https://example.com/h", "events": []},
        {"url": "https://example.com/h", "events": ["call.ended"], "secret": "mine"},
        {"url": "https://example.com/h", "events": ["call.ended"], "description": "a\x00b"},
    ],
)
async def test_bad_registrations_are_422(api: Api, body: dict[str, Any]) -> None:
    response = await api.call("POST", "/v1/webhooks/endpoints", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


async def test_the_delivery_log_pages_and_resend_wakes_the_dispatcher(api: Api) -> None:
    made = await api.call(
        "POST", "/v1/webhooks/endpoints", json={"url": "https://example.com/h", "events": ["call.started"]}
    )
    endpoint_id = made.json()["id"]
    state: ApiState = api.app.state.api
    async with state.sessions() as s, s.begin():
        for n in range(3):
            await repo.record_call_started(s, call=CallStarted(f"c{n}", "inbound", "sip", T0))
        assert await fan_out(s) == 3
    first = (await api.call("GET", "/v1/webhooks/deliveries?limit=2", key="read")).json()
    assert [d["event_id"] for d in first["items"]] == ["call.started:c2", "call.started:c1"]
    url = f"/v1/webhooks/deliveries?limit=2&before_id={first['next_before_id']}&endpoint_id={endpoint_id}"
    second = (await api.call("GET", url, key="read")).json()
    assert [d["event_id"] for d in second["items"]] == ["call.started:c0"]
    assert second["next_before_id"] is None
    one = second["items"][0]
    assert (one["status"], one["attempts"], one["response_code"], one["latency_ms"]) == (
        "pending",
        0,
        None,
        None,
    )

    resent = await api.call("POST", f"/v1/webhooks/deliveries/{one['id']}/resend")
    assert resent.status_code == 202
    assert api.app.state.webhooks.count == 1
    assert (await api.call("POST", "/v1/webhooks/deliveries/999/resend")).status_code == 404
    assert (await api.call("GET", "/v1/webhooks/deliveries?status=lost", key="read")).status_code == 422
    # The largest page the schema allows is served (it asked the store for one row too many).
    biggest = await api.call(
        "GET", "/v1/webhooks/deliveries?limit=500&status=succeeded&before_id=9", key="read"
    )
    assert biggest.status_code == 200, biggest.text
    assert biggest.json() == {"items": [], "next_before_id": None}


def test_the_schema_lists_every_event_type() -> None:
    assert get_args(EventType) == EVENT_TYPES
