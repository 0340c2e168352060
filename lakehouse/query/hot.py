"""In-memory copies of datasets ("hot" datasets) under a byte budget (ADR 0017).

A query through a view over Parquet binds ``read_parquet`` (files, footers,
schema) every time; a view over a DuckDB table does not, and scanning memory
beats decoding Parquet. So, while the budget lasts, the current version of
each dataset is copied into a table of the ``_hot`` schema, and its view is
pointed at that copy. ``ViewRegistrar`` decides when: a new version gets a
view over its Parquet objects at once, and the copy follows in the background;
the copy of an older version is dropped as soon as the view stops reading it.
So a query never waits for a copy and never reads a stale one.

Blocking DuckDB work: called in a worker thread.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import duckdb

log = logging.getLogger("lakehouse.query")

SCHEMA = "_hot"
_numbers = itertools.count(1)


def table_name() -> str:
    """A fresh name in the copies' schema (one per copy: a new version is a new table)."""
    return f"{SCHEMA}.copy_{next(_numbers)}"


def parquet_bytes(con: duckdb.DuckDBPyConnection, paths: Sequence[str]) -> int:
    """The uncompressed size of the files' column data, from their footers: a lower bound
    of a copy's memory (DuckDB keeps in-memory tables uncompressed)."""
    files = ", ".join("'" + path.replace("'", "''") + "'" for path in paths)
    row = con.execute(
        f"SELECT coalesce(sum(total_uncompressed_size), 0) FROM parquet_metadata([{files}])"
    ).fetchone()
    return int(row[0]) if row else 0


def table_memory(con: duckdb.DuckDBPyConnection) -> int:
    """Bytes the database's in-memory tables hold now."""
    row = con.execute(
        "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory() "
        "WHERE tag = 'IN_MEMORY_TABLE'"
    ).fetchone()
    return int(row[0]) if row else 0


def create_copy(con: duckdb.DuckDBPyConnection, table: str, select: str) -> int:
    """``CREATE TABLE table AS select``; the bytes the in-memory tables grew by."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    before = table_memory(con)
    con.execute(f"CREATE TABLE {table} AS {select}")
    return table_memory(con) - before


def drop_copy(con: duckdb.DuckDBPyConnection, table: str) -> None:
    try:
        con.execute(f"DROP TABLE IF EXISTS {table}")
    except duckdb.Error:
        log.warning("could not drop the in-memory copy %s", table, exc_info=True)
