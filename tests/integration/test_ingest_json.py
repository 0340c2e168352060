"""NDJSON and JSON-array ingest through the real `lakehouse serve`, on both storage
backends: rows and types as SQL sees them, the typing report, overrides, an append to a
dataset first loaded from CSV, and malformed input (400, nothing registered, no orphan).
(The converter's rules one by one: tests/unit/test_ingest_json.py.)"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from lakehouse.config import Settings
from lakehouse.storage import ObjectStore
from tests.support.ingest import assert_nothing_left
from tests.support.servers import LakehouseServer

RECORDS = [
    {"id": 1, "zip": "01234", "amount": 9.5, "code": 7, "big": 2**70, "note": None},
    {"id": 2, "zip": "60601", "amount": 12, "code": "A-7", "note": None},
    {"id": 3, "zip": "10001", "code": {"k": 1}, "note": None},
]


def ndjson(records: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


@pytest.fixture
async def http(server: LakehouseServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        yield client


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

    rows = await sql(http, "SELECT id, zip, amount, code, big::VARCHAR AS big FROM events ORDER BY id")
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
    http: httpx.AsyncClient, store: ObjectStore, settings: Settings
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
    await assert_nothing_left(http, store, settings, datasets=1)  # type: ignore[arg-type]


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
    ],
)
async def test_malformed_json_is_400_and_leaves_nothing(
    http: httpx.AsyncClient,
    store: ObjectStore,
    settings: Settings,
    fmt: str,
    body: bytes,
    where: dict[str, int],
) -> None:
    response = await ingest(http, f"name=broken&format={fmt}", body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert error["details"] == where
    assert str(next(iter(where.values()))) in error["message"]
    assert "/" not in error["message"]  # no local path
    await assert_nothing_left(http, store, settings)  # type: ignore[arg-type]
