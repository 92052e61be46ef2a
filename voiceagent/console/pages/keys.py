"""REST API keys: list, make (the secret is shown once), revoke."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from voiceagent.api.deps import StateDep
from voiceagent.console.admins import LoggedIn
from voiceagent.console.deps import ChangeDep, LoginDep
from voiceagent.console.templating import render
from voiceagent.store.apikeys import Scope, create_api_key, list_api_keys, revoke_api_key

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter()


async def _page(request: Request, state: StateDep, login: LoggedIn, **extra: object) -> Response:
    async with state.sessions() as session:
        keys = await list_api_keys(session)
    status_code = 422 if extra.get("error") else 200
    return render(
        request,
        "keys.html",
        login=login,
        active="keys",
        keys=keys,
        scopes=[s.value for s in Scope],
        status_code=status_code,
        **extra,
    )


@router.get("/keys")
async def keys_page(request: Request, login: LoginDep, state: StateDep) -> Response:
    """Every API key (never its secret)."""
    return await _page(request, state, login)


@router.post("/keys")
async def create_key(
    request: Request,
    login: ChangeDep,
    state: StateDep,
    name: Annotated[str, Form(max_length=128)],
    scopes: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Make a key and show it this once."""
    try:
        async with state.sessions() as session, session.begin():
            made = await create_api_key(session, name=name.strip(), scopes=scopes or [])
    except ValueError as exc:
        return await _page(request, state, login, error=str(exc))
    logger.info("console: %s made API key %s [%s]", login.email, made.record.id, made.record.scopes)
    return await _page(request, state, login, new_key=made.key, new_key_id=made.record.id)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, login: ChangeDep, state: StateDep) -> Response:
    """Revoke a key; it stops working at once."""
    if "\x00" not in key_id:
        async with state.sessions() as session, session.begin():
            if await revoke_api_key(session, key_id=key_id):
                logger.info("console: %s revoked API key %s", login.email, key_id)
    return RedirectResponse("/console/keys", status_code=303)
