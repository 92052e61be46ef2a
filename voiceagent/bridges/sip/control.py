"""The media process's local control endpoint (loopback HTTP): health, outbound calls, DTMF, transfer.

The API process (``POST /v1/calls``) and the supervisor talk to media processes through it.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from voiceagent.bridges.sip.group import SipEndpointGroup
from voiceagent.bridges.sip.service import SipMediaService
from voiceagent.errors import SipError

__all__ = ["control_app"]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SipError(f"the body must be a JSON object: {exc}") from exc
    if not isinstance(body, dict):
        raise SipError("the body must be a JSON object")
    return body


def _text(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise SipError(f"{key!r} must be a non-empty string")
    return value


def control_app(service: SipMediaService | SipEndpointGroup) -> Starlette:
    """Routes over one :class:`SipMediaService` or a process's :class:`SipEndpointGroup`;
    SipError becomes 400 (404 for an unknown call)."""

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(service.stats())

    async def list_calls(request: Request) -> JSONResponse:
        calls = [
            {
                "call_id": leg.call_id,
                "state": leg.state,
                "direction": leg.details.direction,
                "to": leg.details.to_uri,
            }
            for leg in service.calls.values()
        ]
        return JSONResponse({"calls": calls})

    async def place(request: Request) -> JSONResponse:
        body = await _body(request)
        to = _text(body, "to")
        assert to is not None
        call_id = await service.place_call(
            to, trunk=_text(body, "trunk", required=False), agent=_text(body, "agent", required=False)
        )
        return JSONResponse({"call_id": call_id, "status": "calling"}, status_code=201)

    def _live(request: Request) -> str:
        call_id = str(request.path_params["call_id"])
        if call_id not in service.calls:
            raise LookupError(call_id)
        return call_id

    async def hangup(request: Request) -> JSONResponse:
        await service.hang_up(_live(request))
        return JSONResponse({"status": "ending"})

    async def dtmf(request: Request) -> JSONResponse:
        call_id = _live(request)
        body = await _body(request)
        digits = _text(body, "digits")
        assert digits is not None
        await service.send_dtmf(call_id, digits, method=_text(body, "method", required=False) or "rfc4733")
        return JSONResponse({"status": "sent"})

    async def transfer(request: Request) -> JSONResponse:
        call_id = _live(request)
        to = _text(await _body(request), "to")
        assert to is not None
        await service.transfer(call_id, to)
        return JSONResponse({"status": "transferring"})

    async def on_sip_error(request: Request, exc: Exception) -> JSONResponse:
        return _error(400, str(exc))

    async def on_lookup(request: Request, exc: Exception) -> JSONResponse:
        return _error(404, f"no live call {exc}")

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/calls", list_calls, methods=["GET"]),
            Route("/calls", place, methods=["POST"]),
            Route("/calls/{call_id}/hangup", hangup, methods=["POST"]),
            Route("/calls/{call_id}/dtmf", dtmf, methods=["POST"]),
            Route("/calls/{call_id}/transfer", transfer, methods=["POST"]),
        ],
        exception_handlers={SipError: on_sip_error, LookupError: on_lookup},
    )
