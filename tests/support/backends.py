"""Implementations under test for the contract suites (tests/contracts/), as values
the suites receive from their parametrised fixtures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import msgspec
import pytest

from lakehouse.catalog import Catalog, IcebergCatalog, database_url
from lakehouse.config import MiB, Settings
from lakehouse.layout import scratch_dir
from lakehouse.storage import GrantsDuckDBAccess, ObjectStore
from tests.support.settings import make_settings
from tests.support.storage import FlakyStore, leftovers, new_store


@dataclass
class StoreBackend:
    """One started ObjectStore implementation and the settings its backend lives at."""

    name: str
    settings: Settings
    store: ObjectStore

    async def leftovers(self, prefix: str = "") -> list[str]:
        """Everything the backend holds under ``prefix``: objects, temp files,
        unfinished multipart uploads (``upload:<key>``)."""
        return await leftovers(self.settings, prefix)


@dataclass
class CatalogBackend:
    """One loaded Catalog implementation over a started ObjectStore of its own."""

    name: str
    store: ObjectStore
    settings: Settings
    make_opener: Callable[[Settings], Callable[[ObjectStore], Catalog]]
    catalog: Catalog = field(init=False)
    opened: list[Catalog] = field(default_factory=list)

    async def reopen(self, settings: Settings | None = None) -> Catalog:
        """A new catalog over the same storage and catalog database, loaded: what a
        restart (or another replica) sees; ``settings`` replaces the backend's."""
        catalog = self.make_opener(settings or self.settings)(self.store)
        self.opened.append(catalog)
        await catalog.load()
        return catalog

    async def close(self) -> None:
        for catalog in self.opened:
            await catalog.close()


def iceberg_catalog_opener(settings: Settings) -> Callable[[ObjectStore], Catalog]:
    """Opens IcebergCatalogs over a store, all sharing one SQLite catalog database
    under the settings' data directory (as the app does)."""
    data_dir = settings.storage.data_dir
    catalog_settings = msgspec.structs.replace(settings.catalog, refresh_seconds=0.05)

    def open_catalog(store: ObjectStore) -> Catalog:
        assert isinstance(store, GrantsDuckDBAccess)
        url = partial(database_url, "", data_dir, lambda: None)
        return IcebergCatalog(
            store, store.fileio_grant, url, catalog_settings, scratch_dir(data_dir, "catalog")
        )

    return open_catalog


async def open_backend(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[Settings, ObjectStore]:
    """Start an ObjectStore of ``kind`` (``local``, ``s3``, ``flaky-local``) over
    storage of its own under ``tmp_path``; return it with its settings."""
    backend = "s3" if kind == "s3" else "local"
    moto = request.getfixturevalue("moto") if backend == "s3" else None
    settings = make_settings(backend, tmp_path, moto)
    # The smallest part S3 allows: objects over 5 MiB take several parts.
    settings.storage.s3.multipart_chunk_bytes = 5 * MiB
    store = FlakyStore(settings.storage.data_dir) if kind == "flaky-local" else new_store(settings)
    await store.start()
    return settings, store
