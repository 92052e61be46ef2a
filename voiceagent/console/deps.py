"""Who is logged in, CSRF checks and roles, as FastAPI dependencies of the console's routes.

    ConsoleAuthError (voiceagent.errors)
    ├── LoginRequiredError   no valid session cookie: pages redirect to the login form, fetches get 401
    └── ForbiddenError       403: a viewer asking to change something, or a POST without the CSRF token

Every POST needs the session's CSRF token, in the ``csrf_token`` form field or the
``X-CSRF-Token`` header (fetch). SameSite=Lax already keeps the cookie off cross-site POSTs in
current browsers; the token is what protects older ones and same-site attackers.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from voiceagent.api.deps import StateDep
from voiceagent.console.admins import LoggedIn, find_session
from voiceagent.errors import ConsoleAuthError
from voiceagent.media.live import LiveCallRegistry

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "ChangeDep",
    "ForbiddenError",
    "LiveDep",
    "LoginDep",
    "LoginRequiredError",
    "csrf_matches",
    "read_csrf",
]

SESSION_COOKIE = "va_console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class LoginRequiredError(ConsoleAuthError):
    """No valid console session."""


class ForbiddenError(ConsoleAuthError):
    """Logged in, but not allowed to do this (viewer role, or no CSRF token)."""


async def current_login(request: Request, state: StateDep) -> LoggedIn:
    """The logged-in admin (from the session cookie), or :class:`LoginRequiredError`."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequiredError("log in to use the console")
    async with state.sessions() as session:
        login = await find_session(session, token=token)
    if login is None:
        raise LoginRequiredError("your console session has expired; log in again")
    return login


LoginDep = Annotated[LoggedIn, Depends(current_login)]


async def read_csrf(request: Request) -> str | None:
    """The CSRF token the request carries (header first, then the form field)."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)  # starlette caches the form for the route
        sent = value if isinstance(value, str) else None
    return sent


def csrf_matches(sent: str | None, expected: str) -> bool:
    return sent is not None and hmac.compare_digest(sent.encode(), expected.encode())


async def may_change(request: Request, login: LoginDep) -> LoggedIn:
    """An admin-role login whose request carries the session's CSRF token; else 403."""
    if not csrf_matches(await read_csrf(request), login.csrf_token):
        raise ForbiddenError("missing or wrong CSRF token: reload the page and try again")
    if not login.can_change:
        raise ForbiddenError("viewers can look but not change anything")
    return login


ChangeDep = Annotated[LoggedIn, Depends(may_change)]


def get_live(request: Request) -> LiveCallRegistry:
    live: LiveCallRegistry = request.app.state.console_live
    return live


LiveDep = Annotated[LiveCallRegistry, Depends(get_live)]
