"""Standard Webhooks signatures: secrets ``whsec_<base64>`` and the three ``webhook-*`` headers.

Signing is the ``standardwebhooks`` library's own ``Webhook.sign``, so what we send is by
construction what every Standard Webhooks verifier accepts. During a secret rotation's overlap
window a message carries one signature per secret, space-separated, as the spec allows: receivers
that still hold the old secret and ones that already hold the new one both verify.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from voiceagent.errors import WebhookError

__all__ = ["SECRET_PREFIX", "new_secret", "sign_headers", "signature"]

SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 32  # the spec asks for 24 to 64 random bytes


def new_secret() -> str:
    """A fresh random signing secret, ``whsec_`` and 32 bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def signature(secret: str, *, msg_id: str, timestamp: datetime, body: str) -> str:
    """``v1,<base64 HMAC-SHA256 of "msg_id.timestamp.body">`` under ``secret``."""
    if not secret.startswith(SECRET_PREFIX):
        raise WebhookError("a webhook secret starts with 'whsec_'")
    try:
        signer = Webhook(secret)
    except (binascii.Error, ValueError, EmptyWebhookSecretError) as exc:
        raise WebhookError(f"bad webhook secret: {exc}") from exc
    # The library reads the timestamp's fields as UTC, so hand it UTC.
    return signer.sign(msg_id=msg_id, timestamp=timestamp.astimezone(UTC), data=body)


def sign_headers(
    secrets_in_use: Sequence[str], *, msg_id: str, body: str, timestamp: datetime | None = None
) -> dict[str, str]:
    """The ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers for ``body``."""
    if not secrets_in_use:
        raise WebhookError("no secret to sign with")
    at = (timestamp or datetime.now(UTC)).astimezone(UTC)
    signatures = " ".join(signature(s, msg_id=msg_id, timestamp=at, body=body) for s in secrets_in_use)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }
