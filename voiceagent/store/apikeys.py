"""REST API keys: make, find, list and revoke them. Keyword-only, and none of them commits.

A key reads ``va_<prefix>_<secret>``: 12 hex characters of public prefix (the row's id, for the
lookup) and 32 random bytes of secret (base64url). The table keeps SHA-256 of the whole key.
A slow password hash (argon2, bcrypt) buys nothing here: it exists to make guessing a *low-entropy*
password expensive, while guessing a 256-bit random secret is hopeless at any hash speed. It would
instead cost tens of milliseconds of CPU and megabytes of memory on every request, which is an
easy denial of service on an API that verifies a key per call.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from voiceagent.store.apikey_models import ApiKey
from voiceagent.store.models import utcnow

__all__ = [
    "KEY_PREFIX",
    "NewApiKey",
    "Scope",
    "authenticate_api_key",
    "create_api_key",
    "grants",
    "list_api_keys",
    "parse_scopes",
    "revoke_api_key",
]

KEY_PREFIX = "va"
_SECRET_BYTES = 32
_KEY_RE = re.compile(r"^va_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


class Scope(StrEnum):
    """What a key may do. ``admin`` may do everything; ``agents:write`` includes ``agents:read``."""

    CALLS_READ = "calls:read"
    AGENTS_READ = "agents:read"
    AGENTS_WRITE = "agents:write"
    MEMORY_DELETE = "memory:delete"
    WEBHOOKS_READ = "webhooks:read"
    WEBHOOKS_WRITE = "webhooks:write"
    ADMIN = "admin"


_IMPLIED = {Scope.AGENTS_WRITE: {Scope.AGENTS_READ}, Scope.WEBHOOKS_WRITE: {Scope.WEBHOOKS_READ}}


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just made: ``key`` is the only copy of the secret and is shown to the user once."""

    key: str
    record: ApiKey


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """Scopes from their names; ``ValueError`` naming an unknown one."""
    scopes = set()
    for value in values:
        try:
            scopes.add(Scope(value))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ValueError(f"unknown scope {value!r} (known: {known})") from None
    return frozenset(scopes)


def grants(granted: Iterable[Scope], needed: Scope) -> bool:
    """Whether a key holding ``granted`` may do what ``needed`` guards."""
    held = set(granted)
    if Scope.ADMIN in held or needed in held:
        return True
    return any(needed in _IMPLIED.get(scope, ()) for scope in held)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


async def create_api_key(session: AsyncSession, *, name: str, scopes: Iterable[str]) -> NewApiKey:
    """Store a new key with ``scopes`` and return it, secret included (it is not stored)."""
    wanted = parse_scopes(scopes)
    if not wanted:
        raise ValueError("an API key needs at least one scope")
    if not 1 <= len(name) <= 128:
        raise ValueError("name must be 1..128 characters")
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}"
    record = ApiKey(
        id=prefix,
        name=name,
        key_sha256=_digest(key),
        scopes=" ".join(sorted(s.value for s in wanted)),
        created_at=utcnow(),
    )
    session.add(record)
    await session.flush()
    return NewApiKey(key=key, record=record)


async def authenticate_api_key(session: AsyncSession, *, key: str) -> tuple[ApiKey, frozenset[Scope]] | None:
    """The stored key and its scopes if ``key`` is a valid, unrevoked key; None otherwise."""
    match = _KEY_RE.fullmatch(key)
    if match is None:
        return None
    record = await session.get(ApiKey, match.group(1))
    if record is None or record.revoked_at is not None:
        return None
    if not hmac.compare_digest(record.key_sha256, _digest(key)):
        return None
    # A scope dropped from the code since the key was made is ignored, not an error.
    scopes = frozenset(s for s in Scope if s.value in record.scopes.split())
    return record, scopes


async def list_api_keys(session: AsyncSession) -> list[ApiKey]:
    """Every key (revoked ones too), oldest first."""
    return list((await session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))).all())


async def revoke_api_key(session: AsyncSession, *, key_id: str) -> bool:
    """Revoke the key with this prefix; False if there is no such key. Revoking twice is a no-op."""
    record = await session.get(ApiKey, key_id)
    if record is None:
        return False
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        await session.flush()
    return True
