"""ManifestCatalog units: the schema fingerprint definition, and failed manifest
writes (a local store made to fail) that leave the previous state intact."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from lakehouse.catalog import (
    Column,
    DatasetNotFound,
    ManifestCatalog,
    schema_fingerprint,
)
from lakehouse.layout import MANIFEST_PREFIX, manifest_key
from lakehouse.storage import StorageUnavailable
from tests.support.catalog import put_objects, register_request
from tests.support.storage import FlakyStore


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


async def test_failed_manifest_write_leaves_previous_manifest_and_index(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "data")
    await store.start()
    catalog = ManifestCatalog(store)
    await catalog.load()
    old_objects = await put_objects(store, "datasets/w/old.parquet")
    new_objects = await put_objects(store, "datasets/w/new.parquet", "datasets/x/1.parquet")
    before = (await catalog.register(register_request("w", old_objects))).manifest
    version = await catalog.version()
    stored_bytes = await store.get(manifest_key("w"))

    store.failing = True
    with pytest.raises(StorageUnavailable):
        await catalog.register(register_request("w", new_objects[:1], rows=99))
    with pytest.raises(StorageUnavailable):
        await catalog.register(register_request("x", new_objects[1:]))
    with pytest.raises(StorageUnavailable):
        await catalog.delete("w")

    # Index, version and storage are exactly as before the failures.
    assert await catalog.get("w") == before
    with pytest.raises(DatasetNotFound):
        await catalog.get("x")
    assert (await catalog.version()) == version
    assert await store.get(manifest_key("w")) == stored_bytes
    assert [i.key for i in await store.list(MANIFEST_PREFIX)] == [manifest_key("w")]

    # Once storage recovers the same register goes through, and a restart sees it.
    store.failing = False
    after = await catalog.register(register_request("w", new_objects[:1], rows=99))
    assert after.manifest.dataset_id == before.dataset_id
    assert after.replaced_objects == old_objects
    reloaded = ManifestCatalog(store)
    await reloaded.load()
    assert await reloaded.get("W") == after.manifest
