"""Catalog units: the schema fingerprint definition, and an IcebergCatalog whose store
or catalog database fails: the error is a 502 or 503 (never a stray exception, which the
app would answer 500), the previous state is intact, and the catalog recovers."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
import pytest

from lakehouse.catalog import (
    CatalogUnavailable,
    Column,
    CommitMode,
    IcebergCatalog,
    Manifest,
    schema_fingerprint,
)
from lakehouse.catalog._codec import encode_manifest
from lakehouse.config import Settings
from lakehouse.layout import MANIFEST_PREFIX, data_key, manifest_key, scratch_dir
from lakehouse.storage import StorageUnavailable
from tests.support.catalog import COLUMNS, ROWS, commit_file, commit_request, put_objects
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


# -- a failing store or catalog database --------------------------------------------------


@pytest.fixture
async def store(local_settings: Settings) -> AsyncIterator[FlakyStore]:
    flaky = FlakyStore(local_settings.storage.data_dir)
    await flaky.start()
    yield flaky
    await flaky.close()


@pytest.fixture
async def open_catalog(
    local_settings: Settings, store: FlakyStore, tmp_path: Path
) -> AsyncIterator[Callable[[str], IcebergCatalog]]:
    """IcebergCatalogs over ``store`` and the catalog database at the URL given
    (SQLite in tmp_path, giving up on a lock after 0.2 s, by default)."""
    opened: list[IcebergCatalog] = []
    data_dir = local_settings.storage.data_dir

    def open_catalog(
        url: str = f"sqlite:///{tmp_path / 'catalog.db'}?timeout=0.2",
    ) -> IcebergCatalog:
        catalog = IcebergCatalog(
            store,
            store.fileio_grant,
            lambda: url,
            msgspec.structs.replace(local_settings.catalog, refresh_seconds=0.05),
            scratch_dir(data_dir, "catalog"),
        )
        opened.append(catalog)
        return catalog

    yield open_catalog
    for catalog in opened:
        await catalog.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("where", ["postgres-closed-port", "sqlite-under-a-file"])
async def test_an_unreachable_catalog_database_is_catalog_unavailable_at_load(
    open_catalog: Callable[[str], IcebergCatalog], store: FlakyStore, tmp_path: Path, where: str
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    url = {
        "postgres-closed-port": f"postgresql+psycopg://lh:s3cr3t-pw@127.0.0.1:{closed_port()}/lh",
        "sqlite-under-a-file": f"sqlite:///{tmp_path / 'a-file' / 'catalog.db'}",
    }[where]
    catalog = open_catalog(url)
    with pytest.raises(CatalogUnavailable) as caught:
        await catalog.load()
    assert caught.value.status_code == 502
    assert "s3cr3t-pw" not in str(caught.value)
    # Nothing can be written through it, and it says so the same way.
    with pytest.raises(CatalogUnavailable):
        await catalog.commit(commit_request("w", []))
    # The same storage with a working database is a working catalog.
    working = open_catalog()  # type: ignore[call-arg]
    await working.load()
    assert (await commit_file(working, store, "w")).manifest.version == 1


async def test_a_failing_store_leaves_the_dataset_as_it_was_and_it_recovers(
    open_catalog: Callable[[], IcebergCatalog], store: FlakyStore
) -> None:
    catalog = open_catalog()
    await catalog.load()
    await commit_file(catalog, store, "w", CommitMode.CREATE)
    before = (await commit_file(catalog, store, "w", CommitMode.APPEND, start=10)).manifest
    history = await catalog.history("w")
    version = await catalog.version()
    [new] = await put_objects(store, data_key("w"), start=20)

    store.failing = True
    for call in (
        catalog.commit(commit_request("w", [new], CommitMode.APPEND)),
        catalog.commit(commit_request("x", [new], CommitMode.CREATE)),
        catalog.compact("w"),  # storing the merged file fails
    ):
        with pytest.raises(StorageUnavailable) as caught:
            await call
        assert caught.value.status_code == 503
    assert await catalog.get("w") == before
    assert await catalog.history("w") == history
    assert [m.name for m in await catalog.list()] == ["w"]
    assert (await catalog.version()) == version
    store.failing = False
    # The merged file of the failed compaction was not left behind as an object.
    assert sorted(i.key for i in await store.list("datasets/w/data/")) == sorted(
        [*before.objects, new]
    )

    # Once the store is back, the same requests go through, and a restart sees them.
    after = await catalog.commit(commit_request("w", [new], CommitMode.APPEND))
    assert (after.manifest.version, after.manifest.row_count) == (3, 3 * ROWS)
    compacted = await catalog.compact("w")
    assert compacted is not None
    assert compacted.manifest.row_count == 3 * ROWS
    restarted = open_catalog()
    await restarted.load()
    assert await restarted.get("w") == compacted.manifest


async def test_a_store_failing_at_load_keeps_the_g0_manifest_for_the_next_start(
    open_catalog: Callable[[], IcebergCatalog], store: FlakyStore
) -> None:
    objects = await put_objects(store, "datasets/g/1.parquet")
    now = dt.datetime.now(dt.UTC)
    manifest = Manifest(
        dataset_id="00000000-0000-0000-0000-000000000001",
        name="g",
        schema_fingerprint=schema_fingerprint(COLUMNS),
        schema=COLUMNS,
        objects=objects,
        row_count=ROWS,
        created_at=now,
        updated_at=now,
    )
    await store.put(manifest_key("g"), encode_manifest(manifest))
    store.failing, store.failing_prefix = True, MANIFEST_PREFIX
    with pytest.raises(StorageUnavailable):
        await open_catalog().load()
    store.failing = False
    assert [i.key for i in await store.list(MANIFEST_PREFIX)] == [manifest_key("g")]
    catalog = open_catalog()
    await catalog.load()
    assert (await catalog.get("g")).objects == objects
    assert await store.list(MANIFEST_PREFIX) == []


@pytest.fixture
def lock_database(tmp_path: Path) -> Callable[[], sqlite3.Connection]:
    """Take SQLite's exclusive lock on the catalog database, as another process
    holding it would: until released, the catalog can neither read nor write it."""

    def lock() -> sqlite3.Connection:
        connection = sqlite3.connect(tmp_path / "catalog.db", isolation_level=None)
        connection.execute("BEGIN EXCLUSIVE")
        return connection

    return lock


async def test_a_failing_catalog_database_leaves_the_dataset_as_it_was_and_it_recovers(
    open_catalog: Callable[[], IcebergCatalog],
    store: FlakyStore,
    lock_database: Callable[[], sqlite3.Connection],
) -> None:
    catalog = open_catalog()
    await catalog.load()
    await commit_file(catalog, store, "w", CommitMode.CREATE)
    before = (await commit_file(catalog, store, "w", CommitMode.APPEND)).manifest
    history = await catalog.history("w")
    version = await catalog.version()
    [new] = await put_objects(store, data_key("w"), start=20)

    lock = lock_database()
    try:
        for call in (
            catalog.commit(commit_request("w", [new], CommitMode.APPEND)),
            catalog.commit(commit_request("x", [new], CommitMode.CREATE)),
            catalog.rollback("w", 1),
        ):
            with pytest.raises(CatalogUnavailable) as caught:
                await call
            assert caught.value.status_code == 502
        # Reads still answer, from what the catalog last saw.
        assert await catalog.get("w") == before
        assert await catalog.history("w") == history
        assert (await catalog.version()) == version
    finally:
        lock.rollback()
        lock.close()

    restarted = open_catalog()
    await restarted.load()
    assert await restarted.get("w") == before
    assert [m.name for m in await restarted.list()] == ["w"]
    after = await catalog.commit(commit_request("w", [new], CommitMode.APPEND))
    assert (after.manifest.version, after.manifest.row_count) == (3, 3 * ROWS)
    assert (await catalog.rollback("w", 1)).manifest.version == 4


async def test_delete_with_a_failing_catalog_database_is_catalog_unavailable(
    open_catalog: Callable[[], IcebergCatalog],
    store: FlakyStore,
    lock_database: Callable[[], sqlite3.Connection],
) -> None:
    catalog = open_catalog()
    await catalog.load()
    before = (await commit_file(catalog, store, "w", CommitMode.CREATE)).manifest
    lock = lock_database()
    try:
        with pytest.raises(CatalogUnavailable):
            await catalog.delete("w")
    finally:
        lock.rollback()
        lock.close()
    assert await catalog.get("w") == before
    await catalog.delete("w")
    assert await catalog.list() == []


async def test_a_storage_error_writing_table_metadata_is_storage_unavailable(
    open_catalog: Callable[[], IcebergCatalog], store: FlakyStore
) -> None:
    catalog = open_catalog()
    await catalog.load()
    await store.put("datasets/y/metadata", b"an object where the metadata directory goes")
    [key] = await put_objects(store, "datasets/y/1.parquet")
    with pytest.raises(StorageUnavailable):
        await catalog.commit(commit_request("y", [key], CommitMode.CREATE))
    assert await catalog.list() == []
