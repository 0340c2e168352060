"""HTTP routes of the query module: ``POST /sql`` (mounted at ``/v1/sql`` by the app).

The plain requests of this route are answered by ``fast_path`` before Litestar
routes them; what this handler does, that must do too.

Body ``{"sql": "...", "params": [...]}``. The format comes from ``?format=``
or, failing that, the first ``Accept`` type we produce; JSON by default.
``?timeout=`` (seconds) may lower the configured time limit. A client that
disconnects while its query runs cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter
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
    format: Annotated[
        str | None, QueryParameter(description="json, ndjson, csv, arrow or parquet")
    ] = None,
    timeout: Annotated[  # noqa: ASYNC109 - a query parameter, enforced by the service
        float | None, QueryParameter(description="Seconds; may only lower the configured limit")
    ] = None,
) -> Response[bytes] | Stream:
    body = await request.body()
    try:
        data = msgspec.json.decode(body, type=SqlRequest)
    except msgspec.DecodeError as exc:
        raise BadRequest(f'invalid request body: {exc}; expected {{"sql": "..."}}') from None
    fmt = choose_format(format, request.headers.get("accept"))
    if timeout is not None and timeout <= 0:
        raise BadRequest("timeout must be a positive number of seconds")
    async with cancelled_on_disconnect(request.receive):
        result = await query_engine.execute(data.sql, data.params, fmt=fmt, timeout=timeout)
    if result.rest is None:
        return Response(content=result.head, media_type=result.media_type)
    return Stream(prepend(result.head, result.rest), media_type=result.media_type)
