"""Domain errors, the one table that maps them to HTTP, and the one JSON error shape.

Domain code raises subclasses of :class:`AppError`; they know nothing about HTTP. Every
error leaves the API as ``{"code", "message", "details", "request_id"}``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger(__name__)


class AppError(Exception):
    """Base of every error the API reports on purpose."""

    code: ClassVar[str] = "error"
    message: ClassVar[str] = "The request failed."
    # True for the rare error whose transaction must still commit (e.g. a security
    # revocation made while refusing the request); see db.get_session.
    keep_changes: ClassVar[bool] = False

    def __init__(self, message: str | None = None, *, details: Any = None) -> None:
        super().__init__(message or self.message)
        self.detail_message = message or self.message
        self.details = details


class InvalidInput(AppError):
    code = "invalid_input"
    message = "The request is not valid."


class Unauthorized(AppError):
    code = "not_authenticated"
    message = "Authentication is required."


class Forbidden(AppError):
    code = "forbidden"
    message = "You are not allowed to do this."


class NotFound(AppError):
    code = "not_found"
    message = "Not found."


class Conflict(AppError):
    code = "conflict"
    message = "The request conflicts with the current state."


class PayloadTooLarge(AppError):
    code = "payload_too_large"
    message = "The request body is too large."


class UnsupportedMediaType(AppError):
    code = "unsupported_media_type"
    message = "Send the body as application/json."


class RateLimited(AppError):
    code = "rate_limited"
    message = "Too many requests; try again later."

    def __init__(self, retry_after: int) -> None:
        super().__init__(details={"retry_after": retry_after})
        self.retry_after = retry_after


class ServiceUnavailable(AppError):
    code = "service_unavailable"
    message = "A dependency of the service is unavailable."


class DependencyUnavailable(ServiceUnavailable):
    """A service the request needs (Redis) cannot be reached: retry after ``retry_after``."""

    code = "dependency_unavailable"
    message = "A service this request needs is unreachable; retry shortly."

    def __init__(self, dependency: str, retry_after: int = 5) -> None:
        super().__init__(details={"dependency": dependency, "retry_after": retry_after})
        self.retry_after = retry_after


# The one table: error category -> HTTP status. Subclasses inherit their category's status.
STATUS_BY_ERROR: dict[type[AppError], int] = {
    InvalidInput: 422,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    RateLimited: 429,
    ServiceUnavailable: 503,
}


def status_for(error: AppError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


class ErrorBody(BaseModel):
    """The body of every error response."""

    # Every route names this body for its error statuses (``responses``), and FastAPI makes
    # a validator of it for each, in each application, all unused but by the OpenAPI
    # document. Deferred, each is built the first time it is used, if ever.
    model_config = ConfigDict(defer_build=True)

    code: str = Field(description="Stable, machine-readable error code.", examples=["not_found"])
    message: str = Field(description="Human-readable explanation.")
    details: Any = Field(default=None, description="Structured context, when there is any.")
    request_id: str | None = Field(default=None, description="Echo of the X-Request-ID header.")


_DESCRIPTIONS = {
    400: "Bad request",
    401: "Not authenticated, or the token is invalid, expired or revoked",
    403: "Authenticated but not allowed",
    404: "Not found (or not yours)",
    409: "Conflicts with the current state",
    413: "Body too large",
    415: "Unsupported content type",
    422: "Invalid input",
    429: "Rate limited; see Retry-After",
    503: "A dependency is unavailable",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the error statuses a route can return."""
    return {
        status: {"model": ErrorBody, "description": _DESCRIPTIONS.get(status, "Error")}
        for status in statuses
    }


def error_response(
    request: Request, status: int, code: str, message: str, details: Any = None
) -> Response:
    request_id = getattr(request.state, "request_id", None)
    body = ErrorBody(code=code, message=message, details=details, request_id=request_id)
    # Serialised by pydantic in one pass: the JSON a JSONResponse of the JSON-mode dump
    # would write (a float may be written in another notation, e.g. 0.00001 for 1e-05).
    return Response(body.model_dump_json(), status_code=status, media_type="application/json")


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    response = error_response(request, status_for(exc), exc.code, exc.detail_message, exc.details)
    if isinstance(exc, RateLimited | DependencyUnavailable):
        response.headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, Unauthorized):
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _clean_validation_errors(errors: Any) -> list[dict[str, Any]]:
    cleaned = []
    for error in errors:
        cleaned.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
        )
    return cleaned


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(
        request,
        422,
        "validation_error",
        "The request did not pass validation.",
        _clean_validation_errors(exc.errors()),
    )


# As the request middleware names them (a body over the limit found while reading it, too).
_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    401: "not_authenticated",
    413: PayloadTooLarge.code,
    415: UnsupportedMediaType.code,
}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, UnicodeDecodeError):  # FastAPI's 400 for a body not UTF-8
        not_text = {"loc": ["body"], "msg": "The body is not UTF-8 text", "type": "json_invalid"}
        return error_response(
            request, 422, "validation_error", "The request did not pass validation.", [not_text]
        )
    code = _HTTP_CODES.get(exc.status_code, HTTPStatus(exc.status_code).phrase.lower())
    code = code.replace(" ", "_")
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    response = error_response(request, exc.status_code, code, message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _database_error(request: Request, exc: Exception) -> Response:
    """The database could not be reached or stayed locked: tell the client to retry."""
    log.warning("database_unavailable", error=str(exc)[:200])
    response = error_response(
        request, 503, "database_unavailable", "The database is busy or unreachable; retry."
    )
    response.headers["Retry-After"] = "1"
    return response


# Deadlock detected, serialization failure: the transaction may simply be retried.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


async def _database_error_or_crash(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DBAPIError)
    transient = getattr(exc.orig, "sqlstate", None) in TRANSIENT_SQLSTATES
    if transient or exc.connection_invalidated or isinstance(exc.orig, OSError | ConnectionError):
        return await _database_error(request, exc)
    return await _unexpected_error(request, exc)


async def _redis_error(request: Request, exc: Exception) -> Response:
    """Redis is down or unreachable and the request cannot do without it (the denylist:
    a token that cannot be checked is not taken as unrevoked, a logout that cannot be
    recorded is not reported done). The rate limiter does without (ratelimit.py)."""
    log.warning("redis_unavailable", error=str(exc)[:200])
    return await _app_error(request, DependencyUnavailable("redis"))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled_error", exc_info=exc)
    return error_response(request, 500, "internal_error", "An unexpected error occurred.")


def install_error_handlers(app: FastAPI, *, redis: bool) -> None:
    """Every error's answer; Redis's errors too when the app has Redis (redis_client.py
    loads redis-py only then)."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(DBAPIError, _database_error_or_crash)
    if redis:
        from slotwise import redis_client

        app.add_exception_handler(redis_client.error_class(), _redis_error)
    # Starlette answers with this and raises on (the server then drops the connection):
    # RequestContextMiddleware answers a bug first; this is for one outside it.
    app.add_exception_handler(Exception, _unexpected_error)
