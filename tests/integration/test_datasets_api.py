"""The dataset API (/v1/datasets) through the app, on both storage backends, with
datasets made by ingesting real CSVs through POST /v1/ingest?mode=create|append|replace:
list, describe (how each column was typed), history (source file and its sha256),
delete, rollback; the ingest modes' errors; schema evolution read back in SQL."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
from litestar.testing import AsyncTestClient

from lakehouse.app import create_app
from lakehouse.config import Settings
from lakehouse.layout import dataset_prefix
from lakehouse.storage import ObjectStore

Client = AsyncTestClient  # type: ignore[type-arg]

WORKERS = b"id,zip,rate\n1,00501,1.5\n2,60601,2.5\n"
MORE_WORKERS = b"id,zip,rate\n3,02134,3.5\n4,10001,4.5\n5,94105,5.5\n"


async def ingest(
    client: Client,
    name: str,
    data: bytes,
    *,
    mode: str | None = None,
    filename: str | None = "upload.csv",
    query: str = "",
    status: int = 200,
) -> dict[str, Any]:
    """POST /v1/ingest: a multipart upload named ``filename``, or the raw body when None."""
    url = f"/v1/ingest?name={name}" + (f"&mode={mode}" if mode else "") + query
    if filename is None:
        response = await client.post(url, content=data, headers={"content-type": "text/csv"})
    else:
        response = await client.post(url, files={"file": (filename, data, "text/csv")})
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


async def sql(client: Client, statement: str) -> list[dict[str, Any]]:
    response = await client.post("/v1/sql", json={"sql": statement})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def get(client: Client, url: str, status: int = 200) -> Any:
    response = await client.get(url)
    assert response.status_code == status, response.text
    return response.json()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error  # type: ignore[no-any-return]


async def data_keys(store: ObjectStore, name: str) -> set[str]:
    return {info.key for info in await store.list(f"{dataset_prefix(name)}data/")}


# -- list, describe, history -------------------------------------------------------------


async def test_list_and_describe_datasets(client: Client, store: ObjectStore) -> None:
    workers = await ingest(client, "Workers", WORKERS, mode="create")
    alpha = await ingest(client, "alpha", b"a,b\n1,x\n", query="&types=a:string")

    listing = await get(client, "/v1/datasets")
    assert [d["name"] for d in listing] == ["alpha", "Workers"]
    summary = listing[1]
    assert summary == {
        "name": "Workers",
        "rows": 2,
        "columns": 3,
        "bytes": sum([(await store.head(key)).size for key in workers["objects"]]),
        "version": 1,
        "updated": workers["updated_at"],
    }

    detail = await get(client, "/v1/datasets/workers")
    assert detail["name"] == "Workers"
    assert detail["dataset_id"] == workers["dataset_id"]
    assert (detail["version"], detail["snapshot_id"]) == (1, workers["snapshot_id"])
    assert (detail["rows"], detail["bytes"]) == (2, summary["bytes"])
    assert detail["files"] == workers["objects"]
    columns = {c["name"]: c for c in detail["columns"]}
    assert [c["name"] for c in detail["columns"]] == ["id", "zip", "rate"]
    assert columns["id"] == {"name": "id", "type": "BIGINT", "source": "inferred", "reason": None}
    assert (columns["zip"]["type"], columns["zip"]["source"]) == ("VARCHAR", "inferred")
    assert "leading zeros" in columns["zip"]["reason"]
    assert columns["rate"]["type"] == "DOUBLE"
    # A ?types= override says so.
    [a, _] = (await get(client, "/v1/datasets/alpha"))["columns"]
    assert (a["type"], a["source"]) == ("VARCHAR", "override")
    assert alpha["version"] == 1

    for url in ("/v1/datasets/nobody", "/v1/datasets/nobody/history"):
        assert_error(await client.get(url), 404, "dataset_not_found")
    assert_error(await client.get("/v1/datasets/no-such-name"), 400, "invalid_dataset_name")


async def test_history_records_each_version_with_its_source_file(client: Client) -> None:
    created = await ingest(client, "w", WORKERS, mode="create", filename="workers-2026-11.csv")
    appended = await ingest(client, "w", MORE_WORKERS, mode="append", filename=None)
    replaced = await ingest(client, "w", b"id,zip,rate\n9,00009,9.5\n", mode="replace")

    history = await get(client, "/v1/datasets/W/history")
    assert history["name"] == "w"
    versions = history["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert [v["snapshot_id"] for v in versions] == [
        created["snapshot_id"],
        appended["snapshot_id"],
        replaced["snapshot_id"],
    ]
    assert [v["operation"] for v in versions] == ["append", "append", "overwrite"]
    assert [(v["rows_added"], v["rows_removed"], v["total_rows"]) for v in versions] == [
        (2, 0, 2),
        (3, 0, 5),
        (1, 5, 1),
    ]
    assert versions[0]["source_file"] == "workers-2026-11.csv"
    assert versions[0]["source_sha256"] == hashlib.sha256(WORKERS).hexdigest()
    assert versions[1]["source_sha256"] == hashlib.sha256(MORE_WORKERS).hexdigest()
    assert versions[2]["source_file"] == "upload.csv"
    times = [v["committed_at"] for v in versions]
    assert times == sorted(times)
    assert times[-1] == replaced["updated_at"]
    zip_typing = {t["name"]: t for t in versions[0]["typing"]}["zip"]
    assert zip_typing["type"] == "VARCHAR"
    assert "00501" in zip_typing["reason"]


# -- delete and rollback -----------------------------------------------------------------


async def test_delete_then_the_dataset_is_404(client: Client) -> None:
    await ingest(client, "gone", WORKERS)
    await ingest(client, "kept", WORKERS)
    deleted = await client.delete("/v1/datasets/GONE")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["name"] == "gone"
    for url in ("/v1/datasets/gone", "/v1/datasets/gone/history"):
        assert_error(await client.get(url), 404, "dataset_not_found")
    assert_error(await client.delete("/v1/datasets/gone"), 404, "dataset_not_found")
    rollback = await client.post("/v1/datasets/gone/rollback?version=1")
    assert_error(rollback, 404, "dataset_not_found")
    assert [d["name"] for d in await get(client, "/v1/datasets")] == ["kept"]
    query = await client.post("/v1/sql", json={"sql": "SELECT * FROM gone"})
    assert query.status_code in (400, 404), query.text
    assert query.json()["error"]["code"] == "table_not_found"
    # The name can be used again, from version 1.
    again = await ingest(client, "gone", b"other\nx\n", mode="create")
    assert again["version"] == 1


async def test_rollback_creates_a_new_version_with_the_old_rows(client: Client) -> None:
    await ingest(client, "w", WORKERS, mode="create")
    await ingest(client, "w", MORE_WORKERS, mode="append")
    assert await sql(client, "SELECT count(*) AS n FROM w") == [{"n": 5}]

    response = await client.post("/v1/datasets/w/rollback?version=1")
    assert response.status_code == 200, response.text
    restored = response.json()
    assert (restored["version"], restored["row_count"]) == (3, 2)
    assert await sql(client, "SELECT count(*) AS n FROM w") == [{"n": 2}]
    assert await sql(client, "SELECT id, zip FROM w ORDER BY id") == [
        {"id": 1, "zip": "00501"},
        {"id": 2, "zip": "60601"},
    ]
    versions = (await get(client, "/v1/datasets/w/history"))["versions"]
    assert [(v["version"], v["rollback_of"]) for v in versions] == [(1, None), (2, None), (3, 1)]
    assert versions[-1]["total_rows"] == 2
    assert (await get(client, "/v1/datasets/w"))["version"] == 3
    # The history is kept: version 2 can come back too.
    again = await client.post("/v1/datasets/w/rollback?version=2")
    assert again.status_code == 200, again.text
    assert again.json()["version"] == 4
    assert await sql(client, "SELECT count(*) AS n FROM w") == [{"n": 5}]


async def test_rollback_to_an_unknown_version_is_404_naming_the_range(client: Client) -> None:
    await ingest(client, "w", WORKERS, mode="create")
    await ingest(client, "w", MORE_WORKERS, mode="append")
    before = await get(client, "/v1/datasets/w")
    error = assert_error(
        await client.post("/v1/datasets/w/rollback?version=9"), 404, "version_not_found"
    )
    assert (error["details"]["first_version"], error["details"]["last_version"]) == (1, 2)
    for query in ("?version=0", "?version=two", ""):
        assert_error(await client.post(f"/v1/datasets/w/rollback{query}"), 400, "bad_request")
    assert await get(client, "/v1/datasets/w") == before
    assert await sql(client, "SELECT count(*) AS n FROM w") == [{"n": 5}]


# -- ingest modes --------------------------------------------------------------------------


async def test_an_unknown_mode_or_query_parameter_is_400_and_writes_nothing(
    client: Client, store: ObjectStore
) -> None:
    for query, detail in [
        ("&mode=bogus", {"mode": "bogus", "allowed": ["create", "append", "replace"]}),
        ("&mode=APPEND", {"mode": "APPEND", "allowed": ["create", "append", "replace"]}),
        ("&mdoe=append", {"unknown": ["mdoe"]}),
        ("&mode=append&dryrun=1", {"unknown": ["dryrun"]}),
    ]:
        body = await ingest(client, "w", WORKERS, query=query, status=400)
        assert body["error"]["code"] == "bad_request"
        assert body["error"]["details"] == detail
    assert await get(client, "/v1/datasets") == []
    assert await store.list("datasets/") == []


async def test_create_twice_is_409_dataset_exists(client: Client, store: ObjectStore) -> None:
    first = await ingest(client, "w", WORKERS, mode="create")
    body = await ingest(client, "W", MORE_WORKERS, mode="create", status=409)
    assert body["error"]["code"] == "dataset_exists"
    detail = await get(client, "/v1/datasets/w")
    assert (detail["version"], detail["rows"]) == (1, 2)
    assert await sql(client, "SELECT count(*) AS n FROM w") == [{"n": 2}]
    # The refused upload's data file was removed again.
    assert await data_keys(store, "w") == set(first["objects"])


async def test_append_with_a_changed_type_is_409_and_leaves_the_dataset_unchanged(
    client: Client, store: ObjectStore
) -> None:
    first = await ingest(client, "w", WORKERS, mode="create")
    body = await ingest(client, "w", b"id,zip,rate\nA7,00601,1.0\n", mode="append", status=409)
    error = body["error"]
    assert error["code"] == "schema_conflict"
    assert error["details"]["existing"]["schema"] == first["schema"]
    offered = {c["name"]: c["type"] for c in error["details"]["offered"]["schema"]}
    assert offered["id"] == "VARCHAR"
    detail = await get(client, "/v1/datasets/w")
    assert (detail["version"], detail["rows"], detail["files"]) == (1, 2, first["objects"])
    assert len((await get(client, "/v1/datasets/w/history"))["versions"]) == 1
    assert await sql(client, "SELECT id FROM w ORDER BY id") == [{"id": 1}, {"id": 2}]
    assert await data_keys(store, "w") == set(first["objects"])


async def test_append_with_an_extra_column_reads_null_for_the_old_rows(client: Client) -> None:
    await ingest(client, "w", WORKERS, mode="create")
    appended = await ingest(
        client, "w", b"id,zip,rate,team\n3,02134,3.5,blue\n", mode="append", filename="more.csv"
    )
    assert appended["version"] == 2
    assert appended["schema"][-1] == {"name": "team", "type": "VARCHAR"}
    assert await sql(client, "SELECT id, zip, team FROM w ORDER BY id") == [
        {"id": 1, "zip": "00501", "team": None},
        {"id": 2, "zip": "60601", "team": None},
        {"id": 3, "zip": "02134", "team": "blue"},
    ]
    described = await get(client, "/v1/datasets/w")
    assert [c["name"] for c in described["columns"]] == ["id", "zip", "rate", "team"]
    assert (described["version"], described["rows"]) == (2, 3)


async def test_replace_makes_the_upload_the_whole_dataset(client: Client) -> None:
    await ingest(client, "w", WORKERS, mode="create")
    await ingest(client, "w", MORE_WORKERS, mode="append")
    replaced = await ingest(client, "w", b"id,city\n7,Peoria\n", mode="replace")
    assert (replaced["version"], replaced["row_count"]) == (3, 1)
    assert await sql(client, "SELECT * FROM w") == [{"id": 7, "city": "Peoria"}]
    assert [c["name"] for c in (await get(client, "/v1/datasets/w"))["columns"]] == ["id", "city"]


async def test_no_mode_keeps_the_g0_behaviour(client: Client) -> None:
    """No ?mode=: create, or replace when the schema is the same; 409 otherwise."""
    first = await ingest(client, "w", WORKERS)
    second = await ingest(client, "w", MORE_WORKERS)
    assert (first["version"], second["version"]) == (1, 2)
    assert second["ingest"]["created"] is False
    assert await sql(client, "SELECT count(*) AS n FROM w") == [{"n": 3}]
    body = await ingest(client, "w", b"id,city\n7,Peoria\n", status=409)
    assert body["error"]["code"] == "schema_conflict"
    assert await sql(client, "SELECT count(*) AS n FROM w") == [{"n": 3}]


# -- what upkeep must not break ------------------------------------------------------------


async def test_the_orphan_sweep_keeps_what_retained_versions_need(
    settings: Settings, store: ObjectStore
) -> None:
    """The sweep may delete only what no retained version or metadata file needs:
    afterwards the dataset takes appends, every version can still be rolled back to,
    and a restart still serves it."""
    settings.catalog.orphan_grace_seconds = 0
    async with AsyncTestClient(app=create_app(settings)) as client:
        await ingest(client, "w", WORKERS, mode="create")
        await ingest(client, "w", MORE_WORKERS, mode="replace")
        report = await client.post("/admin/gc")
        assert report.status_code == 200, report.text
        appended = await client.post(
            "/v1/ingest?name=w&mode=append", files={"file": ("x.csv", MORE_WORKERS, "text/csv")}
        )
        assert appended.status_code == 200, appended.text
        back = await client.post("/v1/datasets/w/rollback?version=1")
        assert back.status_code == 200, back.text
        assert await sql(client, "SELECT count(*) AS n FROM w") == [{"n": 2}]
    async with AsyncTestClient(app=create_app(settings)) as client:
        assert [d["name"] for d in await get(client, "/v1/datasets")] == ["w"]
        assert await sql(client, "SELECT count(*) AS n FROM w") == [{"n": 2}]
