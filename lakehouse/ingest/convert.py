"""CSV -> Arrow record batches -> Parquet, streamed, with type widening.

Blocking (pyarrow): call ``convert_csv`` from a worker thread. Memory is
bounded by one row group of Arrow data plus the reader's read-ahead blocks,
whatever the file size (ADR 0009).

Inferred numeric columns are read as text and converted here
(``_numeric``), so a number with a leading zero (whose digits a cast would
drop) is seen, and so is any value that is not a number. On the first such
value the pass stops writing but reads on, checking the numeric columns not
yet failed, so one pass finds all of them; a second pass writes the file
with them as VARCHAR. Other inferred typed columns (dates, timestamps,
booleans) are converted by the reader, in parallel (cheaper): a value that
does not fit ends the pass and widens that column. Columns with a type
override are converted by the reader too: a value that does not fit is a 400.
"""

from __future__ import annotations

import csv
import itertools
import queue
import re
import threading
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from lakehouse.ingest.errors import InvalidCSV, InvalidTypeOverride, NotUTF8
from lakehouse.ingest.schema import (
    ARROW_TYPES,
    BIGINT,
    DECIMAL,
    DOUBLE,
    FALSE_VALUES,
    LEADING_ZERO,
    TRUE_VALUES,
    VARCHAR,
    CsvLayout,
    InferredColumn,
    ragged,
)

_CONVERSION_ERROR = re.compile(r"In CSV column #(\d+): CSV conversion error to [^:]+: (.*)", re.S)
_RAGGED = re.compile(r"Expected (\d+) columns, got (\d+)")
_NUMERIC = frozenset({BIGINT, DOUBLE, DECIMAL})
_READ_BYTES = 1024 * 1024
_DICTIONARY_SAMPLE_ROWS = 10_000


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


class _NotTyped(Exception):
    """A value in an inferred typed column does not fit its type."""


def convert_csv(
    source: Path,
    layout: CsvLayout,
    target: Path,
    options: ConvertOptions,
    quotes: int | None = None,
) -> ConvertResult:
    """Write ``source`` as Parquet to ``target`` with the layout's column types.

    Inferred typed columns holding a value that does not fit (or a number
    with a leading zero) past the sample are widened to VARCHAR (numeric
    ones all found in one pass, see the module docstring); a ragged row raises
    RaggedRows with its line, a quote never closed InvalidCSV with the line
    of its record, invalid UTF-8 NotUTF8, a value not fitting a type
    override InvalidTypeOverride. ``layout.columns`` is updated in place
    with the final types. ``quotes``, the count of ``"`` bytes in the file
    if the caller has it (the spool counts them), saves reading it once more.
    """
    _check_quotes_closed(source, layout, quotes)
    widened: list[WidenedColumn] = []
    while True:
        try:
            rows, failed = _write(source, layout, target, options)
        except pa.ArrowInvalid as exc:
            target.unlink(missing_ok=True)  # a failed write leaves a readable partial file
            raise _error(exc, source, layout) from exc
        if not failed:
            return ConvertResult(rows=rows, widened=widened)
        target.unlink(missing_ok=True)
        for index, reason in failed.items():
            column = layout.columns[index]
            widened.append(WidenedColumn(name=column.name, inferred=column.type, reason=reason))
            column.type = VARCHAR
            column.source = "widened"
            column.reason = reason


