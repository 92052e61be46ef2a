"""The metrics overview page and its JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from voiceagent.api.deps import StateDep
from voiceagent.console.charts import bar_chart
from voiceagent.console.deps import LoginDep
from voiceagent.console.metrics import overview
from voiceagent.console.templating import render

__all__ = ["router"]

router = APIRouter()

WINDOWS_H = (24, 72, 168)


@router.get("/metrics")
async def metrics_page(
    request: Request, login: LoginDep, state: StateDep, hours: Annotated[int, Query(ge=1, le=168)] = 24
) -> Response:
    """Calls per hour, first-audio latency, barge-in stop time and errors over a window."""
    async with state.sessions() as session:
        figures = await overview(session, now=datetime.now(UTC), hours=hours)
    labels = [f"{h:%H}h" if hours <= 24 else f"{h:%d %Hh}" for h in figures.hours]
    # Drawn full-width: a wide view box keeps its text at the page's size.
    chart = bar_chart(
        labels, [float(n) for n in figures.calls_per_hour], unit=" calls", width=1100, height=200
    )
    return render(
        request,
        "metrics.html",
        login=login,
        active="metrics",
        figures=figures,
        chart=chart,
        hours=hours,
        windows=WINDOWS_H,
    )
