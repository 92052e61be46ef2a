"""API keys: their format, hashing at rest, scopes, revocation, and the CLI-side helpers."""

import hashlib
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from voiceagent.api import create_app
from voiceagent.api.keys import issue_api_key, list_keys, revoke_key
from voiceagent.config import Settings, load_settings
from voiceagent.errors import StoreError
from voiceagent.store import create_engine, session_factory
from voiceagent.store.apikey_models import ApiKey
from voiceagent.store.apikeys import Scope, authenticate_api_key, create_api_key, grants, parse_scopes
from voiceagent.store.migrate import upgrade_async


@pytest.fixture
async def settings(tmp_path: Path) -> Settings:
    settings = load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}")
    engine = create_engine(settings.database_url)
    try:
        await upgrade_async(engine)
    finally:
        await engine.dispose()
    return settings


async def test_keys_are_random_and_stored_only_as_a_digest(settings: Settings) -> None:
    first = await issue_api_key(settings, name="crm", scopes=["calls:read"])
    second = await issue_api_key(settings, name="crm", scopes=["calls:read"])
    assert re.fullmatch(r"va_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", first.key)
    assert first.key != second.key
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as s:
            rows = list((await s.scalars(select(ApiKey).order_by(ApiKey.name))).all())
            stored = {r.id: r for r in rows}[first.record.id]
            assert stored.key_sha256 == hashlib.sha256(first.key.encode()).hexdigest()
            assert all(first.key.split("_", 2)[2] not in str(vars(r)) for r in rows)
            found = await authenticate_api_key(s, key=first.key)
            assert found is not None
            assert found[1] == {Scope.CALLS_READ}
            assert await authenticate_api_key(s, key=first.key.replace("va_", "vb_")) is None
    finally:
        await engine.dispose()


async def test_revoked_keys_stop_working_at_once(settings: Settings, tmp_path: Path) -> None:
    made = await issue_api_key(settings, name="ops", scopes=["admin"])
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {made.key}"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        assert (await client.get("/v1/calls", headers=headers)).status_code == 200
        assert await revoke_key(settings, key_id=made.record.id)
        assert (await client.get("/v1/calls", headers=headers)).status_code == 401
    assert await revoke_key(settings, key_id=made.record.id)  # twice: still fine
    assert not await revoke_key(settings, key_id="000000000000")
    [listed] = await list_keys(settings)
    assert (listed.name, listed.revoked_at is not None) == ("ops", True)


@pytest.mark.parametrize(
    ("held", "needed", "allowed"),
    [
        ({Scope.ADMIN}, Scope.MEMORY_DELETE, True),
        ({Scope.AGENTS_WRITE}, Scope.AGENTS_READ, True),
        ({Scope.AGENTS_READ}, Scope.AGENTS_WRITE, False),
        ({Scope.CALLS_READ}, Scope.AGENTS_READ, False),
        (set(), Scope.CALLS_READ, False),
    ],
)
def test_scope_grants(held: set[Scope], needed: Scope, allowed: bool) -> None:
    assert grants(held, needed) is allowed


async def test_bad_scopes_and_names_are_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="unknown scope 'calls:write'"):
        parse_scopes(["calls:read", "calls:write"])
    engine = create_engine(settings.database_url)
    try:
        async with session_factory(engine)() as s:
            with pytest.raises(ValueError, match="at least one scope"):
                await create_api_key(s, name="x", scopes=[])
            with pytest.raises(ValueError, match="name"):
                await create_api_key(s, name="", scopes=["admin"])
    finally:
        await engine.dispose()


async def test_an_unmigrated_database_is_a_store_error(tmp_path: Path) -> None:
    settings = load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(StoreError, match=r"no such table: api_keys \(has `voiceagent migrate` run\?\)"):
        await list_keys(settings)


async def test_a_lost_database_is_503_not_500(settings: Settings, tmp_path: Path) -> None:
    made = await issue_api_key(settings, name="ops", scopes=["admin"])
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client,
    ):
        await app.state.api.engine.dispose()
        (tmp_path / "calls.db").unlink()
        (tmp_path / "calls.db").mkdir()
        response = await client.get("/v1/calls", headers={"Authorization": f"Bearer {made.key}"})
    assert response.status_code == 503
    assert response.json()["code"] == "store_unavailable"
