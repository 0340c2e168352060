"""The orphan sweep: files no retained version references go (after the grace period);
referenced and young ones stay."""

from __future__ import annotations

import asyncio

from litestar.testing import AsyncTestClient

from lakehouse.app import create_app
from lakehouse.config import Settings
from lakehouse.storage import ObjectStore

CSV = b"id,city\n1,Chicago\n2,Peoria\n"


async def ingest(client: AsyncTestClient, name: str) -> dict:  # type: ignore[type-arg]
    response = await client.post(
        f"/v1/ingest?name={name}", content=CSV, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_gc_removes_only_old_unreferenced_objects(
    settings: Settings, store: ObjectStore
) -> None:
    settings.catalog.orphan_grace_seconds = 0
    async with AsyncTestClient(app=create_app(settings)) as client:
        manifest = await ingest(client, "kept")
        orphan = "datasets/kept/left-by-a-crash.parquet"
        other = "datasets/gone/never-registered.parquet"
        await store.put(orphan, b"PAR1 orphan")
        await store.put(other, b"PAR1 orphan")

        before = {info.key for info in await store.list("datasets/")}
        response = await client.post("/admin/gc")
        assert response.status_code == 200
        report = response.json()
        assert sorted(report["removed"]) == sorted([orphan, other])
        keys = {info.key for info in await store.list("datasets/")}
        # The data file and the table's metadata stay; only the orphans went.
        assert keys == before - {orphan, other}
        assert set(manifest["objects"]) <= keys
        assert any(key.startswith("datasets/kept/metadata/") for key in keys)
        # The dataset still answers queries after the sweep.
        count = await client.post("/v1/sql", json={"sql": "SELECT count(*) AS n FROM kept"})
        assert count.json() == [{"n": 2}]


async def test_gc_keeps_orphans_younger_than_grace(settings: Settings, store: ObjectStore) -> None:
    settings.catalog.orphan_grace_seconds = 3600
    async with AsyncTestClient(app=create_app(settings)) as client:
        young = "datasets/inflight/just-written.parquet"
        await store.put(young, b"PAR1 in flight")
        report = (await client.post("/admin/gc")).json()
    assert report["removed"] == []
    assert report["kept_young"] == [young]
    assert [info.key for info in await store.list("datasets/")] == [young]


async def test_startup_sweeps_leftovers(settings: Settings, store: ObjectStore) -> None:
    settings.catalog.orphan_grace_seconds = 0
    leftover = "datasets/crashed/abc.parquet"
    await store.put(leftover, b"PAR1 leftover")
    async with AsyncTestClient(app=create_app(settings)):
        pass
    assert await store.list("datasets/") == []


async def test_data_of_an_unreadable_table_is_not_swept(
    settings: Settings, store: ObjectStore
) -> None:
    """A table whose metadata cannot be read hides its dataset, but its files must
    survive the sweep: repairing the metadata brings the dataset back."""
    settings.catalog.orphan_grace_seconds = 0
    async with AsyncTestClient(app=create_app(settings)) as client:
        manifest = await ingest(client, "People")
    files = [info.key for info in await store.list("datasets/people/")]
    assert set(manifest["objects"]) < set(files)
    [metadata_key] = [key for key in files if key.endswith(".metadata.json")][-1:]
    good_metadata = await store.get(metadata_key)
    await store.put(metadata_key, b"this is not Iceberg metadata")

    async with AsyncTestClient(app=create_app(settings)) as client:
        listing = (await client.get("/catalog/list")).json()
        assert listing["datasets"] == []
        report = (await client.post("/admin/gc")).json()
        assert report["removed"] == []
    assert [info.key for info in await store.list("datasets/people/")] == files

    await store.put(metadata_key, good_metadata)
    async with AsyncTestClient(app=create_app(settings)) as client:
        count = await client.post("/v1/sql", json={"sql": "SELECT count(*) AS n FROM People"})
        assert count.json() == [{"n": 2}]


async def test_storage_api_cannot_write_catalog_or_spool(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    await ingest(client, "kept")
    for key in ("_catalog/manifests/kept.parquet", "_tmp/ingest/x.csv", "_state/catalog.db"):
        put = await client.put(f"/storage/put/{key}", content=b"garbage")
        assert put.status_code == 403
        assert put.json()["error"]["code"] == "reserved_key"
        deleted = await client.delete(f"/storage/delete/{key}")
        assert deleted.status_code == 403
    # The catalog database is never an object: neither listed nor readable.
    listed = (await client.get("/storage/list?prefix=_state/")).json()
    assert listed == []
    assert (await client.get("/storage/get/_state/catalog.db")).status_code in (400, 404)
    # A table's Iceberg metadata is readable (other engines read it the same way).
    objects = (await client.get("/storage/list?prefix=datasets/kept/metadata/")).json()
    metadata = [o["key"] for o in objects if o["key"].endswith(".metadata.json")]
    assert metadata
    assert (await client.get(f"/storage/get/{metadata[-1]}")).status_code == 200
    count = await client.post("/v1/sql", json={"sql": "SELECT count(*) AS n FROM kept"})
    assert count.json() == [{"n": 2}]


async def test_files_of_expired_versions_are_swept_and_retained_ones_kept(
    settings: Settings, store: ObjectStore
) -> None:
    settings.catalog.orphan_grace_seconds = 0
    settings.catalog.keep_versions = 1  # expire everything but the current version ...
    settings.catalog.keep_days = 0  # ... however young
    async with AsyncTestClient(app=create_app(settings)) as client:
        first = await ingest(client, "kept")
        second = (
            await client.post(
                "/v1/ingest?name=kept&mode=replace",
                content=b"id,city\n3,Joliet\n",
                headers={"Content-Type": "text/csv"},
            )
        ).json()
        assert second["version"] == 2
        history = (await client.get("/v1/datasets/kept/history")).json()["versions"]
        assert [v["version"] for v in history] == [2]
        gone = await client.post("/v1/sql", json={"sql": "SELECT * FROM kept AT (VERSION => 1)"})
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == "version_not_found"

        report = (await client.post("/admin/gc")).json()
        assert set(first["objects"]) <= set(report["removed"])
        keys = {info.key for info in await store.list("datasets/kept/")}
        assert not keys & set(first["objects"])
        assert set(second["objects"]) <= keys
        count = await client.post("/v1/sql", json={"sql": "SELECT count(*) AS n FROM kept"})
        assert count.json() == [{"n": 1}]
        # What the sweep left is exactly what the table still references.
        again = (await client.post("/admin/gc")).json()
        assert again["removed"] == []
        assert again["scanned"] == again["referenced"]


async def test_a_table_that_fails_to_load_keeps_its_files(
    settings: Settings, store: ObjectStore
) -> None:
    """A table whose metadata cannot be fetched (here: its metadata file is gone, as an
    outage would look) is not in the catalog's picture: the sweep must spare its files
    rather than take them for orphans."""
    settings.catalog.orphan_grace_seconds = 0
    async with AsyncTestClient(app=create_app(settings)) as client:
        manifest = await ingest(client, "people")
    files = [info.key for info in await store.list("datasets/people/")]
    [metadata_key] = [key for key in files if key.endswith(".metadata.json")][-1:]
    saved = await store.get(metadata_key)
    await store.delete(metadata_key)

    async with AsyncTestClient(app=create_app(settings)) as client:  # start-up sweep
        report = (await client.post("/admin/gc")).json()
        assert report["removed"] == []
    remaining = [info.key for info in await store.list("datasets/people/")]
    assert remaining == [key for key in files if key != metadata_key]
    assert set(manifest["objects"]) <= set(remaining)

    await store.put(metadata_key, saved)
    async with AsyncTestClient(app=create_app(settings)) as client:
        count = await client.post("/v1/sql", json={"sql": "SELECT count(*) AS n FROM people"})
        assert count.json() == [{"n": 2}]


async def test_a_deleted_dataset_keeps_its_files_for_the_grace_period(
    settings: Settings, store: ObjectStore
) -> None:
    """Files older than the grace period, of a dataset deleted a moment ago: another
    replica or a running query may still read them, so they outlive the delete by the
    grace period, then go."""
    settings.catalog.orphan_grace_seconds = 2
    async with AsyncTestClient(app=create_app(settings)) as client:
        manifest = await ingest(client, "gone")
        files = {info.key for info in await store.list("datasets/gone/")}
        await asyncio.sleep(2.2)  # the files are now older than the grace period
        deleted = await client.delete("/v1/datasets/gone")
        assert deleted.status_code == 200
        report = (await client.post("/admin/gc")).json()
        assert report["removed"] == []
        assert {info.key for info in await store.list("datasets/gone/")} == files
        await asyncio.sleep(2.2)  # now the delete is older than the grace period too
        report = (await client.post("/admin/gc")).json()
        assert set(report["removed"]) == files
        assert set(manifest["objects"]) <= files
        assert await store.list("datasets/gone/") == []
