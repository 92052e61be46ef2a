"""``POST /v1/calls`` through a media process's control endpoint to a SIPp far end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from voiceagent.api import create_app
from voiceagent.bridges.sip.control import control_app
from voiceagent.bridges.sip.service import SipMediaService
from voiceagent.config import Settings, load_settings
from voiceagent.memory import InProcessMemory
from voiceagent.store import create_engine, session_factory
from voiceagent.store.apikeys import create_api_key
from voiceagent.store.migrate import upgrade_async

from .sip_support import SIPP, free_udp_port, run_sipp, scenario, sip_service, wait_for

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp is not installed")


@asynccontextmanager
async def _control(service: SipMediaService) -> AsyncIterator[str]:
    port = free_udp_port()
    server = uvicorn.Server(
        uvicorn.Config(control_app(service), host="127.0.0.1", port=port, log_config=None)
    )
    task = asyncio.create_task(server.serve())
    try:
        assert await wait_for(lambda: server.started, 5)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def _api(tmp_path: Path, control_urls: list[str]) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}", sip_control_urls=control_urls
    )
    engine = create_engine(settings.database_url)
    try:
        await upgrade_async(engine)
        async with session_factory(engine)() as s, s.begin():
            key = (await create_api_key(s, name="ops", scopes=["admin"])).key
    finally:
        await engine.dispose()
    memory = InProcessMemory()
    app = create_app(settings, memory_factory=lambda _settings: memory)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        yield client, key


async def test_post_v1_calls_places_a_call_through_a_media_process(tmp_path: Path) -> None:
    settings: Settings = load_settings()
    far_port = free_udp_port()
    far = asyncio.ensure_future(
        run_sipp(None, scenario(tmp_path, "uas_answer.xml", info_optional="true", digit="0"), port=far_port)
    )
    await asyncio.sleep(0.3)
    async with (
        sip_service(settings) as service,
        _control(service) as url,
        _api(tmp_path, [url]) as (client, key),
    ):
        auth = {"Authorization": f"Bearer {key}"}
        reply = await client.post("/v1/calls", json={"to": f"sip:far@127.0.0.1:{far_port}"}, headers=auth)
        assert reply.status_code == 201, reply.text
        call_id = reply.json()["call_id"]
        assert call_id in service.calls
        assert await wait_for(lambda: service.calls[call_id].started, 5)
        bad = await client.post("/v1/calls", json={"to": "not a uri"}, headers=auth)
        assert bad.status_code == 422
        assert "sip: URI" in bad.json()["message"]
        async with httpx.AsyncClient(base_url=url) as control:
            assert (await control.post(f"/calls/{call_id}/hangup")).status_code == 200
            result = await far
            assert result.returncode == 0, result.output
            assert (await control.post("/calls/call_nope/hangup")).status_code == 404


async def test_post_v1_calls_without_a_media_process_is_503(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_udp_port()}"
    async with _api(tmp_path, [dead]) as (client, key):
        reply = await client.post(
            "/v1/calls", json={"to": "sip:x@127.0.0.1"}, headers={"Authorization": f"Bearer {key}"}
        )
        assert reply.status_code == 503
        assert reply.json()["code"] == "sip_unavailable"
