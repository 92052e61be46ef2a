"""Webhook endpoints: register, list, enable/disable, delete, rotate secrets. Keyword-only.

None of these commits: run them inside the caller's transaction (``async with session.begin()``),
like :mod:`voiceagent.store.repository`. Unknown ids give ``None``/``False``; bad input raises
:class:`~voiceagent.errors.WebhookError` with a message fit to show a user.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from voiceagent.errors import WebhookError
from voiceagent.store.models import utcnow
from voiceagent.webhooks.models import EVENT_TYPES, WebhookEndpoint
from voiceagent.webhooks.signing import new_secret

__all__ = [
    "NewEndpoint",
    "create_endpoint",
    "delete_endpoint",
    "disable_endpoint",
    "enable_endpoint",
    "get_endpoint",
    "list_endpoints",
    "parse_events",
    "rotate_secret",
    "secrets_in_use",
]

_URL_MAX = 2048


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    """An endpoint just registered: ``secret`` is what its receiver verifies with (shown once)."""

    endpoint: WebhookEndpoint
    secret: str


def parse_events(events: str | Iterable[str]) -> list[str]:
    """Event types from a list or a comma/space-separated string; ``WebhookError`` for unknown ones."""
    items = events.replace(",", " ").split() if isinstance(events, str) else [e.strip() for e in events]
    wanted = list(dict.fromkeys(e for e in items if e))
    if not wanted:
        raise WebhookError(f"name at least one event type: {', '.join(EVENT_TYPES)}")
    unknown = [e for e in wanted if e not in EVENT_TYPES]
    if unknown:
        raise WebhookError(f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}")
    return wanted


def _check_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise WebhookError(f"bad webhook URL {url!r}: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise WebhookError(f"a webhook URL is http(s)://host/...; got {url!r}")
    if len(url) > _URL_MAX or "\x00" in url:
        raise WebhookError(f"a webhook URL has at most {_URL_MAX} characters and no NUL")
    return url


async def create_endpoint(
    session: AsyncSession,
    *,
    url: str,
    events: str | Iterable[str],
    agent: str | None = None,
    description: str = "",
) -> NewEndpoint:
    """Register ``url`` for ``events`` (of ``agent``'s calls only, if given) with a fresh secret."""
    if agent is not None and not 0 < len(agent) <= 128:
        raise WebhookError("an agent name has 1 to 128 characters")
    if len(description) > 256:
        raise WebhookError("a description has at most 256 characters")
    secret = new_secret()
    endpoint = WebhookEndpoint(
        id=f"ep_{secrets.token_hex(8)}",
        url=_check_url(url),
        events=" ".join(parse_events(events)),
        agent=agent,
        description=description,
        secret=secret,
        enabled=True,
    )
    session.add(endpoint)
    await session.flush()
    return NewEndpoint(endpoint=endpoint, secret=secret)


async def list_endpoints(session: AsyncSession, *, agent: str | None = None) -> list[WebhookEndpoint]:
    """Every endpoint in creation order (only ``agent``'s and the all-agents ones, if given)."""
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    if agent is not None:
        query = query.where((WebhookEndpoint.agent == agent) | WebhookEndpoint.agent.is_(None))
    return list((await session.scalars(query)).all())


async def get_endpoint(session: AsyncSession, *, endpoint_id: str) -> WebhookEndpoint | None:
    """One endpoint, or None."""
    return await session.get(WebhookEndpoint, endpoint_id)


async def disable_endpoint(
    session: AsyncSession, *, endpoint_id: str, reason: str = "disabled by an administrator"
) -> WebhookEndpoint | None:
    """Stop delivering to the endpoint; its pending deliveries wait until it is enabled again."""
    endpoint = await get_endpoint(session, endpoint_id=endpoint_id)
    if endpoint is not None:
        endpoint.enabled = False
        endpoint.disabled_reason = reason[:256]
        await session.flush()
    return endpoint


async def enable_endpoint(session: AsyncSession, *, endpoint_id: str) -> WebhookEndpoint | None:
    """Deliver to the endpoint again (pending deliveries resume where their schedule stood)."""
    endpoint = await get_endpoint(session, endpoint_id=endpoint_id)
    if endpoint is not None:
        endpoint.enabled = True
        endpoint.disabled_reason = None
        await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, *, endpoint_id: str) -> bool:
    """Delete the endpoint and its delivery log; False if there is no such endpoint."""
    endpoint = await get_endpoint(session, endpoint_id=endpoint_id)
    if endpoint is None:
        return False
    await session.delete(endpoint)
    await session.flush()
    return True


async def rotate_secret(
    session: AsyncSession, *, endpoint_id: str, overlap_s: float, now: datetime | None = None
) -> str | None:
    """Give the endpoint a new secret and return it; the old one also signs for ``overlap_s``."""
    endpoint = await get_endpoint(session, endpoint_id=endpoint_id)
    if endpoint is None:
        return None
    if overlap_s < 0:
        raise WebhookError("the overlap window cannot be negative")
    at = now or utcnow()
    endpoint.previous_secret = endpoint.secret if overlap_s > 0 else None
    endpoint.previous_secret_expires_at = at + timedelta(seconds=overlap_s) if overlap_s > 0 else None
    endpoint.secret = new_secret()
    await session.flush()
    return endpoint.secret


def secrets_in_use(endpoint: WebhookEndpoint, *, now: datetime | None = None) -> list[str]:
    """The secrets a message to ``endpoint`` is signed with now: the current one, and the previous
    one while its overlap window lasts."""
    at = now or utcnow()
    found = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and at < expires:
        found.append(endpoint.previous_secret)
    return found
