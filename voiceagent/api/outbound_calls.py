"""``POST /v1/calls``: the agent calls a number over a SIP trunk (a SIP media process places it).

The API process owns no SIP stack: it hands the call to a media process's local control endpoint
(``sip_control_urls``, docs/sip.md), trying the next one when a process is full or down.
"""

from __future__ import annotations

import itertools
import logging
from typing import Annotated, Protocol

import httpx
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from voiceagent.api.deps import require
from voiceagent.api.errors import ApiError, InvalidRequestError, error_responses
from voiceagent.store.apikeys import Scope

__all__ = ["CallPlacer", "HttpCallPlacer", "NoMediaProcessError", "OutboundCall", "PlacedCall", "router"]

logger = logging.getLogger(__name__)


class NoMediaProcessError(ApiError):
    """No SIP media process is configured, or none could take the call."""

    status_code = 503
    code = "sip_unavailable"


class OutboundCall(BaseModel):
    """Whom to call, over which trunk, with which agent."""

    model_config = ConfigDict(extra="forbid")

    to: Annotated[
        str, Field(min_length=1, max_length=256, description="A number (with trunk) or a sip: URI.")
    ]
    trunk: Annotated[str | None, Field(default=None, max_length=64)] = None
    agent: Annotated[str | None, Field(default=None, max_length=128)] = None


class PlacedCall(BaseModel):
    call_id: str
    status: str = "calling"


class CallPlacer(Protocol):
    """Something that can place a call: :class:`HttpCallPlacer`, or a SipMediaService in-process."""

    async def place_call(self, to: str, *, trunk: str | None = None, agent: str | None = None) -> str: ...


class HttpCallPlacer:
    """Places calls through media processes' control endpoints, round robin, skipping full/down ones."""

    def __init__(self, urls: list[str], *, timeout_s: float = 5.0) -> None:
        if not urls:
            raise ValueError("HttpCallPlacer needs at least one control URL")
        self.urls = [u.rstrip("/") for u in urls]
        self._next = itertools.cycle(range(len(self.urls)))
        self._timeout_s = timeout_s

    async def place_call(self, to: str, *, trunk: str | None = None, agent: str | None = None) -> str:
        start = next(self._next)
        problems: list[str] = []
        async with httpx.AsyncClient(timeout=self._timeout_s) as client:
            for offset in range(len(self.urls)):
                url = self.urls[(start + offset) % len(self.urls)]
                try:
                    reply = await client.post(f"{url}/calls", json={"to": to, "trunk": trunk, "agent": agent})
                except httpx.HTTPError as exc:
                    problems.append(f"{url}: {type(exc).__name__}")
                    continue
                if reply.status_code == 201:
                    return str(reply.json()["call_id"])
                message = _message(reply)
                if "call slots" in message:  # that process is full: another may not be
                    problems.append(f"{url}: full")
                    continue
                raise InvalidRequestError(message, loc=("body", "to"))
        logger.warning("no SIP media process took the call: %s", "; ".join(problems))
        raise NoMediaProcessError("no SIP media process could take the call; try again later")


def _message(reply: httpx.Response) -> str:
    try:
        return str(reply.json().get("error", reply.text))
    except ValueError:
        return reply.text[:200]


router = APIRouter(
    prefix="/v1/calls",
    tags=["calls"],
    dependencies=[require(Scope.ADMIN)],
    responses=error_responses(401, 403, 422, 503),
)


@router.post("", status_code=201, response_model=PlacedCall, responses=error_responses(400))
async def place_call(body: OutboundCall, request: Request) -> PlacedCall:
    """Have the agent call ``to``; returns the call's id at once (the call log follows it)."""
    placer: CallPlacer | None = getattr(request.app.state, "sip_placer", None)
    if placer is None:
        raise NoMediaProcessError("no SIP media process is configured (sip_control_urls)")
    call_id = await placer.place_call(body.to, trunk=body.trunk, agent=body.agent)
    return PlacedCall(call_id=call_id)
