"""The API's errors: one JSON shape for every failure, and the status code of each error type.

    VoiceAgentError                      (voiceagent.errors)
    └── ApiError                         an error with an HTTP status of its own
        ├── AuthenticationError   401    no API key, or one that is unknown or revoked
        ├── PermissionDeniedError 403    a valid key without the scope the route needs
        ├── NotFoundError         404    no such call, recording or agent
        └── InvalidRequestError   422    a parameter that parses but cannot be used (a bad cursor)

Errors from the rest of voiceagent map by type (:data:`STATUS_BY_ERROR`); anything unexpected is a
500 whose body says nothing about the internals.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from voiceagent.errors import (
    AgentDefinitionError,
    ConfigError,
    MemoryStoreError,
    StoreError,
    VoiceAgentError,
)
from voiceagent.store.agents_repo import AgentNameTakenError

__all__ = [
    "STATUS_BY_ERROR",
    "ApiError",
    "AuthenticationError",
    "ErrorResponse",
    "FieldError",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "error_responses",
    "install_error_handlers",
]

logger = logging.getLogger(__name__)


class ApiError(VoiceAgentError):
    """An error that carries its own HTTP status and machine-readable code."""

    status_code = 500
    code = "internal_error"


class AuthenticationError(ApiError):
    """No API key, or one that is unknown or revoked."""

    status_code = 401
    code = "unauthenticated"


class PermissionDeniedError(ApiError):
    """A valid API key that lacks the scope the route needs."""

    status_code = 403
    code = "forbidden"


class NotFoundError(ApiError):
    """No such call, recording or agent."""

    status_code = 404
    code = "not_found"


class InvalidRequestError(ApiError):
    """A parameter that has the right type but cannot be used; ``loc`` names it."""

    status_code = 422
    code = "validation_error"

    def __init__(self, message: str, *, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.loc = loc


# Most specific first: the first isinstance match wins.
STATUS_BY_ERROR: tuple[tuple[type[VoiceAgentError], int, str], ...] = (
    (AgentNameTakenError, 409, "conflict"),
    (AgentDefinitionError, 422, "validation_error"),
    (StoreError, 503, "store_unavailable"),
    (MemoryStoreError, 503, "memory_unavailable"),
    (ConfigError, 500, "internal_error"),
)


class FieldError(BaseModel):
    """One problem with one part of the request."""

    loc: list[str | int] = Field(description='Where: e.g. ["body", "intents", 0, "answer"].')
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every error response has this shape."""

    code: str = Field(description="Stable, machine-readable: not_found, validation_error, ...")
    message: str = Field(description="For people; may change between versions.")
    details: list[FieldError] = Field(default_factory=list, description="Per-field problems (422).")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=error_responses(401, 403)`` documents those statuses with :class:`ErrorResponse`."""
    return {s: {"model": ErrorResponse, "description": HTTPStatus(s).phrase} for s in statuses}


_CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


def _reply(
    status: int,
    code: str,
    message: str,
    details: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(code=code, message=message, details=details or [])
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def _field_errors(errors: Any) -> list[FieldError]:
    # Only loc, msg and type: pydantic's ctx may hold exception objects, and input echoes the body.
    return [
        FieldError(
            loc=[p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
            msg=str(e.get("msg", "")).removeprefix("Value error, "),
            type=str(e.get("type", "value_error")),
        )
        for e in errors
    ]


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = _field_errors(exc.errors())
    first = details[0] if details else None
    message = f"{'.'.join(map(str, first.loc))}: {first.msg}" if first else "invalid request"
    return _reply(422, "validation_error", message, details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _CODE_BY_STATUS.get(exc.status_code, "error" if exc.status_code < 500 else "internal_error")
    return _reply(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))


async def _voiceagent_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, InvalidRequestError):
        detail = FieldError(loc=list(exc.loc), msg=str(exc), type="value_error")
        return _reply(422, exc.code, str(exc), [detail])
    if isinstance(exc, ApiError):
        return _reply(exc.status_code, exc.code, str(exc))
    status, code = next(
        ((s, c) for error_type, s, c in STATUS_BY_ERROR if isinstance(exc, error_type)),
        (500, "internal_error"),
    )
    if status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
        # A store error's message names the database (without password); fine for an operator, but
        # an API client gets only the kind of failure.
        message = {503: "a backing service is unavailable, try again"}.get(status, "internal error")
        return _reply(status, code, message)
    return _reply(status, code, str(exc))


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    logger.error("%s %s: database unavailable: %s", request.method, request.url.path, exc)
    return _reply(503, "store_unavailable", "the call log database is unavailable, try again")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette's outermost middleware calls this, then re-raises so that the server logs the bug.
    return _reply(500, "internal_error", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    """Make every error, ours or the framework's, answer with :class:`ErrorResponse`."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(VoiceAgentError, _voiceagent_error)
    # Connection-level failures only: a wrong query is a bug and should stay a 500.
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(InterfaceError, _database_down)
    app.add_exception_handler(ConnectionError, _database_down)
    app.add_exception_handler(Exception, _unexpected)
