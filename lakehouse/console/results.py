"""Running the console's queries: an Arrow result read into a table, bounded in size,
and DuckDB's error position pulled out of its message."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pyarrow as pa

from lakehouse.query import QueryEngine, ResultFormat

MAX_RESULT_BYTES = 16 * 1024 * 1024
"""The console reads at most this much of a result (Arrow IPC); past it the table says
the result was cut. Downloads go through /v1/sql and are whole."""

_LINE = re.compile(r"^LINE (\d+): ", re.MULTILINE)


def quote(identifier: str) -> str:
    """``identifier`` as a quoted SQL identifier: any column name is safe in a query."""
    return '"' + identifier.replace('"', '""') + '"'


async def run_table(engine: QueryEngine, sql: str) -> tuple[pa.Table, bool]:
    """The result of ``sql`` and whether it was cut at ``MAX_RESULT_BYTES``."""
    result = await engine.execute(sql, fmt=ResultFormat.ARROW)
    chunks, size, cut = [result.head], len(result.head), False
    if result.rest is not None:
        try:
            async for chunk in result.rest:
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_RESULT_BYTES:
                    cut = True
                    break
        finally:
            aclose = getattr(result.rest, "aclose", None)
            if aclose is not None:
                await aclose()
    reader = pa.ipc.open_stream(b"".join(chunks))
    batches = []
    try:
        for batch in reader:
            batches.append(batch)
    except pa.ArrowInvalid:  # the batch the cut fell in
        cut = True
    return pa.Table.from_batches(batches, schema=reader.schema), cut


def rows_of(table: pa.Table) -> list[list[Any]]:
    """The table's rows, each a list in column order; nested values (STRUCT, LIST, MAP)
    as their JSON text, as the CSV download writes them, not Python's repr."""
    columns = [_cells(column) for column in table.columns]
    return [list(row) for row in zip(*columns, strict=True)] if columns else []


_json = msgspec.json.Encoder(decimal_format="number")


def _cells(column: pa.ChunkedArray) -> list[Any]:
    if not pa.types.is_nested(column.type):
        return list(column.to_pylist())
    values = column.to_pylist(maps_as_pydicts="lossy")
    return [None if v is None else _json_text(v) for v in values]


def _json_text(value: Any) -> str:
    try:
        return _json.encode(value).decode()
    except (TypeError, ValueError, OverflowError):  # map keys JSON cannot hold, ...
        return str(value)


def error_position(message: str) -> tuple[int, int] | None:
    """(line, column), 1-based, from DuckDB's ``LINE n: ...`` excerpt and its caret."""
    match = _LINE.search(message)
    if match is None:
        return None
    rest = message[match.end() :].split("\n")
    if len(rest) < 2 or "^" not in rest[1]:
        return None
    return int(match.group(1)), rest[1].index("^") - len(match.group(0)) + 1
