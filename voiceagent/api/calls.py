"""``/v1/calls``: the call log, read-only: list with filters, one call with its timeline, its audio."""

from __future__ import annotations

import asyncio
from datetime import UTC
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from sqlalchemy import select

from voiceagent.api.deps import SessionDep, SettingsDep, require
from voiceagent.api.errors import InvalidRequestError, NotFoundError, error_responses
from voiceagent.api.schemas import CallDetail, CallOut, CallPage, UtcDatetime
from voiceagent.store import repository
from voiceagent.store.apikeys import Scope
from voiceagent.store.models import Recording

__all__ = ["MAX_LIMIT", "resolve_recording", "router"]

MAX_LIMIT = 200
_LEG_PREFERENCE = ("both", "caller", "agent")

router = APIRouter(
    prefix="/v1/calls",
    tags=["calls"],
    dependencies=[require(Scope.CALLS_READ)],
    responses=error_responses(401, 403, 422, 503),
)

Filter = Annotated[str | None, Query(max_length=128)]


def _check_cursor(cursor: str) -> None:
    # list_calls decodes it too; here a bad one becomes a 422 instead of a database error.
    try:
        at, call_id = repository.decode_cursor(cursor)
        at.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidRequestError("cursor: not a cursor this API returned", loc=("query", "cursor")) from exc
    if "\x00" in call_id:
        raise InvalidRequestError("cursor: not a cursor this API returned", loc=("query", "cursor"))


@router.get("", response_model=CallPage)
async def list_calls(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    from_number: Filter = None,
    to_number: Filter = None,
    agent: Filter = None,
    since: Annotated[UtcDatetime | None, Query(description="Calls that started at or after this.")] = None,
    until: Annotated[UtcDatetime | None, Query(description="Calls that started before this.")] = None,
) -> CallPage:
    """Calls newest first, filtered; keyset-paginated, so pages stay stable while calls arrive."""
    if cursor is not None:
        _check_cursor(cursor)
    if any(f is not None and "\x00" in f for f in (from_number, to_number, agent)):
        return CallPage(items=[], next_cursor=None)  # no stored value can hold a NUL (Postgres refuses)
    rows, next_cursor = await repository.list_calls(
        session,
        limit=limit,
        cursor=cursor,
        from_number=from_number,
        to_number=to_number,
        agent=agent,
        since=since,
        until=until,
    )
    return CallPage(items=[CallOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/{call_id}", response_model=CallDetail, responses=error_responses(404))
async def get_call(call_id: str, session: SessionDep) -> CallDetail:
    """One call with its turns, its event timeline and the recordings it has."""
    call = None if "\x00" in call_id else await repository.get_call(session, call_id=call_id)
    if call is None:
        raise NotFoundError(f"no call {call_id!r}")
    return CallDetail.model_validate(call)


def resolve_recording(uri: str, recordings_dir: Path) -> Path | None:
    """The local file a recording URI names, if it exists; None for remote or missing files.

    Absolute paths and ``file://`` URIs are taken as written by the media layer; relative ones
    resolve under ``recordings_dir`` and may not climb out of it.
    """
    parts = urlsplit(uri)
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
    elif parts.scheme and len(parts.scheme) > 1:  # s3://, https://: not ours to serve (C:\ is a path)
        return None
    else:
        path = Path(uri)
    if not path.is_absolute():
        base = recordings_dir.expanduser().resolve()
        path = (base / path).resolve()
        if not path.is_relative_to(base):
            return None
    return path if path.is_file() else None


@router.get(
    "/{call_id}/recording",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The recording as WAV.",
            "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
        },
        **error_responses(404),
    },
)
async def get_recording(
    call_id: str,
    session: SessionDep,
    settings: SettingsDep,
    leg: Annotated[
        Literal["caller", "agent", "both"] | None,
        Query(description="Which leg; by default both legs if stored, else the caller's, else the agent's."),
    ] = None,
) -> FileResponse:
    """The call's recording (audio/wav); 404 if none is stored or its file is gone."""
    rows = (
        []
        if "\x00" in call_id
        else list((await session.scalars(select(Recording).where(Recording.call_id == call_id))).all())
    )
    by_leg = {r.leg: r for r in rows}
    wanted = [leg] if leg is not None else [g for g in _LEG_PREFERENCE if g in by_leg]
    for name in wanted:
        if name in by_leg:
            path = await asyncio.to_thread(resolve_recording, by_leg[name].uri, settings.recordings_dir)
            if path is not None:
                return FileResponse(path, media_type="audio/wav", filename=f"{call_id}-{name}.wav")
    raise NotFoundError(f"no stored recording for call {call_id!r}" + (f" (leg {leg})" if leg else ""))
