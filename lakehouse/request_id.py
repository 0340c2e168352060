"""ASGI middleware: a request id per request, in the logs and the response."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from litestar.types import ASGIApp

from lakehouse.logs import request_id_var

log = logging.getLogger("lakehouse.access")

HEADER = b"x-request-id"
# A client-supplied id is echoed only when it is short and printable.
_VALID_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
_QUIET_PATHS = frozenset({"/health"})


class RequestIdMiddleware:
    """Accept ``X-Request-ID`` (or make one), echo it, log one access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = dict(scope["headers"]).get(HEADER, b"")
        request_id = supplied.decode() if _VALID_ID.match(supplied) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 0
        # Read now: a mounted app (/mcp) sees, and may leave, its own path in the scope.
        path = scope["path"]

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            level = logging.DEBUG if path in _QUIET_PATHS else logging.INFO
            log.log(
                level,
                "%s %s %s",
                scope["method"],
                path,
                status,
                extra={
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )
            request_id_var.reset(token)


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    middleware: Any = RequestIdMiddleware(app)
    return middleware  # type: ignore[no-any-return]  # an ASGI callable, typed loosely
