"""Optional bearer-token authentication for every route but /health."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import msgspec
from litestar.types import ASGIApp

from lakehouse.http_errors import error_body

OPEN_PATHS = frozenset({"/health", "/"})
"""``/``: the console's first page, a shell with no data (its fragments need the token)."""


class BearerAuthMiddleware:
    """Answers 401 (in the one error shape) unless ``Authorization: Bearer <token>`` matches."""

    def __init__(self, app: ASGIApp, token: str, open_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self._open_prefixes = open_prefixes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope["path"]
        if scope["type"] != "http" or path in OPEN_PATHS or path.startswith(self._open_prefixes):
            await self.app(scope, receive, send)
            return
        supplied = dict(scope["headers"]).get(b"authorization", b"")
        # Constant-time comparison: the time taken says nothing about the token.
        if hmac.compare_digest(supplied, self._expected):
            await self.app(scope, receive, send)
            return
        message = (
            "missing Authorization header: send 'Authorization: Bearer <token>'"
            if not supplied
            else "invalid bearer token"
        )
        body = msgspec.json.encode(error_body("unauthorized", message))
        start: Any = {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="lakehouse"'),
            ],
        }
        await send(start)
        await send({"type": "http.response.body", "body": body})


def bearer_auth(token: str, open_prefixes: tuple[str, ...] = ()) -> Callable[[ASGIApp], ASGIApp]:
    """Wraps an ASGI app (create_app applies it to the outermost handler, so 404s are covered);
    paths under ``open_prefixes`` need no token (the console's pages and assets)."""

    def wrap(app: ASGIApp) -> ASGIApp:
        middleware: Any = BearerAuthMiddleware(app, token, open_prefixes)
        return middleware  # type: ignore[no-any-return]  # an ASGI callable, typed loosely

    return wrap
