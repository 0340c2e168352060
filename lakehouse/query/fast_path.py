"""``POST /v1/sql`` (and ``/sql``) answered beside Litestar, not through it (ADR 0017).

Routing, dependency injection, the signature model and the response objects
cost more per request than a small query itself. So the app's outermost
handler sends the plain case here: a POST to one of the SQL paths with at most
``format`` and ``timeout`` (a plain number) in its query string and a body
within the app's size limit that decodes as ``SqlRequest``. It is wrapped by
the same request-id, access-log, auth and close-if-unread layers as every
route, and answers exactly as ``routes.run_sql`` does: the same bodies,
headers and error shape (``lakehouse.http_errors``). Anything else (a bad
body, an odd parameter, a body past the limit) goes on to Litestar with the
body replayed, so every refusal keeps its one implementation. Large results
are streamed by Litestar's own ``Stream`` response.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar import Request
from litestar.response import Stream
from litestar.serialization import encode_json

from lakehouse.errors import LakehouseError
from lakehouse.http_body import declared_length, prepend
from lakehouse.http_errors import INTERNAL_ERROR, error_body, log_lakehouse_error, log_unhandled
from lakehouse.query.interface import QueryEngine
from lakehouse.query.routes import SqlRequest, cancelled_on_disconnect, choose_format

PATHS = frozenset({"/v1/sql", "/sql"})
_PLAIN_NUMBER = re.compile(r"\d{1,9}(\.\d{1,9})?")
_decoder = msgspec.json.Decoder(SqlRequest)


class SqlFastPath:
    """ASGI wrapper: the plain ``POST /v1/sql`` here, everything else to ``app``."""

    def __init__(self, app: Any, engine: Callable[[], QueryEngine], max_body: int | None) -> None:
        """``engine``: the query engine (looked up per request: tests may swap services);
        ``max_body``: the app's ``request_max_body_size`` (None: no limit)."""
        self.app = app
        self._engine = engine
        self._max_body = max_body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in PATHS:
            await self.app(scope, receive, send)
            return
        options = _options(scope["query_string"])
        body, complete = (
            await self._read_body(receive, declared_length(scope))
            if options is not None
            else (b"", False)
        )
        data = _decode(body) if complete else None
        if options is None or data is None:
            await self.app(scope, _replay(body, receive, complete), send)
            return
        await self._answer(scope, receive, send, data, *options)

    async def _read_body(self, receive: Any, length: int | None) -> tuple[bytes, bool]:
        """The body, and whether it is all there and within the limit (else: what was read).
        With its ``length`` declared, it is all there once that many bytes came."""
        chunks: list[bytes] = []
        size = 0
        limit = self._max_body
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), False
            chunk = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            if limit is not None and size > limit:
                return b"".join(chunks), False
            if not message.get("more_body", False) or size == length:
                return b"".join(chunks), True

    async def _answer(
        self,
        scope: Any,
        receive: Any,
        send: Any,
        data: SqlRequest,
        format_param: str | None,
        time_limit: float | None,
    ) -> None:
        try:
            fmt = choose_format(format_param, _header(scope, b"accept"))
            async with cancelled_on_disconnect(receive):
                result = await self._engine().execute(
                    data.sql, data.params, fmt=fmt, timeout=time_limit
                )
        except LakehouseError as exc:
            log_lakehouse_error(exc)
            await _send(send, exc.status_code, _error(exc), "application/json", exc.headers)
            return
        except Exception as exc:
            log_unhandled(scope["method"], scope["path"], exc)
            body = encode_json(error_body("internal_error", INTERNAL_ERROR))
            await _send(send, 500, body, "application/json")
            return
        if result.rest is None:
            await _send(send, 200, result.head, result.media_type)
            return
        stream = Stream(prepend(result.head, result.rest), media_type=result.media_type)
        response = stream.to_asgi_response(app=None, request=Request(scope, receive, send))
        await response(scope, receive, send)


def _options(query_string: bytes) -> tuple[str | None, float | None] | None:
    """``format`` and ``timeout`` from a plain query string; None for anything else."""
    if not query_string:
        return None, None
    try:
        pairs = parse_qsl(query_string.decode("ascii"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    params = dict(pairs)
    if len(params) != len(pairs) or not params.keys() <= {"format", "timeout"}:
        return None
    timeout = params.get("timeout")
    if timeout is not None:
        if not _PLAIN_NUMBER.fullmatch(timeout) or float(timeout) <= 0:
            return None  # the route's 400s say what is wrong
        return params.get("format") or None, float(timeout)
    return params.get("format") or None, None


def _decode(body: bytes) -> SqlRequest | None:
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError:
        return None  # the route's 400 says what is wrong


def _replay(body: bytes, receive: Any, complete: bool) -> Any:
    """``receive`` with what was already read of the body in front."""
    first = {"type": "http.request", "body": body, "more_body": not complete}
    sent = False

    async def replaying_receive() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return first
        return await receive()

    return replaying_receive


def _header(scope: Any, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _error(exc: LakehouseError) -> bytes:
    return encode_json(error_body(exc.code, exc.message, exc.details))


async def _send(
    send: Any, status: int, body: bytes, media_type: str, headers: dict[str, str] | None = None
) -> None:
    if media_type.startswith("text/"):
        media_type += "; charset=utf-8"  # as Litestar writes a text type
    raw = [(b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
