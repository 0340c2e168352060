"""BucketRegistry: the named object stores an app knows.

G0 has exactly one, ``primary``; later phases (multi-bucket federation) add
more names without changing the callers that ask for ``primary``.
"""

from __future__ import annotations

import msgspec

from lakehouse.errors import NotFound
from lakehouse.storage.interface import ObjectStore

PRIMARY = "primary"


class UnknownBucket(NotFound):
    code = "unknown_bucket"


class BucketInfo(msgspec.Struct, frozen=True):
    """What may be shown about a bucket (e.g. on /health): never credentials."""

    name: str
    backend: str
    bucket: str
    """The S3 bucket name; empty for the local backend (its root path is not shown)."""


class BucketRegistry:
    """Named stores, started and closed together, in registration order."""

    def __init__(self) -> None:
        self._stores: dict[str, tuple[ObjectStore, BucketInfo]] = {}

    def __repr__(self) -> str:
        return f"BucketRegistry({list(self._stores)!r})"

    def register(self, name: str, store: ObjectStore, *, backend: str, bucket: str = "") -> None:
        """Add a store under ``name``. Raises ``ValueError`` if the name is taken."""
        if name in self._stores:
            raise ValueError(f"bucket {name!r} is registered already")
        self._stores[name] = (store, BucketInfo(name=name, backend=backend, bucket=bucket))

    def get(self, name: str = PRIMARY) -> ObjectStore:
        """The store registered as ``name``. Raises ``UnknownBucket``."""
        return self._entry(name)[0]

    def info(self, name: str = PRIMARY) -> BucketInfo:
        """What may be shown about ``name``. Raises ``UnknownBucket``."""
        return self._entry(name)[1]

    def _entry(self, name: str) -> tuple[ObjectStore, BucketInfo]:
        try:
            return self._stores[name]
        except KeyError:
            raise UnknownBucket(f"no bucket named {name!r}") from None

    async def start(self) -> None:
        """Start every store, in registration order.

        Raises:
            StorageUnavailable: a backend cannot be reached or set up.
        """
        for store, _ in self._stores.values():
            await store.start()

    async def close(self) -> None:
        """Close every store, in reverse order, even when one fails to close."""
        failure: BaseException | None = None
        for store, _ in reversed(list(self._stores.values())):
            try:
                await store.close()
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
