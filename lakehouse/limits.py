"""Request limits shared by the modules: concurrency slots and streaming size caps."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import asynccontextmanager

from lakehouse.errors import LakehouseError


class ConcurrencyLimit:
    """At most ``limit`` holders at once; one more is refused at once, never queued.

    Refusing (503 + Retry-After) instead of queueing keeps memory and disk use
    bounded and tells the client to come back, as the plan asks.
    """

    def __init__(self, limit: int, refuse: Callable[[], LakehouseError]) -> None:
        self.limit = limit
        self._refuse = refuse
        self._in_use = 0

    @property
    def in_use(self) -> int:
        return self._in_use

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
