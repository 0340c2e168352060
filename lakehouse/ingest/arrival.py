"""A spool file read while the upload is still being written to it (ADR 0009).

The spool writes the upload to a local file a block at a time; the CSV converter
reads the same file from a worker thread as it grows, so a large upload is
converted while it arrives instead of after. ``Arrival`` is what the two share:
how many bytes are on disk, and whether the upload ended or failed.

A reader sees a regular file: ``read(n)`` returns ``n`` bytes unless the file
has ended, waiting for them while they are on their way (the code reading it
takes a short read to mean the end, as it would for a file on disk). When the
upload fails (413, a malformed body, the client gone) a waiting or later read
raises ``UploadFailed``: the reader stops, and the spool's own error is the
ingest's answer.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from pathlib import Path
from typing import BinaryIO

_READ_BYTES = 1024 * 1024


class UploadFailed(Exception):
    """The upload being read did not arrive whole (the spool says why)."""

    def __init__(self, message: str = "the upload did not arrive whole") -> None:
        super().__init__(message)


class Arrival:
    """The progress of one spool file: bytes on disk, ended or failed.

    The spool calls ``grew`` after each block it wrote (and flushed) and the ingest
    calls ``end`` or ``fail`` once the spool returned; readers in other threads
    ``open`` the file and wait on it. ``complete(path)`` is a file already whole.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file_name = ""
        self.media_type = ""
        """The file name and Content-Type the upload gave (a multipart part's own), set
        before its first byte is written."""
        self._size = 0
        self._ended = False
        self._failed = False
        self._changed = threading.Condition()

    @classmethod
    def complete(cls, path: Path) -> Arrival:
        arrival = cls(path)
        arrival._size, arrival._ended = path.stat().st_size, True
        return arrival

    def grew(self, size: int) -> None:
        with self._changed:
            self._size = size
            self._changed.notify_all()

    def end(self) -> None:
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def fail(self) -> None:
        with self._changed:
            self._failed = True
            self._changed.notify_all()

    def wait_for(self, size: int) -> int:
        """Block until ``size`` bytes are on disk or the file ended; the bytes on disk.
        Raises UploadFailed when the upload failed (also after it ended: a reader
        still at work is stopped)."""
        with self._changed:
            self._changed.wait_for(lambda: self._failed or self._ended or self._size >= size)
            if self._failed:
                raise UploadFailed
            return self._size

    def wait_all(self) -> Path:
        """Block until the whole file is on disk; its path. Raises UploadFailed."""
        self.wait_for(sys.maxsize)
        return self.path

    def open(self) -> BinaryIO:
        """The file for reading, as it grows (buffered: ``read(n)`` is whole)."""
        if self._ended and not self._failed:
            return self.path.open("rb")
        return io.BufferedReader(_ArrivingFile(self), buffer_size=_READ_BYTES)

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes (fewer if the file is shorter), once they are on disk."""
        self.wait_for(size)
        with self.path.open("rb") as handle:
            return handle.read(size)


def arrival_of(source: Path | Arrival) -> Arrival:
    return source if isinstance(source, Arrival) else Arrival.complete(source)


class _ArrivingFile(io.RawIOBase):
    """The spool file's bytes as they arrive: a read waits until all the bytes it asks
    for are on disk, or returns what is left once the file ended. So reads come in the
    same pieces as from the file on disk (a decoding error names the same position
    however the upload arrived)."""

    def __init__(self, arrival: Arrival) -> None:
        super().__init__()
        self.arrival = arrival
        self.fd = os.open(arrival.path, os.O_RDONLY)
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        wanted = len(buffer)
        on_disk = self.arrival.wait_for(self.position + wanted)
        count = os.readv(self.fd, [memoryview(buffer)[: max(0, on_disk - self.position)]])
        self.position += count
        return count

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()
