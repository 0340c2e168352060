"""Security headers on every response (ADR 0012).

The console gets a strict Content-Security-Policy: scripts, styles and connections only
from this server, no inline script or style, no eval, no framing. The docs page
(Litestar's Redoc page starts Redoc with an inline script) may run inline script but
still load and connect nowhere else. Everything else (JSON, CSV, Parquet...) gets a
policy that allows nothing, so a result opened in a browser can never run as a page.
"""

from __future__ import annotations

from typing import Any

from litestar.types import ASGIApp

CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"


def policy_for(path: str) -> str:
    if path == "/" or path.startswith(("/console/", "/ui/")):
        return CONSOLE_CSP
    if path == "/docs" or path.startswith("/docs/"):
        return DOCS_CSP
    return API_CSP


def security_headers(app: ASGIApp) -> ASGIApp:
    """Wraps an ASGI app; create_app applies it outermost, so 401s and 404s have them too."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        policy = policy_for(scope["path"]).encode()

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"content-security-policy", policy),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped
