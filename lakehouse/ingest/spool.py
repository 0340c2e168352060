"""Spool an upload (raw body or one multipart field) to a local file, decompressed
on the way (``inflate.Inflater``) if it is gzip or zstd.

Litestar's own multipart handling runs before the handler (so a 503 or an
early 413 would come only after the whole body arrived), is bounded by the
app-wide ``request_max_body_size`` (10 MB by default) and spools to the
system temp dir. We parse the request stream ourselves with
``multipart.PushMultipartParser`` and write the ``file`` part straight to a
file next to the storage root, in 1 MiB writes done in a worker thread. Each
write is flushed and told to the upload's ``Arrival``, so the converter can read
the file while it arrives (ADR 0009).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable
from typing import BinaryIO

import msgspec
from multipart import (  # type: ignore[import-untyped]  # no type hints shipped
    MultipartError,
    MultipartSegment,
    PushMultipartParser,
)

from lakehouse.ingest.arrival import Arrival
from lakehouse.ingest.detect import declared_compression
from lakehouse.ingest.errors import InvalidCSV, MissingFile
from lakehouse.ingest.formats import Compression
from lakehouse.ingest.inflate import Inflater

FILE_FIELD = "file"
_WRITE_BYTES = 1024 * 1024


class Spooled(msgspec.Struct):
    """What was spooled: its size (decompressed), the bytes received and their sha256,
    the compression found, and the file name and Content-Type the client gave (a
    multipart part's own, or the request's)."""

    size: int
    received: int = 0
    sha256: str = ""
    file_name: str = ""
    media_type: str = ""
    compression: Compression = Compression.NONE


class Hints(msgspec.Struct):
    """What the request says about the file; a multipart part's own headers replace
    ``file_name`` and ``media_type``."""

    file_name: str = ""
    media_type: str = ""
    content_encoding: str = ""
    max_decompressed_bytes: int = 0

    def declare(self, inflater: Inflater, arrival: Arrival) -> None:
        """Before the file's first byte: what it is said to be, to the inflater and the
        readers of the arriving file."""
        inflater.declared = declared_compression(
            self.content_encoding, self.media_type, self.file_name
        )
        arrival.file_name, arrival.media_type = self.file_name, self.media_type


class _BufferedWriter:
    """Collects chunks and writes them in large blocks off the event loop.

    One block is written in a worker thread while the next one is collected
    (the write is awaited only before the next one starts), and the chunks
    are handed over as they came, without joining them into one buffer.
    """

    def __init__(self, handle: BinaryIO, inflater: Inflater, arrival: Arrival) -> None:
        self.handle = handle
        self.inflater = inflater
        self.arrival = arrival
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.written = 0
        self.digest = hashlib.sha256()
        self.in_flight: asyncio.Future[None] | None = None

    def result(self, hints: Hints) -> Spooled:
        return Spooled(
            size=self.inflater.written,
            received=self.written,
            sha256=self.digest.hexdigest(),
            file_name=hints.file_name,
            media_type=hints.media_type,
            compression=self.inflater.compression or Compression.NONE,
        )

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        # The parser's events may be views of its buffer: keep a copy of those.
        self.chunks.append(chunk if isinstance(chunk, bytes) else bytes(chunk))
        self.buffered += len(chunk)
        self.written += len(chunk)
        if self.buffered >= _WRITE_BYTES:
            await self._start_write()

    async def flush(self) -> None:
        """Write what is buffered and wait for every write to finish (the last
        of the decompressed output too)."""
        await self._start_write()
        await self._wait()
        await asyncio.to_thread(self._finish)

    async def _start_write(self) -> None:
        await self._wait()
        if self.chunks:
            chunks, self.chunks, self.buffered = self.chunks, [], 0
            self.in_flight = asyncio.ensure_future(asyncio.to_thread(self._write, chunks))

    async def _wait(self) -> None:
        if self.in_flight is not None:
            in_flight, self.in_flight = self.in_flight, None
            await in_flight

    async def close(self) -> None:
        """Close the file, after the write in flight (if any) ended: also
        on an error or a cancellation, so no thread writes a closed file."""
        try:
            if self.in_flight is not None:
                await asyncio.gather(self.in_flight, return_exceptions=True)
        finally:
            await asyncio.to_thread(self.handle.close)

    def _write(self, chunks: list[bytes]) -> None:
        # Hashed (as received) and decompressed here, in the worker thread, while the
        # block is at hand (hashlib, zlib and zstandard release the GIL on large buffers).
        for chunk in chunks:
            self.digest.update(chunk)
            self.inflater.write(chunk)
        self._flushed()

    def _finish(self) -> None:
        self.inflater.finish()
        self._flushed()

    def _flushed(self) -> None:
        # Flushed, so a reader of the file (another file descriptor) finds the bytes.
        self.handle.flush()
        self.arrival.grew(self.inflater.written)


def _writer(handle: BinaryIO, hints: Hints, arrival: Arrival) -> _BufferedWriter:
    return _BufferedWriter(handle, Inflater(handle, hints.max_decompressed_bytes), arrival)


async def spool_raw(chunks: AsyncIterable[bytes], arrival: Arrival, hints: Hints) -> Spooled:
    """Write the whole body to ``arrival.path``, telling ``arrival`` as it grows."""
    handle = await asyncio.to_thread(arrival.path.open, "wb")
    writer = _writer(handle, hints, arrival)
    try:
        hints.declare(writer.inflater, writer.arrival)
        async for chunk in chunks:
            if chunk:
                await writer.write(chunk)
        await writer.flush()
        return writer.result(hints)
    finally:
        await writer.close()


async def spool_multipart(
    chunks: AsyncIterable[bytes], boundary: str, arrival: Arrival, hints: Hints
) -> Spooled:
    """Write the body of the form field ``file`` to ``arrival.path``, telling ``arrival``
    as it grows.

    Other fields are read and dropped. Raises MissingFile when there is no
    ``file`` field, InvalidCSV when the multipart body is malformed.
    """
    if not boundary:
        raise InvalidCSV("multipart/form-data without a boundary")
    handle = await asyncio.to_thread(arrival.path.open, "wb")
    writer = _writer(handle, hints, arrival)
    found = False
    try:
        in_file = False
        with PushMultipartParser(boundary, max_header_count=16) as parser:
            async for chunk in chunks:
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        in_file = event.name == FILE_FIELD and not found
                        if in_file:
                            hints = msgspec.structs.replace(
                                hints,
                                file_name=event.filename or "",
                                media_type=event.content_type or "",
                            )
                            hints.declare(writer.inflater, writer.arrival)
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
        await writer.close()
    if not found:
        raise MissingFile(f"the multipart form has no field named {FILE_FIELD!r}")
    return writer.result(hints)
