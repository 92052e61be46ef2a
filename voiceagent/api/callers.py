"""``/v1/callers``: what session memory keeps about a caller, for privacy requests."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response, status

from voiceagent.api.deps import MemoryDep, PrincipalDep, require
from voiceagent.api.errors import error_responses
from voiceagent.store.apikeys import Scope

__all__ = ["router"]

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/callers", tags=["callers"], responses=error_responses(401, 403, 422, 503))


@router.delete(
    "/{caller_id}/memory",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    dependencies=[require(Scope.MEMORY_DELETE)],
)
async def forget_caller(caller_id: str, memory: MemoryDep, principal: PrincipalDep) -> Response:
    """Delete everything session memory keeps about the caller; 204 whether or not it knew them."""
    await memory.forget_caller(caller_id)
    # An audit line for privacy requests: who asked, not whom (the caller id is personal data).
    logger.info("caller memory forgotten", extra={"api_key_id": principal.key_id})
    return Response(status_code=status.HTTP_204_NO_CONTENT)
