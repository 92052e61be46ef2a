"""Webhook administration from outside a running app: what ``voiceagent webhooks ...`` calls.

Each function opens the call-log database from settings, does one thing in one transaction and
closes the engine again; database failures become :class:`~voiceagent.errors.StoreError`.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from sqlalchemy.ext.asyncio import AsyncSession

from voiceagent.config import Settings
from voiceagent.store.engine import one_transaction
from voiceagent.webhooks import deliveries, endpoints
from voiceagent.webhooks.endpoints import NewEndpoint
from voiceagent.webhooks.models import WebhookDelivery, WebhookEndpoint

__all__ = ["add_endpoint", "delivery_log", "endpoint_list", "resend_delivery", "rotate_endpoint_secret"]


def _transaction(settings: Settings) -> AbstractAsyncContextManager[AsyncSession]:
    return one_transaction(settings.database_url, "webhooks")


async def add_endpoint(
    settings: Settings, *, url: str, events: str, agent: str | None = None, description: str = ""
) -> NewEndpoint:
    """Register an endpoint; the returned ``secret`` is shown to the user once."""
    async with _transaction(settings) as session:
        return await endpoints.create_endpoint(
            session, url=url, events=events, agent=agent, description=description
        )


async def endpoint_list(settings: Settings) -> list[WebhookEndpoint]:
    """Every endpoint (no secrets are printed from these)."""
    async with _transaction(settings) as session:
        return await endpoints.list_endpoints(session)


async def delivery_log(
    settings: Settings, *, endpoint_id: str | None = None, status: str | None = None, limit: int = 50
) -> list[WebhookDelivery]:
    """The newest deliveries."""
    async with _transaction(settings) as session:
        return await deliveries.list_deliveries(session, endpoint_id=endpoint_id, status=status, limit=limit)


async def resend_delivery(settings: Settings, *, delivery_id: int) -> WebhookDelivery | None:
    """Queue a delivery again; a running dispatcher picks it up at its next poll."""
    async with _transaction(settings) as session:
        return await deliveries.resend(session, delivery_id=delivery_id)


async def rotate_endpoint_secret(
    settings: Settings, *, endpoint_id: str, overlap_s: float | None = None
) -> str | None:
    """A new secret for the endpoint (None if unknown); the old one signs too for the overlap."""
    overlap = settings.webhook_secret_overlap_s if overlap_s is None else overlap_s
    async with _transaction(settings) as session:
        return await endpoints.rotate_secret(session, endpoint_id=endpoint_id, overlap_s=overlap)
