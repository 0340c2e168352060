"""NDJSON and JSON-array ingest through the real `lakehouse serve`, on both storage
backends: rows and types as SQL sees them (nested columns included), the typing report,
overrides, an append to a dataset first loaded from CSV, and malformed input (400,
nothing registered, no orphan). One server per backend for the module: each test uses
datasets of its own. (The converter's rules one by one: tests/unit/test_ingest_json.py.)"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from lakehouse.app import build_services
from lakehouse.config import Settings
from lakehouse.storage import ObjectStore
from tests.support.ingest import spool_dir
from tests.support.servers import LakehouseServer

RECORDS = [
    {"id": 1, "zip": "01234", "amount": 9.5, "code": 7, "big": 2**70, "note": None},
    {"id": 2, "zip": "60601", "amount": 12, "code": "A-7", "note": None},
    {"id": 3, "zip": "10001", "code": {"k": 1}, "note": None},
]


def ndjson(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


@pytest.fixture
async def http(module_server: LakehouseServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=module_server.url, timeout=60) as client:
        yield client


@pytest.fixture
async def store(module_server: LakehouseServer) -> AsyncIterator[ObjectStore]:
    services = build_services(module_server.settings)
    await services.store.start()
    yield services.store
    await services.store.close()


async def assert_left_nothing(
    http: httpx.AsyncClient, store: ObjectStore, settings: Settings, name: str
) -> None:
    """No dataset ``name``, no object under its prefix, no spool file."""
    listing = (await http.get("/catalog/list")).json()
    assert name not in {m["name"] for m in listing["datasets"]}
    assert [info.key for info in await store.list(f"datasets/{name}/")] == []
    spool = spool_dir(settings)
    assert not spool.exists() or list(spool.iterdir()) == []


async def ingest(http: httpx.AsyncClient, query: str, body: bytes) -> httpx.Response:
    return await http.post(
        f"/v1/ingest?{query}", content=body, headers={"content-type": "application/octet-stream"}
    )


async def sql(http: httpx.AsyncClient, query: str) -> Any:
    response = await http.post("/v1/sql", json={"sql": query})
    assert response.status_code == 200, response.text
    return response.json()


async def test_ndjson_rows_types_and_typing_report(http: httpx.AsyncClient) -> None:
    response = await ingest(http, "name=events&format=ndjson", ndjson(RECORDS))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["row_count"] == 3
    assert body["schema"] == [
        {"name": "id", "type": "BIGINT"},
        {"name": "zip", "type": "VARCHAR"},
        {"name": "amount", "type": "DOUBLE"},
        {"name": "code", "type": "VARCHAR"},
        {"name": "big", "type": "DECIMAL(38,0)"},
        {"name": "note", "type": "VARCHAR"},
    ]
    report = body["ingest"]
    assert [(w["name"], w["inferred"]) for w in report["widened"]] == [("code", "BIGINT")]
    assert "number and object and string" in report["widened"][0]["reason"]
    assert [d["name"] for d in report["defaulted"]] == ["note"]
    assert report["overridden"] == []
    assert report["format"] == "ndjson"
    assert report["delimiter"] is None

    rows = await sql(
        http, "SELECT id, zip, amount, code, big::VARCHAR AS big FROM events ORDER BY id"
    )
    assert rows == [
        {"id": 1, "zip": "01234", "amount": 9.5, "code": "7", "big": str(2**70)},
        {"id": 2, "zip": "60601", "amount": 12.0, "code": "A-7", "big": None},
        {"id": 3, "zip": "10001", "amount": None, "code": '{"k":1}', "big": None},
    ]
    assert await sql(http, "SELECT code->>'$.k' AS k FROM events WHERE id = 3") == [{"k": "1"}]
    described = (await http.get("/v1/datasets/events")).json()
    typing = {c["name"]: c for c in described["columns"]}
    assert typing["code"]["source"] == "widened"
    assert typing["note"]["source"] == "inferred"
    assert typing["note"]["reason"] == "the key only ever holds null"


async def test_json_array_with_type_overrides(
    http: httpx.AsyncClient, store: ObjectStore, module_server: LakehouseServer
) -> None:
    records = [{"zip": 60601, "amount": 12, "day": "2024-01-31"}, {"zip": "01234", "amount": 7}]
    query = "name=orders&format=json&types=zip:string,amount:decimal,day:date"
    response = await ingest(http, query, json.dumps(records).encode())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ingest"]["overridden"] == ["zip", "amount", "day"]
    assert body["ingest"]["widened"] == []
    assert await sql(http, "SELECT zip, amount::VARCHAR AS a, day::VARCHAR AS d FROM orders") == [
        {"zip": "60601", "a": "12", "d": "2024-01-31"},
        {"zip": "01234", "a": "7", "d": None},
    ]

    records.append({"zip": "1", "amount": 9.5})
    refused = await ingest(http, query.replace("orders", "refused"), json.dumps(records).encode())
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_type_override"
    assert "'amount'" in error["message"]
    assert "9.5" in error["message"]
    await assert_left_nothing(http, store, module_server.settings, "refused")


async def test_append_ndjson_to_a_dataset_loaded_from_csv(http: httpx.AsyncClient) -> None:
    created = await http.post(
        "/v1/ingest?name=staff",
        content=b"id,zip,amount\n1,01234,9.50\n",
        headers={"content-type": "text/csv"},
    )
    assert created.status_code == 200, created.text
    appended = await ingest(
        http,
        "name=staff&mode=append&format=ndjson",
        ndjson([{"id": 2, "zip": 60601, "amount": 12}, {"id": 3, "amount": 7.25}]),
    )
    assert appended.status_code == 200, appended.text
    body = appended.json()
    assert body["version"] == 2
    assert body["schema"] == created.json()["schema"]
    assert await sql(http, "SELECT * FROM staff ORDER BY id") == [
        {"id": 1, "zip": "01234", "amount": 9.5},
        {"id": 2, "zip": "60601", "amount": 12.0},
        {"id": 3, "zip": None, "amount": 7.25},
    ]


@pytest.mark.parametrize(
    ("fmt", "body", "where"),
    [
        ("ndjson", b'{"a": 1}\n{"a": 2}\n{"a": 3,,}\n', {"line": 3}),
        ("json", b'[{"a": 1}, {"a": 2}, {"a" 3}]', {"byte_offset": 26}),
        # Deeper than any JSON parser's stack: a 400 naming where, not a 500.
        ("ndjson", b'{"a": 1}\n{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", {"line": 2}),
        ("json", b'[{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]", {"byte_offset": 1}),
    ],
    ids=["ndjson", "json", "ndjson_too_deep", "json_too_deep"],
)
async def test_malformed_json_is_400_and_leaves_nothing(
    http: httpx.AsyncClient,
    store: ObjectStore,
    module_server: LakehouseServer,
    fmt: str,
    body: bytes,
    where: dict[str, int],
) -> None:
    response = await ingest(http, f"name=broken_{fmt}&format={fmt}", body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert error["details"] == where
    assert str(next(iter(where.values()))) in error["message"]
    assert "/" not in error["message"]  # no local path
    await assert_left_nothing(http, store, module_server.settings, f"broken_{fmt}")


async def test_nested_objects_and_arrays_are_reachable_with_sql(http: httpx.AsyncClient) -> None:
    records = [
        {"id": 1, "payload": {"user": {"id": 7, "name": "Ada"}}, "tags": ["a", "b"]},
        {"id": 2, "payload": {"user": {"id": 8}, "score": 1.5}, "tags": []},
        {"id": 3, "payload": None, "mixed": [1]},
        {"id": 4, "mixed": {"a": 1}},
    ]
    response = await ingest(http, "name=nested&format=ndjson", ndjson(records))
    assert response.status_code == 200, response.text
    assert response.json()["schema"] == [
        {"name": "id", "type": "BIGINT"},
        {
            "name": "payload",
            "type": 'STRUCT("user" STRUCT(id BIGINT, "name" VARCHAR), score DOUBLE)',
        },
        {"name": "tags", "type": "VARCHAR[]"},
        {"name": "mixed", "type": "VARCHAR"},
    ]
    assert [w["name"] for w in response.json()["ingest"]["widened"]] == ["mixed"]
    query = """
        SELECT id, payload.user.id AS uid, payload.score AS score, tags[1] AS first_tag,
               len(tags) AS n, mixed->>'$.a' AS a
        FROM nested ORDER BY id
    """
    assert await sql(http, query) == [
        {"id": 1, "uid": 7, "score": None, "first_tag": "a", "n": 2, "a": None},
        {"id": 2, "uid": 8, "score": 1.5, "first_tag": None, "n": 0, "a": None},
        {"id": 3, "uid": None, "score": None, "first_tag": None, "n": None, "a": None},
        {"id": 4, "uid": None, "score": None, "first_tag": None, "n": None, "a": "1"},
    ]
    assert await sql(http, "SELECT unnest(tags) AS tag FROM nested ORDER BY tag") == [
        {"tag": "a"},
        {"tag": "b"},
    ]
    assert await sql(http, "SELECT payload FROM nested WHERE id = 1") == [
        {"payload": {"user": {"id": 7, "name": "Ada"}, "score": None}}
    ]


async def test_a_nul_in_a_key_is_dropped_so_sql_sees_the_dataset(http: httpx.AsyncClient) -> None:
    # A NUL in a column name once committed a dataset whose view could not be created.
    response = await ingest(http, "name=nul_json&format=ndjson", b'{"a\\u0000b": 1}\n')
    assert response.status_code == 200, response.text
    assert response.json()["schema"][0]["name"] == "ab"
    assert await sql(http, "SELECT ab FROM nul_json") == [{"ab": 1}]
    # In a CSV header it made pyarrow lose the row after it: refused instead.
    response = await ingest(http, "name=nul_csv&format=csv", b"a\x00b,c\n1,2\n3,4\n")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_csv"
    assert (await http.get("/v1/datasets/nul_csv")).status_code == 404
