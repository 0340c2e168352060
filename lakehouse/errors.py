"""The one error hierarchy every module raises.

Each class carries its HTTP status and a stable machine-readable ``code``;
``lakehouse.http_errors`` turns any of them into the one JSON shape
``{"error": {"code": ..., "message": ..., "details": ...}}``. Nothing here
imports Litestar, so domain code stays framework-free.

    LakehouseError (500 internal_error)
    ├── BadRequest (400 bad_request)
    │   └── UploadIncomplete (400 upload_incomplete)
    ├── Unauthorized (401 unauthorized)
    ├── Forbidden (403 forbidden)
    ├── NotFound (404 not_found)
    ├── RequestTimeout (408 timeout)
    ├── Conflict (409 conflict)
    ├── PayloadTooLarge (413 payload_too_large)
    ├── UnsupportedMediaType (415 unsupported_media_type)
    └── ServiceBusy (503 busy, Retry-After)

Any class may set ``retry_after_seconds``: its responses then carry ``Retry-After``,
telling the client the failure is expected to pass (busy, storage outage).

Modules subclass these with their own ``code`` (``invalid_key``,
``schema_conflict`` ...), so callers can catch either the broad kind or the
specific error.
"""

from __future__ import annotations

from typing import Any


class LakehouseError(Exception):
    """Base of every error the service reports to a client."""

    status_code: int = 500
    code: str = "internal_error"
    retry_after_seconds: int | None = None
    """When set, the response says ``Retry-After``; the raiser may pass its own."""

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if retry_after_seconds is not None:
            self.retry_after_seconds = retry_after_seconds
        self.headers = dict(headers or {})
        if self.retry_after_seconds is not None:
            self.headers.setdefault("Retry-After", str(self.retry_after_seconds))


class BadRequest(LakehouseError):
    status_code = 400
    code = "bad_request"


class UploadIncomplete(BadRequest):
    """The client closed the connection mid-body; nothing was stored."""

    code = "upload_incomplete"


class Unauthorized(LakehouseError):
    status_code = 401
    code = "unauthorized"


class Forbidden(LakehouseError):
    status_code = 403
    code = "forbidden"


class NotFound(LakehouseError):
    status_code = 404
    code = "not_found"


class RequestTimeout(LakehouseError):
    status_code = 408
    code = "timeout"


class Conflict(LakehouseError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(LakehouseError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(LakehouseError):
    status_code = 415
    code = "unsupported_media_type"


class ServiceBusy(LakehouseError):
    """Too many concurrent requests of one kind; the client should retry."""

    status_code = 503
    code = "busy"
    retry_after_seconds: int | None = 5
