"""The register route's smaller promises, on both backends: a 201 says where the
dataset is (``Location``), a conditional GET answers 304 per dataset, and requests
no catalog could store are 400 with nothing registered: an object listed twice, a
row count past int64, an empty column name, a column type that would break the
view DDL (a quote, a parenthesis, a semicolon)."""

from __future__ import annotations

from typing import Any

import httpx
from litestar.testing import AsyncTestClient

from lakehouse.storage import ObjectStore
from tests.support.catalog import SCHEMA, put_objects, register_body

INT64_MAX = 2**63 - 1
# Column types with the characters that would end or extend DDL built around them.
BREAKING_TYPES = ["BIGINT); DROP VIEW x; --", "VARCHAR'", 'VARCHAR"', "DECIMAL(10,2", "BIGINT)"]


def assert_refused(response: httpx.Response, *fragments: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_registration"
    for fragment in fragments:
        assert fragment in error["message"], error["message"]


async def test_created_is_201_with_a_location_and_304_per_dataset(
    client: AsyncTestClient,  # type: ignore[type-arg]
    store: ObjectStore,
) -> None:
    first = await put_objects(store, "datasets/first/1.parquet")
    second = await put_objects(store, "datasets/second/1.parquet")
    created = await client.post("/catalog/register", json=register_body("First", first))
    assert created.status_code == 201, created.text
    located = await client.get(created.headers["location"])
    assert located.status_code == 200
    assert located.json()["dataset_id"] == created.json()["dataset_id"]
    other = await client.post("/catalog/register", json=register_body("second", second))
    assert other.status_code == 201

    tags = {}
    for name in ("first", "second"):
        got = await client.get(f"/catalog/manifest/{name}")
        tags[name] = got.headers["etag"]
        unchanged = await client.get(
            f"/catalog/manifest/{name}", headers={"If-None-Match": tags[name]}
        )
        assert unchanged.status_code == 304
        assert unchanged.content == b""
    assert tags["first"] != tags["second"]
    # One dataset's tag says nothing about another's.
    crossed = await client.get("/catalog/manifest/second", headers={"If-None-Match": tags["first"]})
    assert crossed.status_code == 200
    # A new version of one dataset: its old tag no longer matches; the other's still does.
    more = await put_objects(store, "datasets/first/2.parquet")
    again = await client.post("/catalog/register", json=register_body("first", first + more))
    assert again.status_code == 200, again.text
    stale = await client.get("/catalog/manifest/first", headers={"If-None-Match": tags["first"]})
    assert stale.status_code == 200
    assert stale.headers["etag"] != tags["first"]
    assert len(stale.json()["objects"]) == 2
    kept = await client.get("/catalog/manifest/second", headers={"If-None-Match": tags["second"]})
    assert kept.status_code == 304


async def test_a_type_that_would_break_the_view_ddl_is_400(
    client: AsyncTestClient,  # type: ignore[type-arg]
    store: ObjectStore,
) -> None:
    objects = await put_objects(store, "datasets/x/1.parquet")
    for column_type in BREAKING_TYPES:
        schema = [{"name": "id", "type": column_type}, SCHEMA[1]]
        body = register_body("x", objects, schema=schema)
        assert_refused(await client.post("/catalog/register", json=body), column_type)
    assert (await client.get("/catalog/list")).json()["datasets"] == []
    # The query engine's views are intact: the right schema registers and reads.
    ok = await client.post("/catalog/register", json=register_body("x", objects))
    assert ok.status_code == 201, ok.text
    rows = await client.post("/sql", json={"sql": "SELECT count(*) AS n FROM x"})
    assert rows.json() == [{"n": 3}]


async def test_requests_no_catalog_can_store_are_400(
    client: AsyncTestClient,  # type: ignore[type-arg]
    store: ObjectStore,
) -> None:
    objects = await put_objects(store, "datasets/x/1.parquet")
    limit = f"row_count must be between 0 and {INT64_MAX}"
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"objects": objects * 2}, "objects lists a key twice"),
        ({"row_count": INT64_MAX + 1}, limit),
        ({"row_count": 10**30, "objects": []}, limit),
        ({"schema": [{"name": "", "type": "BIGINT"}, SCHEMA[1]]}, "non-empty name"),
    ]
    for change, fragment in refusals:
        body = {**register_body("x", objects), **change}
        assert_refused(await client.post("/catalog/register", json=body), fragment)
    assert (await client.get("/catalog/list")).json()["datasets"] == []
    assert (await client.get("/catalog/manifest/x")).status_code == 404
