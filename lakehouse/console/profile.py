"""A dataset's per-column profile: DuckDB's SUMMARIZE (min, max, mean), exact null and
distinct counts, the most frequent values, and a histogram for numbers and dates."""

from __future__ import annotations

from typing import Any

import msgspec

from lakehouse.console.results import quote, rows_of, run_table
from lakehouse.query import QueryEngine

TOP_VALUES = 5
BUCKETS = 10
MAX_COLUMNS = 40
"""Columns profiled (a wide table's profile would cost a query per column beyond)."""
_HISTOGRAM_TYPES = ("BIGINT", "INTEGER", "DOUBLE", "DECIMAL", "DATE", "TIMESTAMP", "FLOAT")


class ColumnProfile(msgspec.Struct):
    name: str
    type: str
    nulls: int
    distinct: int
    min: str | None
    max: str | None
    mean: str | None
    top: list[tuple[str | None, int]]
    histogram: list[int]
    """Counts of ``BUCKETS`` equal-width buckets from min to max; empty when not numeric."""


async def profile(engine: QueryEngine, name: str) -> list[ColumnProfile]:
    table = quote(name)
    summary, _ = await run_table(engine, f"SUMMARIZE SELECT * FROM {table}")
    summarized = rows_of(summary.select(["column_name", "column_type", "min", "max", "avg"]))
    summarized = summarized[:MAX_COLUMNS]
    if not summarized:
        return []
    counts = await _counts(engine, table, [row[0] for row in summarized])
    top = await _top_values(engine, table, [row[0] for row in summarized])
    profiles = []
    for index, (column, type_name, low, high, mean) in enumerate(summarized):
        histogram = []
        if type_name.startswith(_HISTOGRAM_TYPES) and low is not None:
            histogram = await _histogram(engine, table, column, type_name)
        profiles.append(
            ColumnProfile(
                name=column,
                type=type_name,
                nulls=counts[2 * index],
                distinct=counts[2 * index + 1],
                min=low,
                max=high,
                mean=mean,
                top=top.get(index, []),
                histogram=histogram,
            )
        )
    return profiles


async def _counts(engine: QueryEngine, table: str, columns: list[str]) -> list[Any]:
    """Per column: NULLs, distinct non-NULL values (exact), in one scan."""
    parts = []
    for column in columns:
        parts += [f"count(*) - count({quote(column)})", f"count(DISTINCT {quote(column)})"]
    result, _ = await run_table(engine, f"SELECT {', '.join(parts)} FROM {table}")
    return rows_of(result)[0]


async def _top_values(
    engine: QueryEngine, table: str, columns: list[str]
) -> dict[int, list[tuple[str | None, int]]]:
    """Per column index: its most frequent values (as text) and their counts."""
    parts = [
        f"(SELECT {index} AS c, CAST({quote(column)} AS VARCHAR) AS v, count(*) AS n "
        f"FROM {table} GROUP BY v ORDER BY n DESC, v NULLS LAST LIMIT {TOP_VALUES})"
        for index, column in enumerate(columns)
    ]
    result, _ = await run_table(engine, " UNION ALL ".join(parts) + " ORDER BY c, n DESC, v")
    top: dict[int, list[tuple[str | None, int]]] = {}
    for index, value, count in rows_of(result):
        top.setdefault(index, []).append((value, count))
    return top


async def _histogram(engine: QueryEngine, table: str, column: str, type_name: str) -> list[int]:
    """Counts in ``BUCKETS`` equal-width buckets between the column's min and max."""
    value = quote(column)
    if type_name.startswith(("DATE", "TIMESTAMP")):
        value = f"epoch(CAST({value} AS TIMESTAMP))"
    sql = (
        f"WITH v AS (SELECT CAST({value} AS DOUBLE) AS x FROM {table} WHERE {quote(column)} "
        "IS NOT NULL), r AS (SELECT min(x) AS lo, max(x) AS hi FROM v) "
        f"SELECT least(CAST(floor((x - lo) / ((hi - lo) / {BUCKETS})) AS BIGINT), "
        f"{BUCKETS - 1}) AS b, count(*) AS n FROM v, r WHERE hi > lo GROUP BY b ORDER BY b"
    )
    result, _ = await run_table(engine, sql)
    buckets = [0] * BUCKETS
    for bucket, count in rows_of(result):
        buckets[bucket] = count
    return buckets if any(buckets) else []
