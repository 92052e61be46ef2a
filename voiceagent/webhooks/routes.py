"""``/v1/webhooks``: endpoints (register, list, enable/disable, delete, rotate) and the delivery log.

Reading needs the ``webhooks:read`` scope, changing ``webhooks:write`` (``admin`` does all).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status

from voiceagent.api.deps import SessionDep, SettingsDep, require
from voiceagent.api.errors import InvalidRequestError, NotFoundError, error_responses
from voiceagent.errors import WebhookError
from voiceagent.store.apikeys import Scope
from voiceagent.webhooks import deliveries, endpoints
from voiceagent.webhooks.schemas import (
    DeliveryOut,
    DeliveryPage,
    EndpointCreate,
    EndpointCreated,
    EndpointOut,
    EndpointPage,
    EndpointPatch,
    RotatedSecret,
    RotateRequest,
)

__all__ = ["router"]

# 400: a body that is not JSON at all.
router = APIRouter(
    prefix="/v1/webhooks", tags=["webhooks"], responses=error_responses(400, 401, 403, 422, 503)
)
# Ids are BIGINT on Postgres (and SQLite's INTEGER): larger numbers cannot name a row.
DeliveryId = Annotated[int, Path(ge=1, le=2**63 - 1)]
_READ = [require(Scope.WEBHOOKS_READ)]
_WRITE = [require(Scope.WEBHOOKS_WRITE)]
_404 = error_responses(404)


def _wake_dispatcher(request: Request) -> None:
    dispatcher = getattr(request.app.state, "webhooks", None)
    if dispatcher is not None:
        dispatcher.wake()


def _no_nul(value: str, loc: tuple[str, ...]) -> str:
    if "\x00" in value:
        raise InvalidRequestError("text may not contain NUL characters", loc=loc)
    return value


@router.get("/endpoints", response_model=EndpointPage, dependencies=_READ)
async def list_endpoints(
    session: SessionDep, agent: Annotated[str | None, Query(max_length=128)] = None
) -> EndpointPage:
    """Every endpoint, oldest first (with ``agent``: that agent's and the all-agents ones)."""
    rows = await endpoints.list_endpoints(session, agent=agent and _no_nul(agent, ("query", "agent")))
    return EndpointPage(items=[EndpointOut.of(r) for r in rows])


@router.post("/endpoints", response_model=EndpointCreated, status_code=201, dependencies=_WRITE)
async def create_endpoint(body: EndpointCreate, session: SessionDep) -> EndpointCreated:
    """Register an endpoint; the answer holds its signing secret, shown this once."""
    _no_nul(body.description, ("body", "description"))
    if body.agent is not None:
        _no_nul(body.agent, ("body", "agent"))
    try:
        async with session.begin():
            made = await endpoints.create_endpoint(
                session, url=body.url, events=body.events, agent=body.agent, description=body.description
            )
    except WebhookError as exc:
        raise InvalidRequestError(str(exc), loc=("body", "url")) from exc
    return EndpointCreated(**EndpointOut.of(made.endpoint).model_dump(), secret=made.secret)


@router.get("/endpoints/{endpoint_id}", response_model=EndpointOut, dependencies=_READ, responses=_404)
async def get_endpoint(endpoint_id: str, session: SessionDep) -> EndpointOut:
    """One endpoint."""
    row = None if "\x00" in endpoint_id else await endpoints.get_endpoint(session, endpoint_id=endpoint_id)
    if row is None:
        raise NotFoundError(f"no webhook endpoint {endpoint_id!r}")
    return EndpointOut.of(row)


@router.patch(
    "/endpoints/{endpoint_id}",
    response_model=EndpointOut,
    dependencies=_WRITE,
    responses=error_responses(404),
)
async def patch_endpoint(endpoint_id: str, body: EndpointPatch, session: SessionDep) -> EndpointOut:
    """Enable or disable an endpoint (a 410 Gone answer disables one by itself)."""
    row = None
    if "\x00" not in endpoint_id:
        async with session.begin():
            change = endpoints.enable_endpoint if body.enabled else endpoints.disable_endpoint
            row = await change(session, endpoint_id=endpoint_id)
    if row is None:
        raise NotFoundError(f"no webhook endpoint {endpoint_id!r}")
    return EndpointOut.of(row)


@router.delete(
    "/endpoints/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=_WRITE,
    responses=error_responses(404),
)
async def delete_endpoint(endpoint_id: str, session: SessionDep) -> Response:
    """Delete an endpoint and its delivery log."""
    deleted = False
    if "\x00" not in endpoint_id:
        async with session.begin():
            deleted = await endpoints.delete_endpoint(session, endpoint_id=endpoint_id)
    if not deleted:
        raise NotFoundError(f"no webhook endpoint {endpoint_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/endpoints/{endpoint_id}/rotate-secret",
    response_model=RotatedSecret,
    dependencies=_WRITE,
    responses=error_responses(404),
)
async def rotate_secret(
    endpoint_id: str, session: SessionDep, settings: SettingsDep, body: RotateRequest | None = None
) -> RotatedSecret:
    """A new secret; during the overlap window messages carry signatures for the old and new one."""
    overlap_s = (
        settings.webhook_secret_overlap_s if body is None or body.overlap_s is None else body.overlap_s
    )
    secret = None
    if "\x00" not in endpoint_id:
        async with session.begin():
            secret = await endpoints.rotate_secret(session, endpoint_id=endpoint_id, overlap_s=overlap_s)
            row = await endpoints.get_endpoint(session, endpoint_id=endpoint_id)
    if secret is None or row is None:
        raise NotFoundError(f"no webhook endpoint {endpoint_id!r}")
    return RotatedSecret(secret=secret, previous_secret_expires_at=row.previous_secret_expires_at)


@router.get("/deliveries", response_model=DeliveryPage, dependencies=_READ)
async def list_deliveries(
    session: SessionDep,
    endpoint_id: Annotated[str | None, Query(max_length=32)] = None,
    status: Literal["pending", "succeeded", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=deliveries.MAX_PAGE)] = 50,
    before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> DeliveryPage:
    """The delivery log, newest first."""
    if endpoint_id is not None:
        _no_nul(endpoint_id, ("query", "endpoint_id"))
    rows, next_before_id = await deliveries.delivery_page(
        session, endpoint_id=endpoint_id, status=status, limit=limit, before_id=before_id
    )
    return DeliveryPage(items=[DeliveryOut.of(r) for r in rows], next_before_id=next_before_id)


@router.get(
    "/deliveries/{delivery_id}",
    response_model=DeliveryOut,
    dependencies=_READ,
    responses=error_responses(404),
)
async def get_delivery(delivery_id: DeliveryId, session: SessionDep) -> DeliveryOut:
    """One delivery."""
    row = await deliveries.get_delivery(session, delivery_id=delivery_id)
    if row is None:
        raise NotFoundError(f"no webhook delivery {delivery_id}")
    return DeliveryOut.of(row)


@router.post(
    "/deliveries/{delivery_id}/resend",
    response_model=DeliveryOut,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=_WRITE,
    responses=error_responses(404),
)
async def resend(delivery_id: DeliveryId, session: SessionDep, request: Request) -> DeliveryOut:
    """Send the delivery again now (same ``webhook-id``), with a fresh retry schedule."""
    async with session.begin():
        row = await deliveries.resend(session, delivery_id=delivery_id)
    if row is None:
        raise NotFoundError(f"no webhook delivery {delivery_id}")
    _wake_dispatcher(request)
    return DeliveryOut.of(row)
