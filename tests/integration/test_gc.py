"""The orphan sweep: unreferenced dataset objects go, referenced and young ones stay."""

from __future__ import annotations

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

        response = await client.post("/admin/gc")
        assert response.status_code == 200
        report = response.json()
        assert sorted(report["removed"]) == sorted([orphan, other])
        keys = {info.key for info in await store.list("datasets/")}
        assert keys == set(manifest["objects"])
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


async def test_data_of_an_unreadable_manifest_is_not_swept(
    settings: Settings, store: ObjectStore
) -> None:
    """A manifest that cannot be read hides its dataset, but its data must survive
    the sweep: repairing the manifest brings the dataset back."""
    settings.catalog.orphan_grace_seconds = 0
    async with AsyncTestClient(app=create_app(settings)) as client:
        manifest = await ingest(client, "People")
    manifest_key = "_catalog/manifests/people.parquet"
    good_manifest = await store.get(manifest_key)
    await store.put(manifest_key, b"this is not parquet")

    async with AsyncTestClient(app=create_app(settings)) as client:
        listing = (await client.get("/catalog/list")).json()
        assert listing["datasets"] == []
        report = (await client.post("/admin/gc")).json()
        assert report["removed"] == []
    assert [info.key for info in await store.list("datasets/")] == manifest["objects"]

    await store.put(manifest_key, good_manifest)
    async with AsyncTestClient(app=create_app(settings)) as client:
        count = await client.post("/v1/sql", json={"sql": "SELECT count(*) AS n FROM People"})
        assert count.json() == [{"n": 2}]


async def test_storage_api_cannot_write_catalog_or_spool(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    await ingest(client, "kept")
    for key in ("_catalog/manifests/kept.parquet", "_tmp/ingest/x.csv"):
        put = await client.put(f"/storage/put/{key}", content=b"garbage")
        assert put.status_code == 403
        assert put.json()["error"]["code"] == "reserved_key"
        deleted = await client.delete(f"/storage/delete/{key}")
        assert deleted.status_code == 403
    # Reading the catalog's files stays allowed, and the dataset is intact.
    assert (await client.get("/storage/get/_catalog/manifests/kept.parquet")).status_code == 200
    count = await client.post("/v1/sql", json={"sql": "SELECT count(*) AS n FROM kept"})
    assert count.json() == [{"n": 2}]
