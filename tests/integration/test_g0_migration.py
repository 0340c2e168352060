"""G0's manifests become Iceberg tables at load, on both backends (the ``store``
fixture runs each test over local and S3): version 1 holds the same data objects (no
copy), the manifest goes afterwards; a manifest whose table exists (a crash between
the commit and the delete) is just deleted; an unreadable one stays, and its dataset
is reported unreadable so the orphan sweep spares its data. The catalog contract
itself: tests/contracts/test_catalog.py."""

from __future__ import annotations

import datetime as dt
import io
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import pyarrow.parquet as pq
import pytest

from lakehouse.admin import OrphanSweep
from lakehouse.catalog import Catalog, Column, Manifest, schema_fingerprint
from lakehouse.catalog._codec import encode_manifest
from lakehouse.config import Settings
from lakehouse.layout import MANIFEST_PREFIX, dataset_prefix, manifest_key
from lakehouse.storage import ObjectStore
from tests.support.backends import iceberg_catalog_opener
from tests.support.catalog import COLUMNS, put_objects, read_rows

G0_CREATED = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)

OpenCatalog = Callable[[], Awaitable[Catalog]]


@pytest.fixture
async def open_catalog(settings: Settings, store: ObjectStore) -> AsyncIterator[OpenCatalog]:
    """Load a new catalog over ``store`` and its catalog database: what a start sees."""
    opener = iceberg_catalog_opener(settings)
    opened: list[Catalog] = []

    async def open_catalog() -> Catalog:
        catalog = opener(store)
        opened.append(catalog)
        await catalog.load()
        return catalog

    yield open_catalog
    for catalog in opened:
        await catalog.close()


async def write_g0_dataset(
    store: ObjectStore,
    name: str,
    *,
    files: int = 1,
    rows: int = 3,
    columns: list[Column] = COLUMNS,
    objects: list[str] | None = None,
) -> Manifest:
    """What G0 left for a dataset: Parquet objects at ``datasets/<name>/<uuid>.parquet``
    and its manifest at ``_catalog/manifests/<name>.parquet``."""
    if objects is None:
        objects = []
        for i in range(files):
            key = f"{dataset_prefix(name.lower())}{uuid.uuid4().hex}.parquet"
            objects += await put_objects(store, key, columns=columns, rows=rows, start=100 * i)
    manifest = Manifest(
        dataset_id=str(uuid.uuid4()),
        name=name,
        schema_fingerprint=schema_fingerprint(columns),
        schema=columns,
        objects=objects,
        row_count=rows * len(objects),
        created_at=G0_CREATED,
        updated_at=G0_CREATED,
    )
    await store.put(manifest_key(name), encode_manifest(manifest))
    return manifest


async def manifest_keys(store: ObjectStore) -> list[str]:
    return [info.key for info in await store.list(MANIFEST_PREFIX)]


async def test_g0_manifests_become_tables_at_version_1_with_the_same_objects(
    store: ObjectStore, open_catalog: OpenCatalog
) -> None:
    workers = await write_g0_dataset(store, "Workers", files=2)
    zips = [Column("zip", "VARCHAR"), Column("since", "DATE"), Column("rate", "DOUBLE")]
    places = await write_g0_dataset(store, "places", rows=5, columns=zips)
    data_before = {info.key: info.size for info in await store.list("datasets/")}
    rows_before = await read_rows(store, workers.objects)

    catalog = await open_catalog()
    assert [m.name for m in await catalog.list()] == ["places", "Workers"]
    for g0 in (workers, places):
        table = await catalog.get(g0.name)
        assert table.name == g0.name  # the spelling the manifest had
        assert table.version == 1
        assert table.schema == g0.schema
        assert table.schema_fingerprint == g0.schema_fingerprint
        assert sorted(table.objects) == sorted(g0.objects)  # the same keys: no copy
        assert table.row_count == g0.row_count
        history = await catalog.history(g0.name)
        assert [(v.version, v.total_rows) for v in history] == [(1, g0.row_count)]
    assert await catalog.unreadable() == []
    # The manifests are gone; the data objects are where they were, untouched.
    assert await manifest_keys(store) == []
    data_after = {
        info.key: info.size
        for info in await store.list("datasets/")
        if "/metadata/" not in info.key
    }
    assert data_after == data_before
    assert await read_rows(store, workers.objects) == rows_before

    # A second start converts nothing again: same tables, still version 1.
    again = await open_catalog()
    assert await again.list() == await catalog.list()


