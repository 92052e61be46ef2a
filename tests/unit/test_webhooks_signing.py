"""Standard Webhooks signing: what we send verifies with the standardwebhooks library."""

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from voiceagent.errors import WebhookError
from voiceagent.webhooks import new_secret, sign_headers
from voiceagent.webhooks.signing import signature

BODY = '{"data":{"call_id":"c1"},"timestamp":"2026-03-01T09:00:00+00:00","type":"call.ended"}'


def test_secrets_are_whsec_and_32_random_bytes() -> None:
    one, two = new_secret(), new_secret()
    assert one != two
    assert one.startswith("whsec_")
    assert len(base64.b64decode(one.removeprefix("whsec_"))) == 32


def test_signed_headers_verify_with_the_library() -> None:
    secret = new_secret()
    headers = sign_headers([secret], msg_id="call.ended:c1", body=BODY)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers)["type"] == "call.ended"
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace("c1", "c2"), headers)


def test_two_secrets_give_two_space_separated_signatures_each_verifying() -> None:
    old, new = new_secret(), new_secret()
    headers = sign_headers([new, old], msg_id="m1", body=BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)


def test_the_signature_is_hmac_of_id_timestamp_body() -> None:
    # Computed here with hmac, independently of the library.
    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()
    at = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    expected = hmac.new(key, f"m1.{int(at.timestamp())}.{BODY}".encode(), hashlib.sha256).digest()
    got = signature(secret, msg_id="m1", timestamp=at, body=BODY)
    assert got == "v1," + base64.b64encode(expected).decode()
    # The same instant in another zone signs the same.
    other = at.astimezone(timezone(timedelta(hours=5)))
    assert signature(secret, msg_id="m1", timestamp=other, body=BODY) == signature(
        secret, msg_id="m1", timestamp=at, body=BODY
    )


@pytest.mark.parametrize("secret", ["plain", "whsec_", "whsec_!!!notbase64"])
def test_bad_secrets_are_clean_errors(secret: str) -> None:
    with pytest.raises(WebhookError):
        sign_headers([secret], msg_id="m1", body=BODY)


def test_no_secret_is_an_error() -> None:
    with pytest.raises(WebhookError):
        sign_headers([], msg_id="m1", body=BODY)
