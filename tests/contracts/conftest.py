"""Every implementation of each protocol, for the contract suites.

Each suite is written once against the protocol and runs over every
implementation through one parametrised fixture (like Litestar's store tests
and fsspec's abstract suites); a new implementation joins by adding a param.

- ``store_backend``: each ObjectStore, started: ``local`` (a directory under
  tmp_path), ``s3`` (a bucket of its own on the real moto server) and
  ``flaky-local`` (the failure-injecting store unit tests use, with its
  failures off). It also shows what the backend really holds, temp files and
  unfinished multipart uploads included (``leftovers``). ``store`` is its store.
- ``catalog_backend``: each Catalog, loaded, over an ObjectStore of its own:
  IcebergCatalog (SQLite catalog database) on ``local`` and on ``s3``.
  ``reopen()`` gives a new instance over the same storage and database, as
  after a restart (or another replica), optionally with other settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from lakehouse.storage import ObjectStore
from tests.support.backends import (
    CatalogBackend,
    StoreBackend,
    iceberg_catalog_opener,
    open_backend,
)

OBJECT_STORES = ["local", "s3", "flaky-local"]
CATALOGS: dict[str, tuple[Callable[..., Any], str]] = {
    "iceberg-local": (iceberg_catalog_opener, "local"),
    "iceberg-s3": (iceberg_catalog_opener, "s3"),
}


@pytest.fixture(params=OBJECT_STORES)
async def store_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreBackend]:
    settings, store = await open_backend(request.param, request, tmp_path)
    yield StoreBackend(request.param, settings, store)
    await store.close()


@pytest.fixture
def store(store_backend: StoreBackend) -> ObjectStore:
    return store_backend.store


@pytest.fixture(params=list(CATALOGS))
async def catalog_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[CatalogBackend]:
    make_opener, store_kind = CATALOGS[request.param]
    settings, store = await open_backend(store_kind, request, tmp_path)
    backend = CatalogBackend(request.param, store, settings, make_opener)
    backend.catalog = await backend.reopen()
    yield backend
    await backend.close()
    await store.close()
