"""The delivery log: list deliveries, look one up, send one again. Keyword-only; none commits."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from voiceagent.errors import WebhookError
from voiceagent.store.models import WebhookOutbox, utcnow
from voiceagent.webhooks.models import DELIVERY_STATUSES, WebhookDelivery
from voiceagent.webhooks.queue import event_body

__all__ = ["MAX_PAGE", "delivery_body", "delivery_page", "get_delivery", "list_deliveries", "resend"]

MAX_PAGE = 500


async def list_deliveries(
    session: AsyncSession,
    *,
    endpoint_id: str | None = None,
    status: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[WebhookDelivery]:
    """Deliveries newest first (of one endpoint, in one status, if given); page with ``before_id``."""
    rows, _ = await delivery_page(
        session, endpoint_id=endpoint_id, status=status, limit=limit, before_id=before_id
    )
    return rows


async def delivery_page(
    session: AsyncSession,
    *,
    endpoint_id: str | None = None,
    status: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> tuple[list[WebhookDelivery], int | None]:
    """One page of :func:`list_deliveries`, and the ``before_id`` of the next (None on the last)."""
    if not 1 <= limit <= MAX_PAGE:
        raise WebhookError(f"limit must be in 1..{MAX_PAGE}, got {limit}")
    if status is not None and status not in DELIVERY_STATUSES:
        raise WebhookError(f"status is one of {', '.join(DELIVERY_STATUSES)}; got {status!r}")
    # One row more than asked says whether there is a next page.
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit + 1)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if before_id is not None:
        query = query.where(WebhookDelivery.id < before_id)
    rows = list((await session.scalars(query)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more else None)


async def get_delivery(session: AsyncSession, *, delivery_id: int) -> WebhookDelivery | None:
    """One delivery, or None."""
    return await session.get(WebhookDelivery, delivery_id)


async def delivery_body(session: AsyncSession, *, delivery_id: int) -> str | None:
    """The exact JSON body the delivery sends (for a console's detail view), or None."""
    delivery = await get_delivery(session, delivery_id=delivery_id)
    if delivery is None:
        return None
    event = await session.get_one(WebhookOutbox, delivery.outbox_id)
    return event_body(event.event_type, event.created_at, event.payload)


async def resend(session: AsyncSession, *, delivery_id: int) -> WebhookDelivery | None:
    """Queue the delivery again now, whatever its state, with a fresh retry schedule.

    The message keeps its ``webhook-id``, so a receiver that already has it can drop the copy.
    A disabled endpoint's delivery waits until the endpoint is enabled again.
    """
    delivery = await get_delivery(session, delivery_id=delivery_id)
    if delivery is None:
        return None
    delivery.status = "pending"
    delivery.retry_step = 0
    delivery.next_attempt_at = utcnow()
    await session.flush()
    return delivery