def _write(
    source: Path, layout: CsvLayout, target: Path, options: ConvertOptions
) -> tuple[int, dict[int, str]]:
    """One pass: rows written, and {column index: reason} for the inferred
    typed columns that failed (then the file written is incomplete)."""
    columns = layout.columns
    schema = pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in columns])
    checked = {i for i, c in enumerate(columns) if _converted_here(c)}
    reader = pa_csv.open_csv(
        source,
        read_options=pa_csv.ReadOptions(
            use_threads=True,
            block_size=options.block_size,
            # pyarrow parses the header row itself (a quoted name may span
            # lines) and skips it; names come from the layout.
            autogenerate_column_names=True,
            skip_rows_after_names=1,
        ),
        parse_options=pa_csv.ParseOptions(
            delimiter=layout.delimiter,
            quote_char='"',
            double_quote=True,
            newlines_in_values=True,  # quoted newlines; also avoids chunker desyncs
        ),
        convert_options=pa_csv.ConvertOptions(
            column_types={
                f"f{i}": pa.string() if i in checked else ARROW_TYPES[c.type]
                for i, c in enumerate(columns)
            },
            null_values=[""],  # "NA", "null"... are values, not nulls
            strings_can_be_null=False,
            true_values=TRUE_VALUES,
            false_values=FALSE_VALUES,
            check_utf8=True,
        ),
    )
    rows = 0
    failed: dict[int, str] = {}
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    with _BackgroundWriter(target, schema, options) as writer:
        batches = iter(reader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                match = _CONVERSION_ERROR.search(str(exc))
                if match is None:
                    raise
                index = int(match.group(1))
                column = columns[index]
                if not _widenable(column):
                    raise
                failed[index] = f"a value past the sample is not {column.type}: {match.group(2)}"
                break  # the reader cannot go on past a conversion error
            arrays = list(batch.columns)
            for index in sorted(checked):
                try:
                    arrays[index] = _numeric(arrays[index], columns[index].type)
                except _NotTyped as exc:
                    failed[index] = str(exc)
                    checked.discard(index)  # widened next pass: no need to look further
            if failed:
                writer.cancel()  # the file is discarded: stop writing it
                continue  # only checking from here on
            # pyarrow emits one batch per block; buffer them so row groups get
            # row_group_rows rows instead of one small group per block.
            pending.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
            pending_rows += batch.num_rows
            if pending_rows >= options.row_group_rows:
                writer.write(pa.Table.from_batches(pending, schema=schema))
                rows += pending_rows
                pending, pending_rows = [], 0
        if pending_rows and not failed:
            writer.write(pa.Table.from_batches(pending, schema=schema))
            rows += pending_rows
    return rows, failed


class _BackgroundWriter:
    """Writes tables as Parquet row groups in its own thread, so encoding and
    compressing one row group overlaps parsing the next (both release the
    GIL; ADR 0009). The queue holds one table, so memory stays at about
    three row groups. The file is opened on the first table, whose values
    choose the dictionary-encoded columns (``_dictionary_columns``)."""

    def __init__(self, target: Path, schema: pa.Schema, options: ConvertOptions) -> None:
        self.target = target
        self.schema = schema
        self.options = options
        self.queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.cancelled = False
        self.thread = threading.Thread(target=self._run, name="parquet-writer", daemon=True)

    def __enter__(self) -> _BackgroundWriter:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if exc_info[0] is not None:
            self.cancelled = True
        self.queue.put(None)
        self.thread.join()
        if self.error is not None and exc_info[0] is None:
            raise self.error

    def write(self, table: pa.Table) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(table)

    def cancel(self) -> None:
        """Stop writing: the file is going to be discarded."""
        self.cancelled = True

    def _run(self) -> None:
        parquet: pq.ParquetWriter | None = None
        try:
            while (table := self.queue.get()) is not None:
                if self.cancelled or self.error is not None:
                    continue  # drain: the producer must never block on a dead writer
                if parquet is None:
                    parquet = self._open(table)
                parquet.write_table(table, row_group_size=self.options.row_group_rows)
            if parquet is None and not self.cancelled and self.error is None:
                parquet = self._open(self.schema.empty_table())  # no rows: the header's columns
        except BaseException as exc:  # re-raised in the producer's thread
            self.error = exc
            while self.queue.get() is not None:
                pass
        finally:
            if parquet is not None:
                parquet.close()

    def _open(self, first: pa.Table) -> pq.ParquetWriter:
        compression = self.options.compression
        return pq.ParquetWriter(
            self.target,
            self.schema,
            compression=None if compression == "none" else compression,
            use_dictionary=_dictionary_columns(first),
        )


def _dictionary_columns(table: pa.Table) -> list[str]:
    """The columns worth dictionary encoding: at most half the values of the
    first row group's first rows distinct. For the others (ids, emails) the
    writer would build a dictionary, overflow it and fall back to plain
    encoding: measured ~17 % of the write time and a larger file (ADR 0009)."""
    sample = table.slice(0, _DICTIONARY_SAMPLE_ROWS)
    return [
        name
        for name, column in zip(sample.column_names, sample.columns, strict=True)
        if pc.count_distinct(column).as_py() <= sample.num_rows // 2
    ]


def _widenable(column: InferredColumn) -> bool:
    return column.source == "inferred" and column.type != VARCHAR


def _converted_here(column: InferredColumn) -> bool:
    return _widenable(column) and column.type in _NUMERIC


def _numeric(values: pa.Array, type_name: str) -> pa.Array:
    """Text values of an inferred numeric column as that type ("" is null),
    or _NotTyped naming the first value that does not fit."""
    first = _first_leading_zero(values)
    if first is not None:
        raise _NotTyped(
            f"a value past the sample has a leading zero ({first!r}): "
            "as a number it would lose digits"
        )
    try:
        return pc.cast(values, ARROW_TYPES[type_name])
    except pa.ArrowInvalid:
        pass  # most often an empty field: make those null and cast again
    try:
        return pc.cast(_empty_as_null(values), ARROW_TYPES[type_name])
    except pa.ArrowInvalid as exc:
        raise _NotTyped(f"a value past the sample is not {type_name}: {exc}") from exc


def _first_leading_zero(values: pa.Array) -> str | None:
    # Prefix tests are ~8x cheaper than the regex over every value; the regex
    # then runs only on the few candidates ("0", "0.5" and "-0.1" are fine).
    candidates = pc.or_(
        pc.starts_with(values, "0"),
        pc.or_(pc.starts_with(values, "-0"), pc.starts_with(values, "+0")),
    )
    if not pc.any(candidates).as_py():
        return None
    subset = pc.filter(values, candidates)
    zeros = pc.match_substring_regex(subset, LEADING_ZERO)
    if not pc.any(zeros).as_py():
        return None
    first: str = subset[pc.index(zeros, True).as_py()].as_py()
    return first


def _empty_as_null(values: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)


def _error(exc: pa.ArrowInvalid, source: Path, layout: CsvLayout) -> Exception:
    message = str(exc)
    if "invalid UTF8" in message:
        return NotUTF8("the CSV is not valid UTF-8", details={"reason": message})
    if _RAGGED.search(message):
        return _locate_ragged(source, layout)
    match = _CONVERSION_ERROR.search(message)
    if match is None:
        return InvalidCSV(f"the CSV cannot be parsed: {message}")
    column = layout.columns[int(match.group(1))]
    if column.source == "override":
        return InvalidTypeOverride(
            f"column {column.name!r} cannot be read as {column.type}: {match.group(2)}"
        )
    return InvalidCSV(f"column {column.name!r}: {match.group(2)}")


def _check_quotes_closed(source: Path, layout: CsvLayout, quotes: int | None) -> None:
    """InvalidCSV when the last record ends inside a quoted field.

    pyarrow takes everything up to the end of the file as that field's
    value. Closed quotes come in pairs, so an even count of ``"`` bytes
    (the common case) needs no parse; an odd count may still be fine (a
    quote inside an unquoted field is literal), so the csv module finds the
    last record and a strict parse of just that record tells.
    """
    if quotes is None:
        quotes = 0
        with source.open("rb") as handle:
            while block := handle.read(_READ_BYTES):
                quotes += block.count(b'"')
    if quotes % 2 == 0:
        return
    with source.open(encoding="utf-8-sig", newline="", errors="replace") as handle:
        reader = csv.reader(handle, delimiter=layout.delimiter, quotechar='"')
        last_start, previous_line = 1, 0
        for _row in reader:
            last_start, previous_line = previous_line + 1, reader.line_num
    with source.open(encoding="utf-8-sig", newline="", errors="replace") as handle:
        tail = itertools.islice(handle, last_start - 1, None)
        strict = csv.reader(tail, delimiter=layout.delimiter, quotechar='"', strict=True)
        try:
            for _row in strict:
                pass
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise InvalidCSV(
                    f"line {last_start}: a quoted field in the record starting on this line "
                    "is never closed",
                    details={"line": last_start},
                ) from exc


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
