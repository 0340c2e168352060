"""Helpers for catalog tests: real (small) Parquet data objects, commit and register
requests, and their JSON bodies.

The catalog opens every file it is offered and checks that it is Parquet with the
request's columns, so the objects these helpers place are real Parquet files
written with pyarrow, with deterministic rows: row ``i`` of a file written with
``start=s`` holds the value ``s + i`` in every column, in that column's type.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import re
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.catalog import (
    Catalog,
    Column,
    ColumnTyping,
    CommitMode,
    CommitRequest,
    RegisterRequest,
    Registration,
    SourceFile,
)
from lakehouse.layout import data_key
from lakehouse.storage import ObjectStore

COLUMNS = [Column("id", "BIGINT"), Column("zip", "VARCHAR")]
ROWS = 3
"""Rows of each object ``put_objects`` writes unless told otherwise."""


def schema_json(columns: Sequence[Column]) -> list[dict[str, str]]:
    """Columns as the JSON of a register body or a conflict's details."""
    return [{"name": c.name, "type": c.type} for c in columns]


SCHEMA = schema_json(COLUMNS)
"""COLUMNS as JSON (the register body's ``schema``)."""
OTHER_COLUMNS = [Column("id", "VARCHAR"), Column("zip", "VARCHAR")]
OTHER_SCHEMA = schema_json(OTHER_COLUMNS)

_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
_EPOCH = dt.datetime(2026, 1, 1)


def _arrow_type(duckdb_type: str) -> pa.DataType:
    simple = {
        "BIGINT": pa.int64(),
        "INTEGER": pa.int32(),
        "DOUBLE": pa.float64(),
        "FLOAT": pa.float32(),
        "BOOLEAN": pa.bool_(),
        "VARCHAR": pa.string(),
        "DATE": pa.date32(),
        "TIMESTAMP": pa.timestamp("us"),
        "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="UTC"),
        "BLOB": pa.binary(),
    }
    if duckdb_type in simple:
        return simple[duckdb_type]
    if match := _DECIMAL.fullmatch(duckdb_type):
        return pa.decimal128(int(match[1]), int(match[2]))
    raise ValueError(f"no test values for column type {duckdb_type!r}")


def _value(duckdb_type: str, n: int) -> Any:
    if duckdb_type in ("BIGINT", "INTEGER"):
        return n
    if duckdb_type in ("DOUBLE", "FLOAT"):
        return n + 0.5
    if duckdb_type == "BOOLEAN":
        return n % 2 == 0
    if duckdb_type == "VARCHAR":
        return f"{n:05d}"  # zip-like: leading zeros
    if duckdb_type == "DATE":
        return (_EPOCH + dt.timedelta(days=n)).date()
    if duckdb_type == "TIMESTAMP":
        return _EPOCH + dt.timedelta(hours=n)
    if duckdb_type == "TIMESTAMP WITH TIME ZONE":
        return (_EPOCH + dt.timedelta(hours=n)).replace(tzinfo=dt.UTC)
    if duckdb_type == "BLOB":
        return str(n).encode()
    if _DECIMAL.fullmatch(duckdb_type):
        return decimal.Decimal(n)
    raise ValueError(f"no test values for column type {duckdb_type!r}")


def arrow_table(columns: Sequence[Column] = COLUMNS, rows: int = ROWS, start: int = 0) -> pa.Table:
    """``rows`` rows of ``columns``; row ``i`` holds ``start + i`` in every column."""
    schema = pa.schema([pa.field(c.name, _arrow_type(c.type)) for c in columns])
    data = {c.name: [_value(c.type, start + i) for i in range(rows)] for c in columns}
    return pa.Table.from_pydict(data, schema=schema)


def parquet_bytes(columns: Sequence[Column] = COLUMNS, rows: int = ROWS, start: int = 0) -> bytes:
    """``arrow_table(...)`` as the bytes of a Parquet file, as ingest writes them."""
    sink = io.BytesIO()
    pq.write_table(arrow_table(columns, rows, start), sink, compression="zstd")
    return sink.getvalue()


async def put_objects(
    store: ObjectStore,
    *keys: str,
    columns: Sequence[Column] = COLUMNS,
    rows: int = ROWS,
    start: int = 0,
) -> list[str]:
    """Write a real Parquet file with ``columns`` and ``rows`` rows under each key."""
    data = parquet_bytes(columns, rows, start)
    for key in keys:
        await store.put(key, data)
    return list(keys)


async def read_rows(store: ObjectStore, keys: Sequence[str]) -> list[dict[str, Any]]:
    """Every row of the Parquet objects ``keys``, read back through the store."""
    tables = [pq.read_table(io.BytesIO(await store.get(key))) for key in keys]
    return [row for table in tables for row in table.to_pylist()]


def register_body(
    name: str,
    objects: list[str],
    *,
    schema: list[dict[str, str]] | None = None,
    row_count: int | None = None,
) -> dict[str, Any]:
    """The JSON body of POST /catalog/register; the row count defaults to what
    ``put_objects`` wrote into ``objects`` (``ROWS`` each)."""
    return {
        "name": name,
        "schema": schema if schema is not None else SCHEMA,
        "objects": objects,
        "row_count": row_count if row_count is not None else ROWS * len(objects),
    }


def register_request(
    name: str, objects: list[str], columns: list[Column] = COLUMNS, rows: int | None = None
) -> RegisterRequest:
    """A RegisterRequest (``register_body`` is its JSON twin); ``rows`` defaults to
    what ``put_objects`` wrote into ``objects``."""
    row_count = rows if rows is not None else ROWS * len(objects)
    return RegisterRequest(name=name, schema=columns, objects=objects, row_count=row_count)


def commit_request(
    name: str,
    objects: list[str],
    mode: CommitMode = CommitMode.AUTO,
    columns: list[Column] = COLUMNS,
    *,
    source: SourceFile | None = None,
    typing: list[ColumnTyping] | None = None,
) -> CommitRequest:
    """A CommitRequest in ``mode``."""
    return CommitRequest(
        name=name,
        schema=columns,
        objects=objects,
        mode=mode,
        source=source,
        typing=typing or [],
    )


async def commit_file(
    catalog: Catalog,
    store: ObjectStore,
    name: str,
    mode: CommitMode = CommitMode.AUTO,
    columns: list[Column] = COLUMNS,
    *,
    rows: int = ROWS,
    start: int = 0,
    source: SourceFile | None = None,
) -> Registration:
    """Write one new Parquet file where ingest would (``datasets/<name>/data/<uuid>``)
    and commit it in ``mode``."""
    [key] = await put_objects(store, data_key(name), columns=columns, rows=rows, start=start)
    return await catalog.commit(commit_request(name, [key], mode, columns, source=source))
