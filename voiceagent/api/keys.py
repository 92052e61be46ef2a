"""API-key administration from outside a running app: what ``voiceagent apikey ...`` calls.

Each function opens the call-log database from settings, does one thing in one transaction and
closes the engine again. Database failures become :class:`~voiceagent.errors.StoreError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncSession

from voiceagent.config import Settings
from voiceagent.store.apikey_models import ApiKey
from voiceagent.store.apikeys import NewApiKey, create_api_key, list_api_keys, revoke_api_key
from voiceagent.store.engine import one_transaction

__all__ = ["issue_api_key", "list_keys", "revoke_key"]


def _transaction(settings: Settings) -> AbstractAsyncContextManager[AsyncSession]:
    return one_transaction(settings.database_url, "API keys")


async def issue_api_key(settings: Settings, *, name: str, scopes: Iterable[str]) -> NewApiKey:
    """Make and store a key; the returned ``key`` is the only copy of its secret."""
    async with _transaction(settings) as session:
        return await create_api_key(session, name=name, scopes=scopes)


async def list_keys(settings: Settings) -> list[ApiKey]:
    """Every stored key (no secrets: they are not stored)."""
    async with _transaction(settings) as session:
        return await list_api_keys(session)


async def revoke_key(settings: Settings, *, key_id: str) -> bool:
    """Revoke a key by its id (the ``<prefix>`` of ``va_<prefix>_...``); False if unknown."""
    async with _transaction(settings) as session:
        return await revoke_api_key(session, key_id=key_id)
