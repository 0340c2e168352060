"""The one place where exceptions become HTTP responses.

Every error response has the body ``{"error": {"code", "message"[, "details"]}}``.
Our own errors carry their status and code; Litestar's (unknown route, bad
method, validation) are translated to the same shape; anything else is a bug:
logged with its traceback, answered 500 with no internals.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from lakehouse.errors import LakehouseError

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


def _lakehouse_error(_: Request[Any, Any, Any], exc: LakehouseError) -> Response[Any]:
    if exc.status_code >= 500:
        log.error("request failed: %s", exc.message, extra={"code": exc.code})
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
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error; see the server log")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    LakehouseError: _lakehouse_error,
    HTTPException: _http_exception,
    Exception: _unhandled,
}
