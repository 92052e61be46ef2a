"""SIP trunks and their registration state (an empty state until a SIP bridge is configured)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from voiceagent.console.deps import LoginDep
from voiceagent.console.templating import render

__all__ = ["router"]

router = APIRouter()


@router.get("/trunks")
async def trunks_page(request: Request, login: LoginDep) -> Response:
    """The configured trunks; none are known to this process yet."""
    return render(request, "trunks.html", login=login, active="trunks", trunks=[])
