"""A dataset's per-column profile: min, max and mean (``column_stats_sql``), exact null
and distinct counts, the most frequent values, and a histogram for numbers and dates."""

from __future__ import annotations

from typing import Any

import msgspec

from lakehouse.console.results import quote, rows_of, run_table
from lakehouse.query import QueryEngine, column_stats_sql

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
    described, _ = await run_table(engine, f"DESCRIBE SELECT * FROM {table}")
    columns = rows_of(described.select(["column_name", "column_type"]))[:MAX_COLUMNS]
    if not columns:
        return []
    stats, _ = await run_table(engine, column_stats_sql(name, [(c, t) for c, t in columns]))
    summarized = [
        (column, type_name, low, high, mean)
        for (column, type_name), (low, high, mean) in zip(
            columns, rows_of(stats.select(["min", "max", "mean"])), strict=True
        )
    ]
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
    # Positions, not aliases: an alias may also be a column's (or the table's) name.
    parts = [
        f"(SELECT {index}, CAST({quote(column)} AS VARCHAR), count(*) "
        f"FROM {table} GROUP BY 2 ORDER BY 3 DESC, 2 NULLS LAST LIMIT {TOP_VALUES})"
        for index, column in enumerate(columns)
    ]
    union = " UNION ALL ".join(parts)
    result, _ = await run_table(engine, f"SELECT * FROM ({union}) ORDER BY 1, 3 DESC, 2")
    top: dict[int, list[tuple[str | None, int]]] = {}
    for index, value, count in rows_of(result):
        top.setdefault(index, []).append((value, count))
    return top


async def _histogram(engine: QueryEngine, table: str, column: str, type_name: str) -> list[int]:
    """Counts in ``BUCKETS`` equal-width buckets between the column's min and max."""
    value = quote(column)
    if type_name.startswith(("DATE", "TIMESTAMP")):
        value = f"epoch(CAST({value} AS TIMESTAMP))"
    # Halved so that hi - lo cannot overflow near ±1e308; infinities and NaN left out.
    # The CTE names hold a space, which no dataset name can.
    sql = (
        f'WITH "all values" AS (SELECT CAST({value} AS DOUBLE) / 2 AS x FROM {table}), '
        '"finite values" AS (SELECT x FROM "all values" WHERE isfinite(x)), '
        '"value range" AS (SELECT min(x) AS lo, max(x) AS hi FROM "finite values") '
        f"SELECT least(CAST(floor((x - lo) / ((hi - lo) / {BUCKETS})) AS BIGINT), "
        f'{BUCKETS - 1}), count(*) FROM "finite values", "value range" '
        "WHERE hi > lo GROUP BY 1 ORDER BY 1"
    )
    result, _ = await run_table(engine, sql)
    buckets = [0] * BUCKETS
    for bucket, count in rows_of(result):
        buckets[bucket] = count
    return buckets if any(buckets) else []
