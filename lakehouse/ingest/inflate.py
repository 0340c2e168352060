"""Decompress an upload while it is spooled: gzip or zstd, told by its first bytes.

Bounded memory whatever the ratio: the decompressors hand their output over in
pieces of at most ``_OUT_BYTES`` (zlib's ``max_length``; zstandard's stream
writer), each written to the spool file before the next is made, and the
decompressed size is checked after every piece, so a zip bomb stops at the cap
(``DecompressedTooLarge``, 413), not after it has been inflated.

A stream cut short or corrupt is ``InvalidCompression`` (400); concatenated gzip
members (``cat a.gz b.gz``) and zstd frames are read one after the other. zstandard's
stream writer does not say whether its last frame ended, so ``_ZstdFrames`` follows the
frame and block headers (RFC 8878) to tell.
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
        self._frames = _ZstdFrames()

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
                if not self._frames.complete():
                    raise InvalidCompression(
                        "the zstd stream is cut short: its last frame never ended",
                        details={"compression": "zstd"},
                    )
        except (zlib.error, zstandard.ZstdError) as exc:
            raise self._corrupt(exc) from None

    def _feed(self, data: bytes) -> None:
        try:
            if self._gzip is not None:
                self._gunzip(data)
            elif self._zstd is not None:
                self._frames.feed(data)
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


_ZSTD_MAGIC = 0xFD2FB528
_SKIPPABLE_MASK, _SKIPPABLE_MAGIC = 0xFFFFFFF0, 0x184D2A50
_DICT_ID_BYTES = (0, 1, 2, 4)
_CONTENT_SIZE_BYTES = (0, 2, 4, 8)  # 0 is 1 byte for a single-segment frame


class _ZstdFrames:
    """Follows the headers of a zstd stream (frames, skippable frames, blocks) without
    decompressing, to tell whether it ended at the end of a frame."""

    def __init__(self) -> None:
        self._state = "magic"
        self._need = 4  # header bytes the current state reads
        self._head = b""
        self._skip = 0  # bytes of content to pass over
        self._checksum = False

    def complete(self) -> bool:
        return self._state == "magic" and not self._head and not self._skip

    def feed(self, data: bytes) -> None:
        at = 0
        while at < len(data):
            if self._skip:
                taken = min(self._skip, len(data) - at)
                self._skip -= taken
                at += taken
                continue
            taken = min(self._need - len(self._head), len(data) - at)
            self._head += data[at : at + taken]
            at += taken
            if len(self._head) == self._need:
                head, self._head = self._head, b""
                self._read(int.from_bytes(head, "little"))

    def _read(self, value: int) -> None:
        if self._state == "magic":
            if value == _ZSTD_MAGIC:
                self._state, self._need = "frame_header", 1
            elif value & _SKIPPABLE_MASK == _SKIPPABLE_MAGIC:
                self._state, self._need = "skippable_size", 4
            # Anything else: the decompressor itself refuses it.
        elif self._state == "skippable_size":
            self._state, self._need, self._skip = "magic", 4, value
        elif self._state == "frame_header":
            single_segment = bool(value >> 5 & 1)
            self._checksum = bool(value >> 2 & 1)
            content_size = _CONTENT_SIZE_BYTES[value >> 6] or int(single_segment)
            window = 0 if single_segment else 1
            self._skip = window + _DICT_ID_BYTES[value & 3] + content_size
            self._state, self._need = "block", 3
        elif self._state == "block":
            last, block_type, size = value & 1, value >> 1 & 3, value >> 3
            self._skip = 1 if block_type == 1 else size  # an RLE block holds one byte
            if last:
                self._skip += 4 if self._checksum else 0
                self._state, self._need = "magic", 4
