"""The one place where exceptions become HTTP responses.

Every error response has the body ``{"error": {"code", "message"[, "details"]}}``.
Our own errors carry their status and code; Litestar's (unknown route, bad
method, validation) are translated to the same shape; anything else is a bug:
logged with its traceback, answered 500 with no internals.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.types import ExceptionHandlersMap

from lakehouse.errors import LakehouseError, ServiceBusy

log = logging.getLogger("lakehouse.http")

# Litestar's own HTTP exceptions, by status, get these stable codes.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    503: "busy",
}


class ErrorDetail(msgspec.Struct, frozen=True):
    """What went wrong, for programs (``code``) and for people (``message``)."""

    code: str
    """Stable and machine-readable: ``invalid_key``, ``not_found``, ``busy`` ..."""
    message: str
    """One sentence for a person, saying what to change where that is possible."""
    details: Any = None
    """Optional structured context (a limit, the offending column ...); absent if none."""


class ErrorResponse(msgspec.Struct, frozen=True):
    """The body of every error response, whatever the route or the status."""

    error: ErrorDetail


# What each error status means on this API, for the OpenAPI schema.
_STATUS_DESCRIPTIONS = {
    400: "Bad request: an invalid parameter, name, key or body",
    401: "Missing or wrong bearer token (only when [server] auth_token is set)",
    403: "Forbidden: the statement is not allowed",
    404: "Not found",
    408: "The query ran past its time limit",
    409: "Conflict with the current state (e.g. another schema for the dataset)",
    413: "The body is larger than the configured limit",
    415: "Unsupported Content-Type",
    502: "The object store refused the server's credentials or configuration",
    503: "Busy, or the object store is throttling or unavailable; retry after Retry-After seconds",
}


def error_responses(*statuses: int, auth: bool = True) -> dict[int, ResponseSpec]:
    """The ``responses=`` of a route handler: each status documented with the one error body.

    ``auth`` adds the 401 every route but /health answers when a token is configured.
    """
    wanted = sorted({*statuses, 401} if auth else set(statuses))
    return {
        status: ResponseSpec(
            data_container=ErrorResponse,
            description=_STATUS_DESCRIPTIONS[status],
            generate_examples=False,
        )
        for status in wanted
    }


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response[dict[str, Any]]:
    return Response(
        content=error_body(code, message, details),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def log_lakehouse_error(exc: LakehouseError) -> None:
    """What an error answered to a client leaves in the log."""
    if isinstance(exc, ServiceBusy):
        log.info("refused, busy: %s", exc.message, extra={"code": exc.code})
    elif exc.status_code >= 500:
        # A failure of ours or of a backend: keep the cause (DuckDB's, botocore's) in the log.
        log.error("request failed: %s", exc.message, extra={"code": exc.code}, exc_info=exc)


def log_unhandled(method: str, path: str, exc: Exception) -> None:
    """A bug: its traceback goes to the log, never to the client."""
    log.error("unhandled error on %s %s", method, path, exc_info=exc)


INTERNAL_ERROR = "internal server error; see the server log"


def _lakehouse_error(_: Request[Any, Any, Any], exc: LakehouseError) -> Response[Any]:
    log_lakehouse_error(exc)
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if status >= 500:
        return _unhandled(request, exc)
    if isinstance(exc, ValidationException):
        return error_response(400, "bad_request", exc.detail, exc.extra or None)
    message = exc.detail
    if status == 404:
        message = f"no route for {request.method} {request.url.path}"
    return error_response(status, _HTTP_CODES.get(status, "http_error"), message, None, exc.headers)


def _unhandled(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log_unhandled(request.method, request.url.path, exc)
    return error_response(500, "internal_error", INTERNAL_ERROR)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    LakehouseError: _lakehouse_error,
    HTTPException: _http_exception,
    Exception: _unhandled,
}
