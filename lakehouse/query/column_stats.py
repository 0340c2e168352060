"""Per-column statistics in one scan, computed directly rather than with SUMMARIZE:
SUMMARIZE also computes a standard deviation, which fails outright on doubles near
±1e308, and one failing column would take the whole profile with it."""

from __future__ import annotations

NUMERIC_TYPES = (
    *("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER"),
    *("USMALLINT", "UTINYINT", "DOUBLE", "FLOAT", "REAL", "DECIMAL"),
)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def column_stats_sql(table: str, columns: list[tuple[str, str]]) -> str:
    """SQL answering one row per ``(name, type)`` column of ``table`` (an unquoted name),
    in order: ``column_name``, ``min``, ``max`` (as text), ``approx_unique``,
    ``null_percentage`` and ``mean`` (as text; NULL unless the column is numeric)."""
    structs = []
    for name, type_name in columns:
        column = _quote(name)
        mean = "NULL"
        if type_name.upper().startswith(NUMERIC_TYPES):
            mean = f"CAST(avg(CAST({column} AS DOUBLE)) AS VARCHAR)"  # inf, never an error
        structs.append(
            f"{{'column_name': {_literal(name)}, 'min': CAST(min({column}) AS VARCHAR), "
            f"'max': CAST(max({column}) AS VARCHAR), "
            f"'approx_unique': approx_count_distinct({column}), "
            f"'null_percentage': round(100.0 * (count(*) - count({column})) "
            f"/ nullif(count(*), 0), 2)::DOUBLE, 'mean': {mean}}}"
        )
    return (
        f"WITH stats AS (SELECT [{', '.join(structs)}] AS s FROM {_quote(table)}) "
        "SELECT unnest(s, recursive := true) FROM stats"
    )
