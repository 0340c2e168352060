"""Spool an upload (raw CSV body or one multipart field) to a local file.

Litestar's own multipart handling runs before the handler (so a 503 or an
early 413 would come only after the whole body arrived), is bounded by the
app-wide ``request_max_body_size`` (10 MB by default) and spools to the
system temp dir. We parse the request stream ourselves with
``multipart.PushMultipartParser`` and write the ``file`` part straight to a
file next to the storage root, in 1 MiB writes done in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from pathlib import Path
from typing import BinaryIO

import msgspec
from multipart import (  # type: ignore[import-untyped]  # no type hints shipped
    MultipartError,
    MultipartSegment,
    PushMultipartParser,
)

from lakehouse.ingest.errors import InvalidCSV, MissingFile

FILE_FIELD = "file"
_WRITE_BYTES = 1024 * 1024


class Spooled(msgspec.Struct):
    """What was spooled: its size, and how many ``"`` bytes it holds (an odd
    count is how the converter notices a quote perhaps never closed)."""

    size: int
    quotes: int


class _BufferedWriter:
    """Collects chunks and writes them in large blocks off the event loop."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.buffer = bytearray()
        self.written = 0
        self.quotes = 0

    def result(self) -> Spooled:
        return Spooled(size=self.written, quotes=self.quotes)

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        self.buffer += chunk
        self.written += len(chunk)
        if len(self.buffer) >= _WRITE_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if self.buffer:
            data, self.buffer = bytes(self.buffer), bytearray()
            await asyncio.to_thread(self._write, data)

    def _write(self, data: bytes) -> None:
        # Counted here, in the worker thread, while the block is at hand.
        self.quotes += data.count(b'"')
        self.handle.write(data)


async def spool_raw(chunks: AsyncIterable[bytes], target: Path) -> Spooled:
    """Write the whole body to ``target``."""
    handle = await asyncio.to_thread(target.open, "wb")
    try:
        writer = _BufferedWriter(handle)
        async for chunk in chunks:
            if chunk:
                await writer.write(chunk)
        await writer.flush()
        return writer.result()
    finally:
        await asyncio.to_thread(handle.close)


async def spool_multipart(chunks: AsyncIterable[bytes], boundary: str, target: Path) -> Spooled:
    """Write the body of the form field ``file`` to ``target``.

    Other fields are read and dropped. Raises MissingFile when there is no
    ``file`` field, InvalidCSV when the multipart body is malformed.
    """
    if not boundary:
        raise InvalidCSV("multipart/form-data without a boundary")
    handle = await asyncio.to_thread(target.open, "wb")
    found = False
    try:
        writer = _BufferedWriter(handle)
        in_file = False
        with PushMultipartParser(boundary, max_header_count=16) as parser:
            async for chunk in chunks:
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        in_file = event.name == FILE_FIELD and not found
                        found = found or in_file
                    elif event is None:
                        in_file = False
                    elif in_file:
                        await writer.write(event)
                if parser.closed:
                    break
        await writer.flush()
    except MultipartError as exc:
        raise InvalidCSV(f"malformed multipart/form-data body: {exc}") from exc
    finally:
        await asyncio.to_thread(handle.close)
    if not found:
        raise MissingFile(f"the multipart form has no field named {FILE_FIELD!r}")
    return writer.result()
