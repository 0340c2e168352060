"""ManifestCatalog directly: fingerprint definition, reload, serialization, failed writes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterable
from pathlib import Path

import pytest

from lakehouse.catalog import (
    MANIFEST_PREFIX,
    Catalog,
    Column,
    DatasetNotFound,
    ManifestCatalog,
    RegisterRequest,
    SchemaConflict,
    manifest_key,
    schema_fingerprint,
)
from lakehouse.storage import LocalObjectStore, ObjectInfo, ObjectStore, StorageUnavailable
from tests.support.catalog import put_objects

COLUMNS = [Column("id", "BIGINT"), Column("zip", "VARCHAR")]


def request(name: str, objects: list[str], columns: list[Column] = COLUMNS, rows: int = 3):
    return RegisterRequest(name=name, schema=columns, objects=objects, row_count=rows)


# -- fingerprint -----------------------------------------------------------------


def test_fingerprint_is_sha256_of_the_json_pairs() -> None:
    """The documented definition (ADR 0003), so another implementation can reproduce it."""
    columns = [Column("id", "BIGINT"), Column('naïve "x"', "DECIMAL(38,0)")]
    expected_bytes = json.dumps(
        [[c.name, c.type] for c in columns], separators=(",", ":"), ensure_ascii=False
    ).encode()
    assert schema_fingerprint(columns) == hashlib.sha256(expected_bytes).hexdigest()


def test_fingerprint_depends_on_order_names_and_types_unambiguously() -> None:
    base = schema_fingerprint([Column("a", "BIGINT"), Column("b", "VARCHAR")])
    assert base == schema_fingerprint([Column("a", "BIGINT"), Column("b", "VARCHAR")])
    assert base != schema_fingerprint([Column("b", "VARCHAR"), Column("a", "BIGINT")])
    assert base != schema_fingerprint([Column("a", "BIGINT"), Column("b", "DOUBLE")])
    assert base != schema_fingerprint([Column("A", "BIGINT"), Column("b", "VARCHAR")])
    # Separators inside names cannot make two different schemas collide.
    assert schema_fingerprint([Column("a,b", "c")]) != schema_fingerprint([Column("a", "b,c")])
    assert schema_fingerprint([Column("a", "b"), Column("c", "d")]) != schema_fingerprint(
        [Column('a","b"],["c', "d")]
    )


# -- reload and serialization ------------------------------------------------------


async def test_reload_gives_identical_manifests_and_version(store: ObjectStore) -> None:
    catalog = ManifestCatalog(store)
    await catalog.load()
    assert isinstance(catalog, Catalog)
    objects = await put_objects(store, "datasets/a/1.parquet", "datasets/b/1.parquet")
    await catalog.register(request("a", objects[:1]))
    await catalog.register(request("B", objects[1:], [Column("ü", "TIMESTAMP")], rows=0))

    reloaded = ManifestCatalog(store)
    await reloaded.load()
    assert await reloaded.list() == await catalog.list()
    assert reloaded.version() == catalog.version()
    assert (await reloaded.get("b")).schema == [Column("ü", "TIMESTAMP")]


async def test_concurrent_registers_of_one_name_are_serialized(store: ObjectStore) -> None:
    catalog = ManifestCatalog(store)
    await catalog.load()
    objects = await put_objects(store, *(f"datasets/race/{i}.parquet" for i in range(10)))
    # Half offer one schema, half another; exactly one creates the dataset.
    columns = [COLUMNS, [Column("other", "DOUBLE")]]
    results = await asyncio.gather(
        *(
            catalog.register(request("race", [key], columns[i % 2]))
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
    stored = ManifestCatalog(store)
    await stored.load()
    assert await stored.list() == await catalog.list()


async def test_load_skips_unreadable_and_misplaced_manifests(
    store: ObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    catalog = ManifestCatalog(store)
    await catalog.load()
    await catalog.register(request("good", await put_objects(store, "datasets/g.parquet")))
    good_bytes = await store.get(manifest_key("good"))
    await store.put(f"{MANIFEST_PREFIX}copy.parquet", good_bytes)  # claims to be "good"
    await store.put(f"{MANIFEST_PREFIX}empty.parquet", b"")
    await store.put(f"{MANIFEST_PREFIX}notes.txt", b"left by a human")

    with caplog.at_level(logging.WARNING, logger="lakehouse.catalog"):
        reloaded = ManifestCatalog(store)
        await reloaded.load()
    assert [m.name for m in await reloaded.list()] == ["good"]
    logged_keys = {getattr(r, "key", None) for r in caplog.records}
    assert {
        f"{MANIFEST_PREFIX}copy.parquet",
        f"{MANIFEST_PREFIX}empty.parquet",
        f"{MANIFEST_PREFIX}notes.txt",
    } <= logged_keys


async def test_manifest_pointing_outside_datasets_is_skipped_and_its_name_remembered(
    store: ObjectStore,
) -> None:
    """A manifest whose objects are not under datasets/ (the only place queries may
    read) is unreadable: skipped at load, and reported so the sweep spares its data."""
    import msgspec

    from lakehouse.catalog._codec import encode_manifest

    catalog = ManifestCatalog(store)
    await catalog.load()
    registration = await catalog.register(
        request("evil", await put_objects(store, "datasets/evil/1.parquet"))
    )
    tampered = msgspec.structs.replace(
        registration.manifest, objects=["a/../../etc/passwd", "_catalog/x.parquet"]
    )
    await store.put(manifest_key("evil"), encode_manifest(tampered))
    reloaded = ManifestCatalog(store)
    await reloaded.load()
    assert await reloaded.list() == []
    assert reloaded.unreadable() == ["evil"]
    # Registering the name again replaces the bad file: no longer unreadable.
    await reloaded.register(request("evil", ["datasets/evil/1.parquet"]))
    assert reloaded.unreadable() == []


@pytest.mark.parametrize("key", ["elsewhere/1.parquet", "_catalog/manifests/x.parquet"])
async def test_register_refuses_objects_outside_datasets(store: ObjectStore, key: str) -> None:
    from lakehouse.catalog import InvalidRegistration

    catalog = ManifestCatalog(store)
    await catalog.load()
    await store.put(key, b"PAR1")
    with pytest.raises(InvalidRegistration, match="not under 'datasets/'"):
        await catalog.register(request("x", [key]))


# -- failed writes (local only: a real store whose writes we can make fail) --------


class FlakyStore(LocalObjectStore):
    """A LocalObjectStore whose manifest writes/deletes fail while ``failing`` is set."""

    failing = False

    async def put(
        self, key: str, data: bytes | AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> ObjectInfo:
        if self.failing and key.startswith(MANIFEST_PREFIX):
            raise StorageUnavailable("disk on fire (test)")
        return await super().put(key, data, max_bytes=max_bytes)

    async def delete(self, key: str, *, missing_ok: bool = False) -> None:
        if self.failing and key.startswith(MANIFEST_PREFIX):
            raise StorageUnavailable("disk on fire (test)")
        await super().delete(key, missing_ok=missing_ok)


async def test_failed_manifest_write_leaves_previous_manifest_and_index(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "data")
    await store.start()
    catalog = ManifestCatalog(store)
    await catalog.load()
    old_objects = await put_objects(store, "datasets/w/old.parquet")
    new_objects = await put_objects(store, "datasets/w/new.parquet", "datasets/x/1.parquet")
    before = (await catalog.register(request("w", old_objects))).manifest
    version = catalog.version()
    stored_bytes = await store.get(manifest_key("w"))

    store.failing = True
    with pytest.raises(StorageUnavailable):
        await catalog.register(request("w", new_objects[:1], rows=99))
    with pytest.raises(StorageUnavailable):
        await catalog.register(request("x", new_objects[1:]))
    with pytest.raises(StorageUnavailable):
        await catalog.delete("w")

    # Index, version and storage are exactly as before the failures.
    assert await catalog.get("w") == before
    with pytest.raises(DatasetNotFound):
        await catalog.get("x")
    assert catalog.version() == version
    assert await store.get(manifest_key("w")) == stored_bytes
    assert [i.key for i in await store.list(MANIFEST_PREFIX)] == [manifest_key("w")]

    # Once storage recovers the same register goes through, and a restart sees it.
    store.failing = False
    after = await catalog.register(request("w", new_objects[:1], rows=99))
    assert after.manifest.dataset_id == before.dataset_id
    assert after.replaced_objects == old_objects
    reloaded = ManifestCatalog(store)
    await reloaded.load()
    assert await reloaded.get("W") == after.manifest
