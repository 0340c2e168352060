"""HTTP routes of the query module: ``POST /sql`` and ``GET /sql`` (mounted at ``/v1/sql``).

The plain POST requests are answered by ``fast_path`` before Litestar routes
them; what the POST handler does, that must do too.

POST body ``{"sql": "...", "params": [...]}``; GET takes the same as ``?sql=`` and
``?params=`` (JSON). The format comes from ``?format=`` or, failing that, the first
``Accept`` type we produce; JSON by default. ``?timeout=`` (seconds) may lower the
configured time limit. A client that disconnects while its query runs cancels it.

GET answers a deterministic statement with an ``ETag`` (the statement, its
parameters, the format and the catalog version) and ``304 Not Modified`` when
``If-None-Match`` names it, checked before the query runs (ADR 0019).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import Stream
from litestar.types import Receive

from lakehouse.errors import BadRequest
from lakehouse.http_body import prepend
from lakehouse.http_errors import error_responses
from lakehouse.openapi_docs import documented
from lakehouse.query._docs import SQL_REQUEST, SQL_RESULTS
from lakehouse.query.encoders import ACCEPT_TYPES, ResultFormat
from lakehouse.query.errors import UnsupportedFormat
from lakehouse.query.interface import QueryEngine

WATCH_AFTER_SECONDS = 0.05
"""A query still running after this long gets a task that cancels it if the client leaves."""


FormatParameter = Annotated[
    str | None, QueryParameter(description="json, ndjson, csv, arrow or parquet")
]
TimeoutParameter = Annotated[
    float | None, QueryParameter(description="Seconds; may only lower the configured limit")
]


class SqlRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /sql."""

    sql: str
    """One read-only statement."""
    params: list[Any] | dict[str, Any] | None = None
    """Values bound to ``?`` / ``$1`` (a list) or ``$name`` (an object) parameters."""


def choose_format(format_param: str | None, accept: str | None) -> ResultFormat:
    """``?format=`` wins; else the first Accept type we produce; else JSON."""
    if format_param:
        try:
            return ResultFormat(format_param.lower())
        except ValueError:
            known = ", ".join(f.value for f in ResultFormat)
            raise UnsupportedFormat(
                f"unknown format {format_param!r}; use one of {known}"
            ) from None
    if accept:
        for item in accept.split(","):
            media_type = item.split(";", 1)[0].strip().lower()
            if media_type in ACCEPT_TYPES:
                return ACCEPT_TYPES[media_type]
    return ResultFormat.JSON


