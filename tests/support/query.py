"""Helpers for the query tests: put a Parquet file into storage and register it over HTTP."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

# DuckDB type names of the Arrow types the tests write.
_DUCKDB_TYPES = {
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.float64(): "DOUBLE",
    pa.string(): "VARCHAR",
    pa.bool_(): "BOOLEAN",
    pa.date32(): "DATE",
    pa.timestamp("us"): "TIMESTAMP",
    pa.decimal128(38, 0): "DECIMAL(38,0)",
    pa.decimal128(10, 2): "DECIMAL(10,2)",
    pa.binary(): "BLOB",
}


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def schema_of(table: pa.Table) -> list[dict[str, str]]:
    return [{"name": f.name, "type": _DUCKDB_TYPES[f.type]} for f in table.schema]


async def register_table(
    http: Any, name: str, table: pa.Table, *, write_empty: bool = True
) -> dict[str, Any]:
    """PUT the table as one Parquet object, then POST /catalog/register; returns the manifest.

    ``write_empty=False`` registers a table without rows with no object at all.
    """
    objects: list[str] = []
    if table.num_rows or write_empty:
        key = f"datasets/{name}/{uuid.uuid4().hex}.parquet"
        put = await http.put(f"/storage/put/{key}", content=parquet_bytes(table))
        assert put.status_code in (200, 201), put.text
        objects.append(key)
    response = await http.post(
        "/catalog/register",
        json={
            "name": name,
            "schema": schema_of(table),
            "objects": objects,
            "row_count": table.num_rows,
        },
    )
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def sql(http: Any, query: str, **params: Any) -> Any:
    """POST /sql and return the response."""
    return await http.post("/sql", json={"sql": query}, params=params or None)
