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
