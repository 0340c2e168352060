"""The Catalog contract: what every implementation does, whatever stores its manifests.

Written once against the protocol (lakehouse/catalog/interface.py) and run over
every implementation by the ``catalog_backend`` fixture (tests/contracts/conftest.py):
ManifestCatalog over the local store and over S3 on the real moto server.
What only ManifestCatalog does with its manifest files is tested beside it
(tests/integration/test_manifest_catalog.py); the HTTP routes in
tests/integration/test_catalog.py.
"""

from __future__ import annotations

import asyncio

import pytest

from lakehouse.catalog import (
    Catalog,
    Column,
    InvalidRegistration,
    SchemaConflict,
)
from tests.support.backends import CatalogBackend
from tests.support.catalog import COLUMNS, put_objects, register_request

OTHER_COLUMNS = [Column("id", "VARCHAR"), Column("zip", "VARCHAR")]


# -- restart, concurrency, objects outside datasets/ (from the old test_catalog_service.py)


async def test_reload_gives_identical_manifests_and_version(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    assert isinstance(catalog, Catalog)
    objects = await put_objects(store, "datasets/a/1.parquet", "datasets/b/1.parquet")
    await catalog.register(register_request("a", objects[:1]))
    await catalog.register(register_request("B", objects[1:], [Column("ü", "TIMESTAMP")], rows=0))

    reloaded = await catalog_backend.reopen()
    assert await reloaded.list() == await catalog.list()
    assert reloaded.version() == catalog.version()
    assert (await reloaded.get("b")).schema == [Column("ü", "TIMESTAMP")]


async def test_concurrent_registers_of_one_name_are_serialized(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    objects = await put_objects(store, *(f"datasets/race/{i}.parquet" for i in range(10)))
    # Half offer one schema, half another; exactly one creates the dataset.
    columns = [COLUMNS, [Column("other", "DOUBLE")]]
    results = await asyncio.gather(
        *(
            catalog.register(register_request("race", [key], columns[i % 2]))
            for i, key in enumerate(objects)
        ),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException) and r.created]
    assert len(created) == 1
    winner = created[0].manifest
    for result in results:
        if isinstance(result, BaseException):
            assert isinstance(result, SchemaConflict)
        else:
            assert result.manifest.dataset_id == winner.dataset_id
    stored = await catalog_backend.reopen()
    assert await stored.list() == await catalog.list()


@pytest.mark.parametrize("key", ["elsewhere/1.parquet", "_catalog/manifests/x.parquet"])
async def test_register_refuses_objects_outside_datasets(
    catalog_backend: CatalogBackend, key: str
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    await store.put(key, b"PAR1")
    with pytest.raises(InvalidRegistration, match="not under 'datasets/'"):
        await catalog.register(register_request("x", [key]))
