"""Liveness and readiness probes; no API key needed, nothing about the internals in the answer."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from voiceagent.api.deps import StateDep
from voiceagent.api.schemas import Health

__all__ = ["router"]

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])

_READY_TIMEOUT_S = 2.0


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: the process answers. Never looks at the database, so a DB outage restarts nothing."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(state: StateDep, request: Request) -> Health | JSONResponse:
    """Readiness: the call-log database answers ``SELECT 1`` within 2 s, and the node is not draining."""
    if getattr(request.app.state, "draining", False):
        # SIGTERM: calls in progress go on, new ones must go to another node.
        body = Health(status="unavailable", checks={"drain": "draining"})
        return JSONResponse(body.model_dump(), status_code=503)
    try:
        async with asyncio.timeout(_READY_TIMEOUT_S), state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"; the reason goes to the log
        logger.warning("readiness check failed: %s", exc)
        body = Health(status="unavailable", checks={"database": "unavailable"})
        return JSONResponse(body.model_dump(), status_code=503)
    return Health(status="ok", checks={"database": "ok"})
