"""Live calls (polled as JSON, with hang-up and transfer), call history, a call's detail and audio."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select

from voiceagent.api.calls import resolve_recording
from voiceagent.api.deps import StateDep
from voiceagent.console.callviews import HistoryFilter, search_calls, turn_latencies
from voiceagent.console.charts import bar_chart
from voiceagent.console.deps import ChangeDep, LiveDep, LoginDep
from voiceagent.console.templating import render
from voiceagent.errors import LiveCallError
from voiceagent.store import repository
from voiceagent.store.models import CHANNELS, Call

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter()

_LEG_PREFERENCE = ("both", "caller", "agent")


@router.get("/live")
async def live_page(request: Request, login: LoginDep, state: StateDep) -> Response:
    """Live calls; the list refreshes itself from ``live.json``."""
    return render(request, "live.html", login=login, active="live", poll_ms=state.settings.console_poll_ms)


@router.get("/live.json")
async def live_json(login: LoginDep, live: LiveDep) -> JSONResponse:
    """The live calls, for the page's poller."""
    now = datetime.now(UTC)
    calls = [
        {
            "call_id": c.call_id,
            "channel": c.channel,
            "agent": c.agent,
            "from_number": c.from_number,
            "to_number": c.to_number,
            "started_at": c.started_at.isoformat(),
            "duration_s": round((now - c.started_at).total_seconds(), 1),
            "turns": c.turns,
            "can_transfer": c.can_transfer,
        }
        for c in await live.calls()
    ]
    return JSONResponse(
        {"calls": calls, "can_change": login.can_change}, headers={"Cache-Control": "no-store"}
    )


@router.post("/live/{call_id}/hangup")
async def hang_up(call_id: str, login: ChangeDep, live: LiveDep) -> JSONResponse:
    """End a live call (404 if it is not live)."""
    try:
        await live.hang_up(call_id, reason="console_hangup")
    except LiveCallError as exc:
        return JSONResponse({"code": "not_found", "message": str(exc)}, status_code=404)
    logger.info("console: %s hung up %s", login.email, call_id, extra={"call_id": call_id})
    return JSONResponse({"call_id": call_id, "ended": True})


@router.post("/live/{call_id}/transfer")
async def transfer(
    call_id: str, login: ChangeDep, live: LiveDep, target: Annotated[str, Form(max_length=256)] = ""
) -> JSONResponse:
    """Transfer a live call; 409 where its bridge cannot (browser and file calls)."""
    if await live.get(call_id) is None:
        return JSONResponse({"code": "not_found", "message": f"no live call {call_id!r}"}, status_code=404)
    try:
        await live.transfer(call_id, target)
    except LiveCallError as exc:
        return JSONResponse({"code": "unsupported", "message": str(exc)}, status_code=409)
    logger.info("console: %s transferred %s to %s", login.email, call_id, target, extra={"call_id": call_id})
    return JSONResponse({"call_id": call_id, "transferred_to": target})


def _day(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        return None


@router.get("/calls")
async def history(
    request: Request,
    login: LoginDep,
    state: StateDep,
    q: Annotated[str, Query(max_length=128)] = "",
    channel: Annotated[str, Query(max_length=16)] = "",
    agent: Annotated[str, Query(max_length=128)] = "",
    since: Annotated[str, Query(max_length=32)] = "",
    until: Annotated[str, Query(max_length=32)] = "",
    cursor: Annotated[str, Query(max_length=512)] = "",
) -> Response:
    """Past calls, newest first, with search and filters."""
    where = HistoryFilter(
        q=q.replace("\x00", "").strip(),
        channel=channel if channel in CHANNELS else "",
        agent=agent.replace("\x00", ""),
        since=_day(since),
        until=_day(until),
    )
    error = None
    async with state.sessions() as session:
        try:
            calls, next_cursor = await search_calls(session, where=where, cursor=cursor or None)
        except ValueError:
            calls, next_cursor, error = (
                [],
                None,
                "That page link is no longer valid; start from the first page.",
            )
        agents = [a for a in (await session.scalars(select(Call.agent).distinct())).all() if a]
    params = {"q": q, "channel": where.channel, "agent": where.agent, "since": since, "until": until}
    return render(
        request,
        "calls.html",
        login=login,
        active="calls",
        calls=calls,
        next_cursor=next_cursor,
        params=params,
        channels=CHANNELS,
        agents=sorted(agents),
        error=error,
    )


def _marks(call: Any) -> list[dict[str, Any]]:
    """Transcript lines: a truncated agent turn carries where the caller cut in (barge-in)."""
    return [
        {
            "speaker": t.speaker,
            "text": t.text,
            "start_ms": t.start_ms,
            "end_ms": t.end_ms,
            "barged_in": t.truncated,
            "heard_ms": t.audio_end_ms,
        }
        for t in call.turns
    ]


@router.get("/calls/{call_id}")
async def call_detail(request: Request, call_id: str, login: LoginDep, state: StateDep) -> Response:
    """A call: transcript with barge-in marks, recording, timeline and latency per turn."""
    async with state.sessions() as session:
        call = None if "\x00" in call_id else await repository.get_call(session, call_id=call_id)
    if call is None:
        return render(request, "not_found.html", login=login, what=f"call {call_id}", status_code=404)
    latencies = turn_latencies(call.turns)
    chart = bar_chart([f"#{t.index}" for t in latencies], [t.latency_ms for t in latencies], unit=" ms")
    return render(
        request,
        "call_detail.html",
        login=login,
        active="calls",
        call=call,
        transcript=_marks(call),
        latencies=latencies,
        chart=chart,
        has_recording=bool(call.recordings),
    )


@router.get("/calls/{call_id}/recording")
async def recording(call_id: str, login: LoginDep, state: StateDep) -> Response:
    """The call's recording (both legs if stored) for the page's audio player."""
    async with state.sessions() as session:
        call = None if "\x00" in call_id else await repository.get_call(session, call_id=call_id)
    by_leg = {r.leg: r for r in call.recordings} if call is not None else {}
    for leg in _LEG_PREFERENCE:
        if leg in by_leg:
            path = await asyncio.to_thread(resolve_recording, by_leg[leg].uri, state.settings.recordings_dir)
            if path is not None:
                return FileResponse(
                    path, media_type="audio/wav", headers={"Cache-Control": "private, no-store"}
                )
    return JSONResponse({"code": "not_found", "message": "no stored recording"}, status_code=404)


@router.get("")
@router.get("/")
async def home(login: LoginDep) -> Response:
    """The console opens on the live calls."""
    return RedirectResponse("/console/live", status_code=303)
