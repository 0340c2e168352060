"""The ObjectStore protocol every backend implements, and its value types."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import msgspec


class ObjectInfo(msgspec.Struct, frozen=True):
    """What a listing or head returns about one object."""

    key: str
    size: int
    etag: str
    last_modified: dt.datetime


@runtime_checkable
class ObjectStore(Protocol):
    """Async key/value storage of immutable-once-written objects.

    Keys are validated by ``validate_key`` before any backend touches them
    (``InvalidKey`` otherwise). Writes are atomic: a reader sees the old
    object or the new one, never a partial one.
    """

    async def start(self) -> None:
        """Open connections / create directories. Called once at app start."""

    async def close(self) -> None:
        """Release connections. Called once at app shutdown."""

    async def put(
        self,
        key: str,
        data: bytes | AsyncIterable[bytes],
        *,
        max_bytes: int | None = None,
    ) -> ObjectInfo:
        """Store ``data`` under ``key``, replacing any object there.

        Streams an async iterable without buffering it whole. Raises
        ``ObjectTooLarge`` (and leaves nothing behind) once more than
        ``max_bytes`` arrived.
        """

    async def put_file(self, key: str, path: Path) -> ObjectInfo:
        """Store the contents of a local file (streamed, multipart on S3)."""

    async def get(self, key: str) -> bytes:
        """Return a whole object. Raises ``ObjectNotFound``. Small objects only."""

    def open_read(self, key: str, chunk_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
        """Stream an object in chunks. Raises ``ObjectNotFound`` before the first chunk."""

    async def head(self, key: str) -> ObjectInfo:
        """Return an object's info. Raises ``ObjectNotFound``."""

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        """All objects whose key starts with ``prefix``, sorted by key."""

    async def delete(self, key: str, *, missing_ok: bool = False) -> None:
        """Remove an object. Raises ``ObjectNotFound`` unless ``missing_ok``."""

    def duckdb_path(self, key: str) -> str:
        """How DuckDB addresses ``key``: an absolute path or ``s3://bucket/key``."""

    @property
    def duckdb_root(self) -> str:
        """The location every ``duckdb_path`` starts with (for allowed_directories)."""
