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
import itertools

import pytest

from lakehouse.catalog import (
    Catalog,
    Column,
    DatasetNotFound,
    InvalidDatasetName,
    InvalidRegistration,
    MissingObjects,
    RegisterRequest,
    SchemaConflict,
    schema_fingerprint,
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
    assert (await reloaded.version()) == (await catalog.version())
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


# -- register ---------------------------------------------------------------------------


async def test_register_creates_a_dataset(catalog_backend: CatalogBackend) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    objects = await put_objects(store, "datasets/workers/a.parquet", "datasets/workers/b.parquet")
    registration = await catalog.register(register_request("Workers", objects, rows=42))
    assert registration.created is True
    assert registration.replaced_objects == []
    manifest = registration.manifest
    assert manifest.name == "Workers"
    assert manifest.schema == COLUMNS
    assert manifest.schema_fingerprint == schema_fingerprint(COLUMNS)
    assert manifest.objects == objects
    assert manifest.row_count == 42
    assert manifest.dataset_id
    assert manifest.created_at == manifest.updated_at
    assert manifest.created_at.tzinfo is not None
    assert await catalog.get("Workers") == manifest
    assert await catalog.list() == [manifest]


async def test_register_again_with_the_same_schema_replaces_the_objects(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    old = await put_objects(store, *(f"datasets/w/{i}.parquet" for i in range(3)))
    [new] = await put_objects(store, "datasets/w/new.parquet")
    first = (await catalog.register(register_request("w", old))).manifest

    again = await catalog.register(register_request("W", [old[1], new], rows=7))
    assert again.created is False
    assert again.replaced_objects == [old[0], old[2]]  # the old ones the new manifest drops
    manifest = again.manifest
    assert manifest.dataset_id == first.dataset_id
    assert manifest.name == "w"  # the name as first registered
    assert manifest.objects == [old[1], new]
    assert manifest.row_count == 7
    assert manifest.created_at == first.created_at
    assert manifest.updated_at > first.updated_at
    assert await catalog.get("w") == manifest
    assert await catalog.list() == [manifest]
    # The same objects once more: still an update, and nothing is replaced.
    same = await catalog.register(register_request("w", [old[1], new], rows=7))
    assert (same.created, same.replaced_objects) == (False, [])
    assert same.manifest.updated_at > manifest.updated_at


async def test_another_schema_is_a_schema_conflict_showing_both(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    objects = await put_objects(store, "datasets/s/1.parquet")
    existing = (await catalog.register(register_request("s", objects))).manifest
    version = await catalog.version()
    with pytest.raises(SchemaConflict) as caught:
        await catalog.register(register_request("S", objects, OTHER_COLUMNS))
    details = caught.value.details
    assert caught.value.status_code == 409
    assert details["existing"] == {
        "schema_fingerprint": schema_fingerprint(COLUMNS),
        "schema": [{"name": c.name, "type": c.type} for c in COLUMNS],
    }
    assert details["offered"] == {
        "schema_fingerprint": schema_fingerprint(OTHER_COLUMNS),
        "schema": [{"name": c.name, "type": c.type} for c in OTHER_COLUMNS],
    }
    # The conflict changed nothing, here or after a restart.
    assert await catalog.get("s") == existing
    assert (await catalog.version()) == version
    assert await (await catalog_backend.reopen()).get("s") == existing


async def test_missing_objects_are_refused_naming_them(catalog_backend: CatalogBackend) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    [present] = await put_objects(store, "datasets/m/here.parquet")
    absent = ["datasets/m/gone-1.parquet", "datasets/m/gone-2.parquet"]
    with pytest.raises(MissingObjects) as caught:
        await catalog.register(register_request("m", [absent[0], present, absent[1]]))
    assert sorted(caught.value.details["missing"]) == absent
    assert await catalog.list() == []
    with pytest.raises(DatasetNotFound):
        await catalog.get("m")


@pytest.mark.parametrize(
    "name",
    ["", "1abc", "a-b", "a b", "a.b", "../etc", "a" * 129, "café", "a\n", "über", "x;drop"],
)
async def test_invalid_dataset_names_are_refused(
    catalog_backend: CatalogBackend, name: str
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    objects = await put_objects(store, "datasets/n/1.parquet")
    with pytest.raises(InvalidDatasetName) as caught:
        await catalog.register(register_request(name, objects))
    assert caught.value.details["name"] == name
    with pytest.raises(InvalidDatasetName):
        await catalog.get(name)
    with pytest.raises(InvalidDatasetName):
        await catalog.delete(name)
    assert await catalog.list() == []


async def test_names_at_the_limits_are_accepted(catalog_backend: CatalogBackend) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    objects = await put_objects(store, "datasets/n/1.parquet")
    for name in ("_", "A_1", "a" * 128, "z9"):
        assert (await catalog.register(register_request(name, objects))).created, name
    assert [m.name for m in await catalog.list()] == ["_", "A_1", "a" * 128, "z9"]


@pytest.mark.parametrize(
    ("columns", "objects", "rows"),
    [
        (COLUMNS, ["datasets/r/1.parquet"], -1),
        ([], ["datasets/r/1.parquet"], 1),
        ([Column("", "BIGINT")], ["datasets/r/1.parquet"], 1),
        ([Column("a", "")], ["datasets/r/1.parquet"], 1),
        (COLUMNS, ["datasets/r/1.parquet", "datasets/r/1.parquet"], 1),
        (COLUMNS, ["datasets/../escape"], 1),
        (COLUMNS, ["datasets//r"], 1),
    ],
    ids=["negative-rows", "no-columns", "unnamed-column", "untyped-column", "object-twice",
         "dot-dot-key", "empty-segment"],
)  # fmt: skip
async def test_nonsensical_registrations_are_invalid_registration(
    catalog_backend: CatalogBackend, columns: list[Column], objects: list[str], rows: int
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    await put_objects(store, "datasets/r/1.parquet")
    with pytest.raises(InvalidRegistration):
        await catalog.register(
            RegisterRequest(name="r", schema=columns, objects=objects, row_count=rows)
        )
    assert await catalog.list() == []


async def test_a_dataset_without_objects_can_be_registered(
    catalog_backend: CatalogBackend,
) -> None:
    """An empty dataset (a header-only CSV) has columns and no objects."""
    registration = await catalog_backend.catalog.register(register_request("e", [], rows=0))
    assert (registration.created, registration.manifest.objects) == (True, [])
    assert (await catalog_backend.catalog.get("E")).row_count == 0


# -- reads -----------------------------------------------------------------------------


async def test_get_is_case_insensitive_and_list_is_sorted_by_name(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    objects = await put_objects(store, "datasets/x/1.parquet")
    for name in ("Sales", "b", "A_1", "_"):
        await catalog.register(register_request(name, objects))
    for spelling in ("SALES", "sales", "sAlEs", "Sales"):
        assert (await catalog.get(spelling)).name == "Sales"
    assert [m.name for m in await catalog.list()] == ["_", "A_1", "b", "Sales"]


async def test_unknown_names_are_dataset_not_found(catalog_backend: CatalogBackend) -> None:
    catalog = catalog_backend.catalog
    with pytest.raises(DatasetNotFound) as caught:
        await catalog.get("nobody")
    assert caught.value.status_code == 404
    with pytest.raises(DatasetNotFound):
        await catalog.delete("nobody")
    assert await catalog.list() == []


# -- delete ----------------------------------------------------------------------------


async def test_delete_removes_the_manifest_but_not_the_data(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    objects = await put_objects(store, "datasets/d/1.parquet")
    kept = (await catalog.register(register_request("keep", objects))).manifest
    gone = (await catalog.register(register_request("Gone", objects))).manifest

    assert await catalog.delete("GONE") == gone
    with pytest.raises(DatasetNotFound):
        await catalog.get("gone")
    with pytest.raises(DatasetNotFound):
        await catalog.delete("gone")
    assert await catalog.list() == [kept]
    # The data objects are the caller's to delete.
    assert [info.key for info in await store.list("datasets/")] == objects
    # The name is free again: a register creates a new dataset.
    again = await catalog.register(register_request("gone", objects, OTHER_COLUMNS))
    assert again.created is True
    assert again.manifest.dataset_id != gone.dataset_id


# -- version ---------------------------------------------------------------------------


async def test_version_changes_on_every_register_and_delete_and_only_then(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    objects = await put_objects(store, "datasets/v/1.parquet")
    seen = [(await catalog.version())]

    async def unchanged_by_reads_and_refusals() -> None:
        before = await catalog.version()
        await catalog.list()
        await catalog.get("v")
        refusals = [
            (catalog.get("nope"), DatasetNotFound),
            (catalog.delete("nope"), DatasetNotFound),
            (catalog.register(register_request("v", objects, OTHER_COLUMNS)), SchemaConflict),
            (catalog.register(register_request("1v", objects)), InvalidDatasetName),
            (catalog.register(register_request("v", ["datasets/v/no.parquet"])), MissingObjects),
            (catalog.register(register_request("v", objects, rows=-1)), InvalidRegistration),
        ]
        for call, error in refusals:
            with pytest.raises(error):
                await call
        assert (await catalog.version()) == before

    await catalog.register(register_request("v", objects))  # create
    seen.append(await catalog.version())
    await unchanged_by_reads_and_refusals()
    await catalog.register(register_request("v", objects))  # update, same objects
    seen.append(await catalog.version())
    await unchanged_by_reads_and_refusals()
    await catalog.register(register_request("other", objects))  # another dataset
    seen.append(await catalog.version())
    await catalog.delete("other")
    seen.append(await catalog.version())
    # Each register and delete gave a version unlike the one before it.
    assert all(before != after for before, after in itertools.pairwise(seen)), seen


# -- load (a restart) ------------------------------------------------------------------


async def test_a_restart_sees_every_register_and_delete(catalog_backend: CatalogBackend) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    objects = await put_objects(store, "datasets/a/1.parquet", "datasets/a/2.parquet")
    await catalog.register(register_request("Alpha", objects[:1]))
    await catalog.register(register_request("beta", objects[:1]))
    updated = (await catalog.register(register_request("ALPHA", objects[1:], rows=9))).manifest
    await catalog.delete("Beta")

    restarted = await catalog_backend.reopen()
    assert await restarted.list() == [updated]
    assert await restarted.get("alpha") == updated
    with pytest.raises(DatasetNotFound):
        await restarted.get("beta")
    assert (await restarted.version()) == (await catalog.version())
    # The restarted instance carries on: same dataset, replaced objects reported.
    again = await restarted.register(register_request("alpha", objects[:1]))
    assert again.manifest.dataset_id == updated.dataset_id
    assert again.replaced_objects == objects[1:]


async def test_load_of_empty_storage_is_an_empty_catalog(catalog_backend: CatalogBackend) -> None:
    fresh = await catalog_backend.reopen()
    assert isinstance(fresh, Catalog)
    assert await fresh.list() == []
    assert (await fresh.version()) == (await catalog_backend.catalog.version())
