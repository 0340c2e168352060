"""pyiceberg's pyarrow FileIO, with fewer requests per commit on S3 (ADR 0014).

An append writes four small files (a manifest, often a merged one, a manifest list
and a metadata JSON of a few KB each). pyarrow's S3 output stream wrote each as a
multipart upload (create, one part, complete: three requests), pyiceberg asked
whether the new metadata file existed before writing it, and asked the store for each
new manifest's size right after writing it. Each is a round trip to S3 in the commit.

- Small files go up in one ``PutObject``: pyarrow's ``allow_delayed_open`` starts a
  multipart upload only once a part's worth of data is written.
- A new file's name holds a random UUID (pyiceberg names them so), so the check that it
  does not exist yet is skipped: it could only race anyway, as pyiceberg's own note says.
- The size of a file this process just wrote is the count of bytes it wrote.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from pyarrow.fs import FileSystem, S3FileSystem
from pyiceberg.io import S3_RETRY_STRATEGY_IMPL, OutputStream
from pyiceberg.io.pyarrow import PyArrowFile, PyArrowFileIO

IMPL = f"{__name__}.LakehouseFileIO"
"""The value of pyiceberg's ``py-io-impl`` property that selects this FileIO."""


class LakehouseFileIO(PyArrowFileIO):
    def _initialize_s3_fs(self, netloc: str | None) -> FileSystem:
        configured = super()._initialize_s3_fs(netloc)
        if S3_RETRY_STRATEGY_IMPL in self.properties:
            return configured  # its arguments below would leave the retry strategy out
        # pyiceberg has no property for it: rebuild the filesystem from its own arguments.
        _, (arguments,) = configured.__reduce__()
        return S3FileSystem(**{**arguments, "allow_delayed_open": True})

    def new_output(self, location: str) -> PyArrowFile:
        plain = super().new_output(location)
        return _NewFile(
            location=plain.location,
            path=plain._path,
            fs=plain._filesystem,
            buffer_size=plain._buffer_size,
        )


class _NewFile(PyArrowFile):
    """A file about to be written under a fresh name; knows its size once written."""

    _written: int | None = None

    def create(self, overwrite: bool = False) -> OutputStream:
        # A fresh name: no existence check (one HEAD saved), whatever ``overwrite`` says.
        return _CountingStream(super().create(overwrite=True), self)

    def __len__(self) -> int:
        if self._written is not None:
            return self._written
        return super().__len__()


class _CountingStream:
    """An output stream that tells its file how many bytes it wrote, once closed."""

    def __init__(self, inner: OutputStream, file: _NewFile) -> None:
        self._inner = inner
        self._file = file
        self._count = 0

    def write(self, data: bytes) -> int:
        written = self._inner.write(data)
        self._count += memoryview(data).nbytes
        return written

    def close(self) -> None:
        self._inner.close()  # with a delayed open, an upload's failure surfaces here
        self._file._written = self._count

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> _CountingStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
