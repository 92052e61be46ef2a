"""Log in and out. The login form has a CSRF token of its own (a double-submit cookie), since
there is no session yet to hold one; it stops another site logging a browser in as someone else."""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from voiceagent.api.deps import StateDep
from voiceagent.console.admins import authenticate_admin, end_session, start_session
from voiceagent.console.deps import SESSION_COOKIE, ForbiddenError, LoginDep, csrf_matches, read_csrf
from voiceagent.console.templating import render
from voiceagent.console.throttle import LoginThrottle

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter()

_LOGIN_CSRF_COOKIE = "va_login_csrf"


def _secure(request: Request) -> bool:
    # uvicorn's proxy_headers makes the scheme the client's when behind a TLS-terminating proxy.
    return request.url.scheme == "https"


def _safe_next(target: str | None) -> str:
    # Only paths inside the console: an open redirect would make the login page a phishing aid.
    if target and target.startswith("/console/") and not target.startswith("/console//"):
        return target
    return "/console/live"


def _login_page(request: Request, *, error: str | None = None, status_code: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        login=None,
        login_csrf=token,
        error=error,
        next=_safe_next(request.query_params.get("next")),
        status_code=status_code,
    )
    response.set_cookie(
        _LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path="/console/login",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    """The login form."""
    return _login_page(request)


@router.post("/login")
async def login(
    request: Request,
    state: StateDep,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=512)] = "",
) -> Response:
    """Check the password and start a session; the same message for any failure."""
    expected = request.cookies.get(_LOGIN_CSRF_COOKIE)
    if expected is None or not csrf_matches(await read_csrf(request), expected):
        raise ForbiddenError("the login form expired; reload the page and try again")
    throttle: LoginThrottle = request.app.state.console_throttle
    address = request.client.host if request.client else "unknown"
    wait_s = throttle.retry_after_s(address, email)
    if wait_s > 0:
        logger.warning("console login throttled for %s from %s", email, address)
        message = f"Too many failed logins; try again in {int(wait_s // 60) + 1} minutes."
        response = _login_page(request, error=message, status_code=429)
        response.headers["Retry-After"] = str(int(wait_s) + 1)
        return response
    async with state.sessions() as session, session.begin():
        admin = await authenticate_admin(session, email=email, password=password)
        if admin is None:
            throttle.failed(address, email)
            logger.info("console login failed for %s from %s", email, address)
            return _login_page(request, error="Wrong email or password.", status_code=401)
        token, _ = await start_session(session, admin=admin, ttl_s=state.settings.console_session_ttl_s)
    throttle.succeeded(address, email)
    logger.info("console login: %s (%s) from %s", admin.email, admin.role, address)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(state.settings.console_session_ttl_s),
        path="/",  # /console pages and the recordings they play
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    response.delete_cookie(_LOGIN_CSRF_COOKIE, path="/console/login")
    return response


@router.post("/logout")
async def logout(request: Request, state: StateDep, login: LoginDep) -> Response:
    """End the session on the server and drop the cookie (any role; needs the CSRF token)."""
    if not csrf_matches(await read_csrf(request), login.csrf_token):
        raise ForbiddenError("missing or wrong CSRF token")
    async with state.sessions() as session, session.begin():
        await end_session(session, token=request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