@contextlib.asynccontextmanager
async def cancelled_on_disconnect(receive: Receive) -> AsyncIterator[None]:
    """The current task (the handler) is cancelled if the client goes away meanwhile."""
    handler_task = asyncio.current_task()
    assert handler_task is not None
    # Most queries answer in a few ms: watch for a disconnect only once one is slow
    # (a task per request costs more than the query itself for count(*)).
    watchers: list[asyncio.Task[None]] = []

    def watch() -> None:
        watchers.append(asyncio.create_task(cancel_on_disconnect(receive, handler_task)))

    timer = asyncio.get_running_loop().call_later(WATCH_AFTER_SECONDS, watch)
    try:
        yield
    finally:
        timer.cancel()
        for watcher in watchers:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def cancel_on_disconnect(receive: Receive, task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` (the handler) when the client goes away before the answer."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            task.cancel()
            return


@post(
    "/sql",
    summary="Run one read-only SQL statement",
    description=(
        'Body: {"sql": "...", "params": [...]}. Every dataset is a view named after it. '
        "Returns a JSON array of objects by default; ?format=ndjson|csv|arrow|parquet (or the "
        "matching Accept type) for other encodings. Only SELECT/WITH/VALUES/DESCRIBE/SHOW/"
        "EXPLAIN/SUMMARIZE run (403 otherwise); a query past its time limit answers 408."
    ),
    status_code=200,
    tags=["query"],
    responses=error_responses(400, 403, 404, 408, 413, 502, 503),
    operation_class=documented(request_body=SQL_REQUEST, success_content=SQL_RESULTS),
)
async def run_sql(
    request: Request[Any, Any, Any],
    query_engine: NamedDependency[QueryEngine],
    format: FormatParameter = None,
    timeout: TimeoutParameter = None,  # noqa: ASYNC109 - a query parameter, enforced by the service
) -> Response[bytes] | Stream:
    body = await request.body()
    try:
        data = msgspec.json.decode(body, type=SqlRequest)
    except msgspec.DecodeError as exc:
        raise BadRequest(f'invalid request body: {exc}; expected {{"sql": "..."}}') from None
    fmt = choose_format(format, request.headers.get("accept"))
    return await _answer(request, query_engine, data.sql, data.params, fmt, timeout)


async def _answer(
    request: Request[Any, Any, Any],
    query_engine: QueryEngine,
    sql: str,
    params: Any,
    fmt: ResultFormat,
    timeout: float | None,  # noqa: ASYNC109 - enforced by the service
    headers: dict[str, str] | None = None,
) -> Response[bytes] | Stream:
    """Run the statement, cancelled if the client leaves; the answer with ``headers``."""
    if timeout is not None and timeout <= 0:
        raise BadRequest("timeout must be a positive number of seconds")
    async with cancelled_on_disconnect(request.receive):
        result = await query_engine.execute(sql, params, fmt=fmt, timeout=timeout)
    if result.rest is None:
        return Response(content=result.head, media_type=result.media_type, headers=headers)
    return Stream(prepend(result.head, result.rest), media_type=result.media_type, headers=headers)


REVALIDATE = "private, max-age=0, must-revalidate"
"""Cache-Control of a GET answer with an ETag: keep it, but ask before each reuse
(a commit may change it at any moment); private: the answer may need a token."""
NO_STORE = "no-store"
"""Cache-Control of a GET answer that may change without a commit (``random()``...)."""


def _matches(if_none_match: str | None, tag: str) -> bool:
    """Whether ``If-None-Match`` names ``tag`` (weak comparison, as RFC 9110 asks for it)."""
    if not if_none_match:
        return False
    candidates = [item.strip() for item in if_none_match.split(",")]
    return "*" in candidates or any(c.removeprefix("W/") == tag for c in candidates)


@get(
    "/sql",
    summary="Run one read-only SQL statement given in the URL (cacheable)",
    description=(
        "The same statement, parameters and formats as POST /sql, as ?sql=...&params=[...] "
        "(params: JSON). A deterministic statement's answer carries an ETag that changes "
        "with the statement, its parameters, the format and any commit to the catalog, and "
        f"Cache-Control: {REVALIDATE}; If-None-Match with that ETag answers 304 (empty body) "
        "without running the query. A statement calling a volatile function (random(), "
        "now(), gen_random_uuid() ...) or reading files by path gets no ETag and "
        f"Cache-Control: {NO_STORE}."
    ),
    status_code=200,
    tags=["query"],
    responses={
        **error_responses(400, 403, 404, 408, 502, 503),
        304: ResponseSpec(
            data_container=None,
            description="Not Modified: If-None-Match names the current ETag (empty body)",
        ),
    },
    response_headers=[
        ResponseHeader(
            name="ETag",
            description="Strong validator of the answer (deterministic statements only)",
            documentation_only=True,
            value="",  # documentation only: its type gives the header's schema (a string)
        ),
        ResponseHeader(
            name="Cache-Control",
            description=f"{REVALIDATE!r} with an ETag, {NO_STORE!r} without",
            documentation_only=True,
            value="",  # documentation only: its type gives the header's schema (a string)
        ),
    ],
    operation_class=documented(success_content=SQL_RESULTS),
)
async def run_sql_get(
    request: Request[Any, Any, Any],
    query_engine: NamedDependency[QueryEngine],
    sql: Annotated[str, QueryParameter(description="One read-only statement")],
    params: Annotated[
        str | None,
        QueryParameter(description="JSON list (for ? / $1) or object (for $name) of values"),
    ] = None,
    format: FormatParameter = None,
    timeout: TimeoutParameter = None,  # noqa: ASYNC109 - a query parameter, enforced by the service
    if_none_match: Annotated[
        str | None,
        HeaderParameter(name="If-None-Match", description="ETags of answers the client holds"),
    ] = None,
) -> Response[bytes] | Stream:
    values = _url_params(params)
    fmt = choose_format(format, request.headers.get("accept"))
    tag = await query_engine.etag(sql, values, fmt)
    if tag is None:
        headers = {"cache-control": NO_STORE}
    else:
        headers = {"etag": tag, "cache-control": REVALIDATE, "vary": "Accept"}
        if _matches(if_none_match, tag):
            return Response(content=b"", status_code=304, headers=headers)
    return await _answer(request, query_engine, sql, values, fmt, timeout, headers)


def _url_params(text: str | None) -> list[Any] | dict[str, Any] | None:
    """``?params=``: a JSON list or object (or nothing)."""
    if text is None:
        return None
    try:
        values = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"params must be JSON (a list or an object): {exc}") from None
    if values is not None and not isinstance(values, list | dict):
        raise BadRequest("params must be a JSON list (for ? / $1) or object (for $name)")
    return values
