"""Bearer-token authentication of WebSocket clients, in the three places Realtime clients put it.

Server SDKs send ``Authorization: Bearer <token>``; browsers cannot set headers on a WebSocket, so
the Realtime API also takes the token as a subprotocol ``openai-insecure-api-key.<token>``; some
clients put it in the query string (``api_key=`` or ``token=``).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs, urlsplit

__all__ = ["SUBPROTOCOL_KEY_PREFIX", "presented_tokens", "token_ok"]

SUBPROTOCOL_KEY_PREFIX = "openai-insecure-api-key."


def presented_tokens(path: str, headers: Mapping[str, str], subprotocols: Iterable[str]) -> list[str]:
    """Every token the request carries, wherever it carries it."""
    tokens: list[str] = []
    auth = headers.get("Authorization") or headers.get("authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        tokens.append(value.strip())
    tokens.extend(
        p[len(SUBPROTOCOL_KEY_PREFIX) :] for p in subprotocols if p.startswith(SUBPROTOCOL_KEY_PREFIX)
    )
    query = parse_qs(urlsplit(path).query)
    tokens.extend(query.get("api_key", []) + query.get("token", []))
    return tokens


def token_ok(expected: str | None, presented: list[str]) -> bool:
    """True if no token is required, or one presented matches (compared in constant time)."""
    if expected is None:
        return True
    want = expected.encode()
    return any(hmac.compare_digest(want, t.encode()) for t in presented)
