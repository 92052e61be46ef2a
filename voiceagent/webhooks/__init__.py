"""Signed webhooks: endpoints, the delivery log, and the dispatcher that sends from the outbox.

The Python API (what the console and the REST routes call) is keyword-only async functions over
an ``AsyncSession``; none of them commits, so wrap them in ``async with session.begin():``::

    made = await create_endpoint(session, url="https://...", events=["call.ended"])
    made.secret                                   # whsec_...: shown once
    await list_endpoints(session)                 # every endpoint
    await disable_endpoint(session, endpoint_id=...) / enable_endpoint / delete_endpoint
    await rotate_secret(session, endpoint_id=..., overlap_s=86400)   # the new secret
    await list_deliveries(session, endpoint_id=..., status="failed")  # the log, newest first
    await resend(session, delivery_id=...)        # due again now; then dispatcher.wake()

``voiceagent serve`` runs a :class:`WebhookDispatcher` in the API process (app.state.webhooks).
"""

from voiceagent.webhooks.deliveries import delivery_body, get_delivery, list_deliveries, resend
from voiceagent.webhooks.dispatcher import DispatcherStats, WebhookDispatcher
from voiceagent.webhooks.endpoints import (
    NewEndpoint,
    create_endpoint,
    delete_endpoint,
    disable_endpoint,
    enable_endpoint,
    get_endpoint,
    list_endpoints,
    parse_events,
    rotate_secret,
    secrets_in_use,
)
from voiceagent.webhooks.models import DELIVERY_STATUSES, EVENT_TYPES, WebhookDelivery, WebhookEndpoint
from voiceagent.webhooks.signing import new_secret, sign_headers

__all__ = [
    "DELIVERY_STATUSES",
    "EVENT_TYPES",
    "DispatcherStats",
    "NewEndpoint",
    "WebhookDelivery",
    "WebhookDispatcher",
    "WebhookEndpoint",
    "create_endpoint",
    "delete_endpoint",
    "delivery_body",
    "disable_endpoint",
    "enable_endpoint",
    "get_delivery",
    "get_endpoint",
    "list_deliveries",
    "list_endpoints",
    "new_secret",
    "parse_events",
    "resend",
    "rotate_secret",
    "secrets_in_use",
    "sign_headers",
]
