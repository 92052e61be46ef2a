"""Webhook endpoints and their delivery log, with "resend" (voiceagent.webhooks does the work)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from voiceagent.api.deps import StateDep
from voiceagent.console.admins import LoggedIn
from voiceagent.console.deps import ChangeDep, LoginDep
from voiceagent.console.templating import render
from voiceagent.errors import WebhookError
from voiceagent.webhooks import (
    DELIVERY_STATUSES,
    EVENT_TYPES,
    create_endpoint,
    disable_endpoint,
    enable_endpoint,
    list_deliveries,
    list_endpoints,
    resend,
)

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter()


def _wake_dispatcher(request: Request) -> None:
    # The API process runs the dispatcher (app.state.webhooks); wake it so a resend goes now.
    dispatcher = getattr(request.app.state, "webhooks", None)
    if dispatcher is not None:
        dispatcher.wake()


async def _page(
    request: Request,
    state: StateDep,
    login: LoggedIn,
    *,
    endpoint: str = "",
    status: str = "",
    status_code: int = 200,
    **extra: object,
) -> Response:
    async with state.sessions() as session:
        endpoints = await list_endpoints(session)
        known = {e.id for e in endpoints}
        deliveries = await list_deliveries(
            session,
            endpoint_id=endpoint if endpoint in known else None,
            status=status if status in DELIVERY_STATUSES else None,
            limit=100,
        )
    urls = {e.id: e.url for e in endpoints}
    return render(
        request,
        "webhooks.html",
        login=login,
        active="webhooks",
        endpoints=endpoints,
        deliveries=deliveries,
        urls=urls,
        event_types=EVENT_TYPES,
        statuses=DELIVERY_STATUSES,
        filter_endpoint=endpoint,
        filter_status=status,
        status_code=status_code,
        **extra,
    )


@router.get("/webhooks")
async def webhooks_page(
    request: Request,
    login: LoginDep,
    state: StateDep,
    endpoint: Annotated[str, Query(max_length=32)] = "",
    status: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    """Endpoints, and the delivery log newest first (filtered by endpoint and status)."""
    return await _page(request, state, login, endpoint=endpoint, status=status)


@router.post("/webhooks")
async def add_endpoint(
    request: Request,
    login: ChangeDep,
    state: StateDep,
    url: Annotated[str, Form(max_length=2048)],
    events: Annotated[list[str] | None, Form()] = None,
    agent: Annotated[str, Form(max_length=128)] = "",
    description: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    """Register an endpoint and show its signing secret this once."""
    try:
        async with state.sessions() as session, session.begin():
            made = await create_endpoint(
                session,
                url=url.strip(),
                events=events or [],
                agent=agent.strip() or None,
                description=description.replace("\x00", ""),
            )
    except WebhookError as exc:
        return await _page(request, state, login, error=str(exc), status_code=422)
    logger.info("console: %s added webhook endpoint %s", login.email, made.endpoint.id)
    return await _page(request, state, login, new_secret=made.secret, new_endpoint=made.endpoint.id)


@router.post("/webhooks/{endpoint_id}/enable")
@router.post("/webhooks/{endpoint_id}/disable")
async def toggle_endpoint(request: Request, endpoint_id: str, login: ChangeDep, state: StateDep) -> Response:
    """Pause or resume sending to an endpoint (deliveries wait while it is disabled)."""
    if "\x00" not in endpoint_id:
        async with state.sessions() as session, session.begin():
            if request.url.path.endswith("/enable"):
                await enable_endpoint(session, endpoint_id=endpoint_id)
            else:
                await disable_endpoint(session, endpoint_id=endpoint_id)
    if request.url.path.endswith("/enable"):
        _wake_dispatcher(request)
    return RedirectResponse("/console/webhooks", status_code=303)


@router.post("/webhooks/deliveries/{delivery_id}/resend")
async def resend_delivery(request: Request, delivery_id: str, login: ChangeDep, state: StateDep) -> Response:
    """Send a delivery again now, with the same webhook-id and a fresh retry schedule."""
    found = None
    if delivery_id.isdigit() and len(delivery_id) < 19:
        async with state.sessions() as session, session.begin():
            found = await resend(session, delivery_id=int(delivery_id))
    if found is None:
        return await _page(request, state, login, error=f"no delivery {delivery_id}", status_code=404)
    logger.info("console: %s resent webhook delivery %s", login.email, found.id)
    _wake_dispatcher(request)
    return RedirectResponse(f"/console/webhooks?resent={found.id}", status_code=303)
