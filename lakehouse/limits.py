"""Request limits: concurrency slots and streaming size caps, enforced at the HTTP edge.

``UploadLimit`` is the one layer both upload routes (storage PUT and ingest)
go through: an announced ``Content-Length`` over the cap is refused before a
byte is read, a request beyond the concurrency limit is refused at once, and
a body that turns out larger than announced is cut off as soon as the excess
arrives.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import asynccontextmanager

from lakehouse.errors import LakehouseError


class ConcurrencyLimit:
    """At most ``limit`` holders at once; one more is refused at once, never queued.

    Refusing (503 + Retry-After) instead of queueing keeps memory and disk use
    bounded and tells the client to come back (ADR 0011).
    """

    def __init__(self, limit: int, refuse: Callable[[], LakehouseError]) -> None:
        self.limit = limit
        self._refuse = refuse
        self._in_use = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        # Single event loop: the check and the increment cannot interleave.
        if self._in_use >= self.limit:
            raise self._refuse()
        self._in_use += 1
        try:
            yield
        finally:
            self._in_use -= 1


async def capped(
    chunks: AsyncIterable[bytes], max_bytes: int, too_large: Callable[[], LakehouseError]
) -> AsyncIterator[bytes]:
    """Pass chunks through, raising ``too_large()`` as soon as more than
    ``max_bytes`` arrived, so an oversized upload is never read to its end."""
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > max_bytes:
            raise too_large()
        yield chunk


class UploadLimit:
    """The size cap and concurrency limit of one upload route.

    Args:
        max_bytes: the largest body accepted.
        max_concurrent: uploads in flight at once.
        too_large: the error (413) for a body over ``max_bytes``.
        busy: the error (503) for one upload more than ``max_concurrent``.
    """

    def __init__(
        self,
        max_bytes: int,
        max_concurrent: int,
        too_large: Callable[[], LakehouseError],
        busy: Callable[[], LakehouseError],
    ) -> None:
        self.max_bytes = max_bytes
        self._too_large = too_large
        self._slots = ConcurrencyLimit(max_concurrent, busy)

    @asynccontextmanager
    async def admit(
        self, content_length: int | None, body: AsyncIterable[bytes]
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Hold a slot while the body is used; yield the body, capped.

        Raises ``too_large()`` at once for an announced length over the cap, or
        while streaming; ``busy()`` when every slot is taken.
        """
        if content_length is not None and content_length > self.max_bytes:
            raise self._too_large()
        async with self._slots.slot():
            yield capped(body, self.max_bytes, self._too_large)
