"""Add the console to a FastAPI app: routes under /console, static files, auth error pages."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from voiceagent.console.deps import ForbiddenError, LoginRequiredError
from voiceagent.console.pages import agents, auth, calls, keys, metrics, trunks, webhooks
from voiceagent.console.templating import render
from voiceagent.console.throttle import LoginThrottle
from voiceagent.media.live import LiveCallRegistry

__all__ = ["PREFIX", "ROUTERS", "install_console"]

PREFIX = "/console"
ROUTERS = tuple(m.router for m in (auth, calls, metrics, agents, trunks, webhooks, keys))
"""The console's routers, mounted at :data:`PREFIX` (tests walk them to check every route's guard)."""
_STATIC = Path(__file__).parent / "static"


def _wants_page(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


async def _login_required(request: Request, exc: Exception) -> Response:
    if _wants_page(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PREFIX}/login?next={target}", status_code=303)
    return JSONResponse({"code": "unauthenticated", "message": str(exc)}, status_code=401)


async def _forbidden(request: Request, exc: Exception) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        return render(request, "forbidden.html", login=None, message=str(exc), status_code=403)
    return JSONResponse({"code": "forbidden", "message": str(exc)}, status_code=403)


def install_console(app: FastAPI, *, live: LiveCallRegistry) -> None:
    """Serve the console on ``app``; ``live`` is where its live-calls page looks."""
    app.state.console_live = live
    app.state.console_throttle = LoginThrottle()
    for router in ROUTERS:
        app.include_router(router, prefix=PREFIX, include_in_schema=False)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=_STATIC), name="console-static")
    app.add_exception_handler(LoginRequiredError, _login_required)
    app.add_exception_handler(ForbiddenError, _forbidden)
