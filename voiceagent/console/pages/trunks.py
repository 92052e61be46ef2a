"""SIP trunks and their registration state, as the SIP media processes report it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from voiceagent.api.deps import StateDep
from voiceagent.console.deps import LoginDep
from voiceagent.console.sip import trunk_states
from voiceagent.console.templating import render

__all__ = ["router"]

router = APIRouter()


@router.get("/trunks")
async def trunks_page(request: Request, login: LoginDep, state: StateDep) -> Response:
    """The configured trunks (``sip_trunks``) and whether each is registered."""
    trunks, problem = await trunk_states(state.settings)
    return render(
        request,
        "trunks.html",
        login=login,
        active="trunks",
        trunks=trunks,
        problem=problem,
        processes=len(state.settings.sip_control_urls),
    )
