"""Decompress an upload while it is spooled: gzip or zstd, told by its first bytes.

Bounded memory whatever the ratio: the decompressors hand their output over in
pieces of at most ``_OUT_BYTES`` (zlib's ``max_length``; zstandard's stream
writer), each written to the spool file before the next is made, and the
decompressed size is checked after every piece, so a zip bomb stops at the cap
(``DecompressedTooLarge``, 413), not after it has been inflated.

A gzip stream cut short or corrupt is ``InvalidCompression`` (400); concatenated
gzip members (``cat a.gz b.gz``) and zstd frames are read one after the other.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO, cast

import zstandard

from lakehouse.ingest.detect import decide_compression
from lakehouse.ingest.errors import DecompressedTooLarge, InvalidCompression
from lakehouse.ingest.formats import Compression

_OUT_BYTES = 1024 * 1024
_MAGIC_BYTES = 4
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer, not raw deflate


class Inflater:
    """Writes the raw bytes fed to it to ``handle``, decompressed if they start with
    a gzip or zstd header (which must then be ``declared``'s, unless that is NONE).
    Blocking: feed it from a worker thread."""

    def __init__(self, handle: BinaryIO, max_decompressed_bytes: int) -> None:
        self.handle = handle
        self.max_decompressed_bytes = max_decompressed_bytes
        self.declared = Compression.NONE
        self.compression: Compression | None = None
        self.written = 0
        self._head = b""
        self._gzip: zlib._Decompress | None = None
        self._zstd: zstandard.ZstdDecompressionWriter | None = None

    def write(self, data: bytes) -> None:
        if self.compression is None:
            self._head += data
            if len(self._head) < _MAGIC_BYTES:
                return
            data, self._head = self._head, b""
            self._start(data)
        self._feed(data)

    def finish(self) -> None:
        """The input ended: write what is left; a gzip stream cut short is a 400."""
        if self.compression is None:  # fewer bytes than a magic number
            head, self._head = self._head, b""
            self._start(head)
            self._feed(head)
        try:
            if self._gzip is not None:
                self._emit(self._gzip.flush())
                if not self._gzip.eof:
                    raise InvalidCompression(
                        "the gzip stream is cut short: its end never arrived",
                        details={"compression": "gzip"},
                    )
            elif self._zstd is not None:
                self._zstd.flush()  # type: ignore[no-untyped-call]  # untyped in zstandard
        except (zlib.error, zstandard.ZstdError) as exc:
            raise self._corrupt(exc) from None

    def _feed(self, data: bytes) -> None:
        try:
            if self._gzip is not None:
                self._gunzip(data)
            elif self._zstd is not None:
                self._zstd.write(data)
            else:
                self._emit(data)
        except (zlib.error, zstandard.ZstdError) as exc:
            raise self._corrupt(exc) from None

    def _start(self, head: bytes) -> None:
        self.compression = decide_compression(self.declared, head)
        if self.compression == Compression.GZIP:
            self._gzip = zlib.decompressobj(_GZIP_WBITS)
        elif self.compression == Compression.ZSTD:
            self._zstd = zstandard.ZstdDecompressor().stream_writer(
                cast(BinaryIO, _Emitter(self)), write_size=_OUT_BYTES, closefd=False
            )

    def _gunzip(self, data: bytes) -> None:
        while data:
            assert self._gzip is not None
            if self._gzip.eof:  # the next member of a concatenated gzip file
                self._gzip = zlib.decompressobj(_GZIP_WBITS)
            self._emit(self._gzip.decompress(data, _OUT_BYTES))
            data = self._gzip.unconsumed_tail or self._gzip.unused_data

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        self.written += len(data)
        if self.compression != Compression.NONE and self.written > self.max_decompressed_bytes:
            limit = self.max_decompressed_bytes
            raise DecompressedTooLarge(
                f"the upload decompresses to more than the limit of {limit} bytes",
                details={"max_decompressed_bytes": limit},
            )
        self.handle.write(data)

    def _corrupt(self, exc: Exception) -> InvalidCompression:
        name = self.compression.value if self.compression else "compressed"
        return InvalidCompression(
            f"the {name} stream is corrupt: {exc}", details={"compression": name}
        )


class _Emitter:
    """The file-like object zstandard's stream writer writes its output to."""

    def __init__(self, inflater: Inflater) -> None:
        self.inflater = inflater

    def write(self, data: bytes) -> int:
        self.inflater._emit(data)
        return len(data)