async def test_a_manifest_whose_table_exists_is_just_deleted(
    store: ObjectStore, open_catalog: OpenCatalog
) -> None:
    """A crash after the conversion's commit and before the manifest's delete: the next
    start deletes the manifest and leaves the table as it is."""
    g0 = await write_g0_dataset(store, "w")
    manifest_bytes = await store.get(manifest_key("w"))
    converted = await (await open_catalog()).get("w")
    assert await manifest_keys(store) == []
    # The manifest is back, as if its delete never happened, and even names other files.
    [other] = await put_objects(store, "datasets/w/other.parquet")
    await store.put(manifest_key("w"), manifest_bytes)
    await write_g0_dataset(store, "W", objects=[other])

    restarted = await open_catalog()
    assert await manifest_keys(store) == []
    table = await restarted.get("w")
    assert table == converted
    assert sorted(table.objects) == sorted(g0.objects)
    assert [v.version for v in await restarted.history("w")] == [1]


async def test_unreadable_manifests_stay_and_their_datasets_are_reported(
    settings: Settings, store: ObjectStore, open_catalog: OpenCatalog
) -> None:
    good = await write_g0_dataset(store, "good")
    garbage_data = await put_objects(store, "datasets/garbage/0a.parquet")
    await store.put(manifest_key("garbage"), b"this is not parquet")
    truncated = encode_manifest(good)
    await store.put(manifest_key("truncated"), truncated[: len(truncated) // 2])
    evil = await write_g0_dataset(store, "evil")
    tampered = msgspec.structs.replace(evil, objects=["a/../../etc/passwd", "_catalog/x.parquet"])
    await store.put(manifest_key("evil"), encode_manifest(tampered))
    lost = await write_g0_dataset(store, "lost", objects=["datasets/lost/never-written.parquet"])
    assert lost.objects

    catalog = await open_catalog()
    assert [m.name for m in await catalog.list()] == ["good"]
    assert await catalog.unreadable() == ["evil", "garbage", "lost", "truncated"]
    # Only the readable manifest was converted (and deleted); the others stay for repair.
    assert await manifest_keys(store) == sorted(
        manifest_key(name) for name in ("evil", "garbage", "lost", "truncated")
    )
    # The next start tries again, with the same outcome.
    restarted = await open_catalog()
    assert await restarted.unreadable() == ["evil", "garbage", "lost", "truncated"]
    assert [m.name for m in await restarted.list()] == ["good"]
    # The orphan sweep spares the data of the datasets whose manifest could not be read.
    report = await OrphanSweep(store, restarted, grace_seconds=0).run()
    kept = {info.key for info in await store.list("datasets/")}
    assert set(garbage_data) <= kept
    assert set(evil.objects) <= kept
    assert set(good.objects) <= kept
    assert not set(report.removed) & (set(garbage_data) | set(evil.objects) | set(good.objects))


async def test_a_manifest_of_another_format_version_is_skipped_and_others_convert(
    store: ObjectStore, open_catalog: OpenCatalog, caplog: pytest.LogCaptureFixture
) -> None:
    good = await write_g0_dataset(store, "good")
    future = await write_g0_dataset(store, "future")
    table = pq.read_table(io.BytesIO(await store.get(manifest_key("future"))))
    metadata = {**(table.schema.metadata or {}), b"lakehouse.manifest.format": b"99"}
    sink = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(metadata), sink)
    await store.put(manifest_key("future"), sink.getvalue())

    with caplog.at_level(logging.WARNING, logger="lakehouse.catalog"):
        catalog = await open_catalog()
    assert [m.name for m in await catalog.list()] == ["good"]
    assert await read_rows(store, (await catalog.get("good")).objects) == await read_rows(
        store, good.objects
    )
    assert await catalog.unreadable() == ["future"]
    assert await manifest_keys(store) == [manifest_key("future")]  # left for a newer version
    [skipped] = [r.getMessage() for r in caplog.records if "future" in r.getMessage()]
    assert "unknown manifest format version '99'" in skipped
    assert set(future.objects) <= {info.key for info in await store.list("datasets/")}
