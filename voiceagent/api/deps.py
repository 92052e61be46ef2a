"""FastAPI dependencies: the app's state, a database session, session memory, the caller's key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from voiceagent.api.errors import AuthenticationError, PermissionDeniedError
from voiceagent.config import Settings
from voiceagent.memory import SessionMemory
from voiceagent.store.apikeys import Scope, authenticate_api_key, grants

__all__ = [
    "ApiState",
    "MemoryDep",
    "Principal",
    "PrincipalDep",
    "SessionDep",
    "SettingsDep",
    "StateDep",
    "get_principal",
    "get_session",
    "get_state",
    "require",
]


@dataclass(frozen=True, slots=True)
class ApiState:
    """What the lifespan opens and closes: one per running app."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    memory: SessionMemory


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the API key's id (its public prefix), name and scopes."""

    key_id: str
    name: str
    scopes: frozenset[Scope]


def get_state(request: Request) -> ApiState:
    """The running app's :class:`ApiState` (set by the lifespan)."""
    state: ApiState = request.app.state.api
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """A session for this request, closed when the response is done."""
    async with state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def get_memory(state: StateDep) -> SessionMemory:
    return state.memory


MemoryDep = Annotated[SessionMemory, Depends(get_memory)]

_bearer = HTTPBearer(
    auto_error=False,  # our own 401, in our error shape
    scheme_name="ApiKey",
    bearerFormat="va_<prefix>_<secret>",
    description="An API key made with `voiceagent apikey create --scope ...`.",
)


async def get_principal(
    state: StateDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The key in ``Authorization: Bearer ...``; 401 if there is none or it is not valid."""
    if credentials is None:
        raise AuthenticationError("missing API key: send 'Authorization: Bearer va_...'")
    # A session of its own, closed at once: the route's session then starts with no transaction.
    async with state.sessions() as session:
        found = await authenticate_api_key(session, key=credentials.credentials)
    if found is None:
        raise AuthenticationError("invalid or revoked API key")
    record, scopes = found
    return Principal(key_id=record.id, name=record.name, scopes=scopes)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require(scope: Scope) -> Any:
    """A dependency that lets the request through only with a key granting ``scope`` (else 403)."""

    async def check(principal: PrincipalDep) -> Principal:
        if not grants(principal.scopes, scope):
            raise PermissionDeniedError(f"this API key lacks the {scope.value!r} scope")
        return principal

    return Depends(check)
