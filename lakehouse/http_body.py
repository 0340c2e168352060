"""Reading a request body as a stream, for handlers that must not buffer it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request
from litestar.exceptions import InternalServerException

from lakehouse.errors import UploadIncomplete


async def request_body(request: Request[Any, Any, Any]) -> AsyncIterator[bytes]:
    """The raw body, chunk by chunk; a client that leaves mid-body is its fault, not a 500."""
    try:
        async for chunk in request.stream():
            yield chunk
    except InternalServerException as exc:
        # Litestar's stream() raises this (only) when the client disconnected.
        raise UploadIncomplete(
            "the client closed the connection before the body was complete"
        ) from exc


async def prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A response body: ``first`` (already produced, so errors came before the status
    line), then ``rest``. ``rest`` is closed (``aclose``) however the response ends,
    a client that leaves mid-body included, so what it holds is given back."""
    try:
        if first:
            yield first
        async for chunk in rest:
            yield chunk
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()
