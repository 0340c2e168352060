"""CSV -> Arrow record batches -> Parquet, streamed, with type widening.

Blocking (pyarrow): call ``convert_csv`` from a worker thread. Memory is
bounded by one row group of Arrow data plus the reader's read-ahead blocks,
whatever the file size (ADR 0009).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from lakehouse.ingest.errors import InvalidCSV, InvalidTypeOverride, NotUTF8
from lakehouse.ingest.schema import (
    ARROW_TYPES,
    FALSE_VALUES,
    TRUE_VALUES,
    VARCHAR,
    CsvLayout,
    ragged,
)

_CONVERSION_ERROR = re.compile(r"In CSV column #(\d+): CSV conversion error to [^:]+: (.*)", re.S)
_RAGGED = re.compile(r"Expected (\d+) columns, got (\d+)")


class WidenedColumn(msgspec.Struct):
    """A column inferred as typed that held a non-conforming value past the sample."""

    name: str
    inferred: str
    reason: str


class ConvertResult(msgspec.Struct):
    rows: int
    widened: list[WidenedColumn]


class ConvertOptions(msgspec.Struct):
    row_group_rows: int = 122_880
    compression: str = "zstd"
    # 1 MiB blocks: measured flatter peak RSS than 4 MiB (143 vs 178 MiB at 500k rows)
    # and no slower on 2 cores (ADR 0009).
    block_size: int = 1024 * 1024
    use_threads: bool = True


def convert_csv(
    source: Path, layout: CsvLayout, target: Path, options: ConvertOptions
) -> ConvertResult:
    """Write ``source`` as Parquet to ``target`` with the layout's column types.

    A conversion error in a typed column widens that column to VARCHAR and
    starts over (at most once per column); a ragged row raises RaggedRows with
    its line; invalid UTF-8 raises NotUTF8. ``layout.columns`` is updated in
    place with the final types.
    """
    widened: list[WidenedColumn] = []
    while True:
        try:
            rows = _write(source, layout, target, options)
        except pa.ArrowInvalid as exc:
            target.unlink(missing_ok=True)  # a failed write leaves a readable partial file
            _widen_or_raise(exc, source, layout, widened)
            continue
        return ConvertResult(rows=rows, widened=widened)


def _write(source: Path, layout: CsvLayout, target: Path, options: ConvertOptions) -> int:
    columns = layout.columns
    schema = pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in columns])
    reader = pa_csv.open_csv(
        source,
        read_options=pa_csv.ReadOptions(
            use_threads=options.use_threads,
            block_size=options.block_size,
            skip_rows=1,  # the header (and its BOM): names come from the layout
            column_names=[c.name for c in columns],
        ),
        parse_options=pa_csv.ParseOptions(
            delimiter=layout.delimiter,
            quote_char='"',
            double_quote=True,
            newlines_in_values=True,  # quoted newlines; also avoids chunker desyncs
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types=schema,
            null_values=[""],  # "NA", "null"... are values, not nulls
            strings_can_be_null=False,
            true_values=TRUE_VALUES,
            false_values=FALSE_VALUES,
            check_utf8=True,
        ),
    )
    rows = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    compression = None if options.compression == "none" else options.compression
    with pq.ParquetWriter(target, schema, compression=compression) as writer:
        # pyarrow emits one batch per block; buffer them so row groups get
        # row_group_rows rows instead of one small group per block.
        for batch in reader:
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= options.row_group_rows:
                table = pa.Table.from_batches(pending, schema=schema)
                writer.write_table(table, row_group_size=options.row_group_rows)
                rows += pending_rows
                pending, pending_rows = [], 0
        if pending_rows:
            writer.write_table(pa.Table.from_batches(pending, schema=schema))
            rows += pending_rows
    return rows


def _widen_or_raise(
    exc: pa.ArrowInvalid, source: Path, layout: CsvLayout, widened: list[WidenedColumn]
) -> None:
    message = str(exc)
    if "invalid UTF8" in message:
        raise NotUTF8("the CSV is not valid UTF-8", details={"reason": message}) from exc
    if _RAGGED.search(message):
        raise _locate_ragged(source, layout) from exc
    match = _CONVERSION_ERROR.search(message)
    if match is None:
        raise InvalidCSV(f"the CSV cannot be parsed: {message}") from exc
    column = layout.columns[int(match.group(1))]
    if column.source == "override":
        raise InvalidTypeOverride(
            f"column {column.name!r} cannot be read as {column.type}: {match.group(2)}"
        ) from exc
    if column.type == VARCHAR:  # nothing to widen to
        raise InvalidCSV(f"column {column.name!r}: {match.group(2)}") from exc
    widened.append(
        WidenedColumn(
            name=column.name,
            inferred=column.type,
            reason=f"a value past the sample is not {column.type}: {match.group(2)}",
        )
    )
    column.type = VARCHAR
    column.source = "widened"
    column.reason = widened[-1].reason


def _locate_ragged(source: Path, layout: CsvLayout) -> Exception:
    """pyarrow's multi-threaded reader does not say where; find the first
    ragged record (and the physical line it starts on) with the csv module."""
    width = len(layout.columns)
    with source.open(encoding="utf-8-sig", newline="", errors="replace") as handle:
        reader = csv.reader(handle, delimiter=layout.delimiter, quotechar='"')
        next(reader, None)
        previous_line, row_number = reader.line_num, 1
        for row in reader:
            if row:
                row_number += 1
                if len(row) != width:
                    return ragged(previous_line + 1, row_number, width, len(row))
            previous_line = reader.line_num
    return InvalidCSV("a row has another number of fields than the header")
