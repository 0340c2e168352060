"""The ObjectStore protocol every backend implements, and its value types."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import msgspec

from lakehouse.storage.keys import validate_key


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
        """Open connections / create directories. Called once at app start.

        Raises:
            StorageUnavailable: the backend cannot be reached or set up.
        """

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

        Streams an async iterable without buffering it whole.

        Raises:
            InvalidKey: ``key`` is not a safe relative key.
            KeyConflict: a path segment of ``key`` is an object (local backend).
            ObjectTooLarge: more than ``max_bytes`` arrived; nothing is left behind.
            StorageUnavailable: the backend failed; nothing is left behind.
        """

    async def put_file(self, key: str, path: Path) -> ObjectInfo:
        """Store the contents of a local file (streamed, multipart on S3).

        Raises:
            InvalidKey, KeyConflict, StorageUnavailable: as ``put``.
        """

    async def get(self, key: str) -> bytes:
        """Return a whole object (small objects only).

        Raises:
            InvalidKey: ``key`` is not a safe relative key.
            ObjectNotFound: no object has that key.
            StorageUnavailable: the backend failed.
        """

    def open_read(self, key: str, chunk_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
        """Stream an object in chunks.

        Raises:
            InvalidKey, StorageUnavailable: as ``get``.
            ObjectNotFound: before the first chunk, when no object has that key.
        """

    async def head(self, key: str) -> ObjectInfo:
        """Return an object's info.

        Raises:
            InvalidKey, ObjectNotFound, StorageUnavailable: as ``get``.
        """

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        """All objects whose key starts with ``prefix``, sorted by key; writes in
        progress are never listed.

        Raises:
            InvalidKey: ``prefix`` is neither empty nor key-like.
            StorageUnavailable: the backend failed.
        """

    async def delete(self, key: str, *, missing_ok: bool = False) -> None:
        """Remove an object.

        Raises:
            InvalidKey: ``key`` is not a safe relative key.
            ObjectNotFound: no object has that key, unless ``missing_ok``.
            StorageUnavailable: the backend failed.
        """

    async def probe(self) -> None:
        """One cheap request, never retried, bounded by a short timeout: does the
        backend work right now? For /health.

        Raises:
            StorageUnavailable: it does not (a subclass says why: throttled, access denied).
        """

    async def abort_stale_uploads(
        self, started_before: dt.datetime, prefixes: Sequence[str]
    ) -> builtins.list[str]:
        """Abort writes in progress under ``prefixes`` that started before
        ``started_before``: what a process that died mid-write left (S3: incomplete
        multipart uploads; local: temp files). Returns the keys (local: the temp files'
        paths) it aborted; one that could not be aborted is logged and left for the next
        sweep.

        Raises:
            StorageUnavailable: listing the writes failed.
        """


@dataclass(frozen=True)
class DuckDBGrant:
    """What DuckDB may read of a store, and how: issued by the backend itself, so the
    query module needs neither storage's settings nor its credentials (ADR 0013)."""

    root: str
    """Where every key lives, as DuckDB addresses it: ``/abs/root/`` or ``s3://bucket/``."""
    read_prefixes: tuple[str, ...]
    """The key prefixes SQL may read (``allowed_directories``)."""
    secret_sql: str = field(default="", repr=False)
    """``CREATE SECRET`` DDL DuckDB needs to reach the store; empty for local files.
    It holds credentials: never log it or put it in an error."""
    settings: tuple[tuple[str, int | float | bool], ...] = ()
    """DuckDB settings to reach the store with (httpfs's retries and timeouts, from
    the retry budget of ADR 0015); none for local files."""

    @property
    def read_roots(self) -> list[str]:
        """The locations SQL may read, as DuckDB addresses them."""
        return [self.root + prefix for prefix in self.read_prefixes]

    def address(self, key: str) -> str:
        """How DuckDB addresses the object ``key``. Raises ``InvalidKey``."""
        return self.root + validate_key(key)


@dataclass(frozen=True)
class FileIOGrant:
    """What a table format library (pyiceberg's FileIO) needs to read and write the
    store's files directly: issued by the backend, with the secrets provider's
    credentials, never the config file's (ADR 0014)."""

    root: str
    """Where every key lives, as a file URI: ``/abs/root/`` or ``s3://bucket/``."""
    properties: dict[str, str] = field(default_factory=dict, repr=False)
    """FileIO properties (``s3.endpoint``, ``s3.access-key-id`` ...): hold credentials."""

    def location(self, key: str) -> str:
        """The URI of the object ``key``. Raises ``InvalidKey``."""
        return self.root + validate_key(key)

    def key(self, location: str) -> str | None:
        """The key of a file URI under the root, else None (``file://`` is accepted)."""
        path = location.removeprefix("file://") if self.root.startswith("/") else location
        if not path.startswith(self.root):
            return None
        return path[len(self.root) :]


@runtime_checkable
class GrantsDuckDBAccess(Protocol):
    """A backend DuckDB and pyiceberg can reach directly (both of ours can)."""

    def duckdb_grant(self, read_prefixes: Sequence[str]) -> DuckDBGrant:
        """A grant to read the keys under ``read_prefixes``. May read the secrets
        provider (blocking: call it off the event loop once running).

        Raises:
            SecretsError: the secrets file exists but cannot be read.
        """

    def fileio_grant(self) -> FileIOGrant:
        """Direct file access for a table format library. May read the secrets provider
        (blocking: call it off the event loop once running).

        Raises:
            SecretsError: the secrets file exists but cannot be read.
        """
