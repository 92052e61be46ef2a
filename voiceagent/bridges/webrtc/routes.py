"""The signaling routes and the call page, as a router the API app (or ``voiceagent serve``) mounts.

``POST /v1/webrtc/offer`` takes ``{"sdp", "type": "offer"}`` and answers ``{"sdp", "type", "call_id"}``;
WHIP clients may post the SDP itself (``Content-Type: application/sdp``) and get the answer the
same way, with the call's URL in ``Location``. ``DELETE /v1/webrtc/calls/{call_id}`` hangs up.
A second offer on a live call (``POST /v1/webrtc/calls/{call_id}/offer``, or WHIP's ``PATCH`` on the
call's URL) is refused with 409 ``renegotiation_unsupported``: a call takes one offer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request, Response, params
from fastapi.responses import JSONResponse

from voiceagent.bridges.webrtc.service import (
    CallLimitError,
    CallNotFoundError,
    OfferError,
    RenegotiationError,
    WebRTCError,
    WebRTCService,
)

__all__ = ["webrtc_router"]

_STATUS: dict[type[WebRTCError], tuple[int, str]] = {
    OfferError: (400, "invalid_offer"),
    CallLimitError: (503, "call_limit"),
    CallNotFoundError: (404, "not_found"),
    RenegotiationError: (409, "renegotiation_unsupported"),
}
_ASSETS = {
    "call.js": "text/javascript; charset=utf-8",
    "call.css": "text/css; charset=utf-8",
}
_MAX_BODY_BYTES = 128 * 1024


def _error(exc: WebRTCError) -> JSONResponse:
    status, code = _STATUS.get(type(exc), (500, "internal_error"))
    # Same shape as the REST API's errors (voiceagent.api.errors.ErrorResponse).
    body = {"code": code, "message": str(exc), "details": []}
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _static(name: str) -> bytes:
    return (resources.files("voiceagent.bridges.webrtc") / "static" / name).read_bytes()


async def _read_offer(request: Request) -> tuple[str, str, bool]:
    """(sdp, type, whip) from a JSON or an application/sdp body."""
    body = await request.body()
    if len(body) > _MAX_BODY_BYTES:
        raise OfferError(f"the request body is larger than {_MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OfferError("the request body is not UTF-8") from exc
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/sdp":
        return text, "offer", True
    try:
        payload: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OfferError(f"the body is neither JSON nor application/sdp: {exc.msg}") from exc
    if not isinstance(payload, dict):
        raise OfferError('expected a JSON object {"sdp": ..., "type": "offer"}')
    sdp, sdp_type = payload.get("sdp"), payload.get("type", "offer")
    if not isinstance(sdp, str) or not isinstance(sdp_type, str):
        raise OfferError('"sdp" and "type" must be strings')
    return sdp, sdp_type, False


def webrtc_router(
    state: WebRTCService,
    *,
    page_at_root: bool = True,
    dependencies: Sequence[params.Depends] | None = None,
    list_dependencies: Sequence[params.Depends] | None = None,
) -> APIRouter:
    """Signaling for browser calls and the call page (at ``/call``, and at ``/`` if ``page_at_root``).

    ``dependencies`` guard the ``/v1/webrtc`` routes (an API-key check, a rate limit); the page
    itself stays public, since a browser cannot send a key before it has the page.
    ``list_dependencies`` guard the list of live calls only: a call's id is what lets its caller
    hang up, so listing the ids must take more than being able to reach the call page.
    """
    router = APIRouter()
    signaling = APIRouter(prefix="/v1/webrtc", tags=["webrtc"], dependencies=list(dependencies or ()))

    @signaling.post("/offer", status_code=201)
    async def offer(request: Request) -> Response:
        """Answer an SDP offer with a new call to the agent."""
        try:
            sdp, sdp_type, whip = await _read_offer(request)
            answer = await state.offer(sdp, sdp_type)
        except WebRTCError as exc:
            return _error(exc)
        location = {"Location": f"/v1/webrtc/calls/{answer.call_id}"}
        if whip:
            return Response(answer.sdp, status_code=201, media_type="application/sdp", headers=location)
        return JSONResponse(answer.as_json(), status_code=201, headers=location)

    @signaling.post("/calls/{call_id}/offer", status_code=409)
    @signaling.patch("/calls/{call_id}", status_code=409)
    async def renegotiate(call_id: str) -> Response:
        """A second offer on a live call: refused (409), since a call takes one offer."""
        try:
            state.renegotiate(call_id)
        except WebRTCError as exc:
            return _error(exc)
        raise AssertionError("renegotiate() always raises")  # pragma: no cover

    @signaling.delete("/calls/{call_id}", status_code=204)
    async def hang_up(call_id: str) -> Response:
        """End a live browser call."""
        try:
            await state.hang_up(call_id)
        except WebRTCError as exc:
            return _error(exc)
        return Response(status_code=204)

    @signaling.get("/calls", dependencies=list(list_dependencies or ()))
    async def live_calls() -> dict[str, Any]:
        """The live browser calls and the limit."""
        calls = [
            {
                "call_id": call.call_id,
                "connected": call.connected.is_set(),
                "turns": len(call.session.turns) if call.session is not None else 0,
            }
            for call in state.calls.values()
        ]
        return {**state.stats(), "calls": calls}

    router.include_router(signaling)

    async def page() -> Response:
        return Response(_static("index.html"), media_type="text/html; charset=utf-8")

    router.add_api_route("/call", page, methods=["GET"], include_in_schema=False)
    if page_at_root:
        router.add_api_route("/", page, methods=["GET"], include_in_schema=False)

    @router.get("/call/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        media_type = _ASSETS.get(name)
        if media_type is None:
            return JSONResponse({"code": "not_found", "message": "no such file", "details": []}, 404)
        return Response(_static(name), media_type=media_type, headers={"Cache-Control": "no-cache"})

    return router
