"""Jinja2 templates for the console, with the filters the pages share (times, durations, ms)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from voiceagent.console.admins import LoggedIn

__all__ = ["NAV", "render"]

_HERE = Path(__file__).parent
NAV = (
    ("live", "Live calls", "/console/live"),
    ("calls", "History", "/console/calls"),
    ("metrics", "Metrics", "/console/metrics"),
    ("agents", "Agents", "/console/agents"),
    ("trunks", "Trunks", "/console/trunks"),
    ("webhooks", "Webhooks", "/console/webhooks"),
    ("keys", "API keys", "/console/keys"),
)


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes}:{seconds:02d}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


# Pages use only their own script, stylesheet and recordings: a strict policy costs nothing and
# blunts an injection that escaping missed. Framing is refused (clickjacking on the hang-up button).
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self';"
        " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

_templates = Jinja2Templates(directory=_HERE / "templates")
_templates.env.filters.update(when=_when, seconds=_seconds, ms=_ms)


def render(
    request: Request, name: str, *, login: LoggedIn | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A page, with the navigation, the login and its CSRF token in the context."""
    return _templates.TemplateResponse(
        request,
        name,
        {"login": login, "nav": NAV, "csrf": login.csrf_token if login else "", **context},
        status_code=status_code,
        headers=_PAGE_HEADERS,
    )
