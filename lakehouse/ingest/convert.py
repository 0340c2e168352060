"""CSV -> Arrow record batches -> Parquet, streamed, with type widening.

Blocking (pyarrow): call ``convert_csv`` from a worker thread. Memory is
bounded by one row group of Arrow data plus the reader's read-ahead blocks,
whatever the file size (ADR 0009).

The reader reads every column as text and typed columns are converted here
(``_typed``), which is what makes PostgreSQL's rule for empty values
possible (ADR 0004): an unquoted empty field is NULL in every column, a
quoted ``""`` is an empty string in a text column and NULL in a typed one
(an empty string is no number or date). Converting here also sees a number
with a leading zero (whose digits a cast would drop). On the first value of
an inferred typed column that does not fit, the pass stops writing but reads
on, checking the columns not yet failed, so one pass finds all of them; a
second pass writes the file with them as VARCHAR. A value that does not fit
a column with a type override is a 400.

A quote never closed: pyarrow takes everything up to the end of the file as
that field's value, without a word. So the reader is given the file followed
by a probe row (``_probe``): if the file ends outside quotes, the probe is its
last row, and is dropped; if it ends inside a quoted field, the probe becomes
part of that field, and the ingest is a 400 naming the line.

A row must fit in two of the reader's blocks. When one does not (a field of
several MiB), the pass starts again with blocks twice as large, up to
``max_field_bytes``. A row larger than ``max_field_bytes`` (its values and
delimiters) is a 400 naming its line: the reader refuses rows beyond two blocks,
and once two blocks exceed the limit each batch's largest row is measured.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from lakehouse.ingest.arrival import Arrival, arrival_of
from lakehouse.ingest.errors import InvalidCSV, InvalidTypeOverride, NotUTF8
from lakehouse.ingest.locate import locate_oversized, locate_ragged, unclosed_quote
from lakehouse.ingest.schema import (
    ARROW_TYPES,
    BIGINT,
    BOOLEAN,
    DECIMAL,
    DOUBLE,
    FALSE_VALUES,
    LEADING_ZERO,
    TRUE_VALUES,
    VARCHAR,
    CsvLayout,
    InferredColumn,
)

_RAGGED = "Expected {} columns, got"
_STRADDLING = "straddling object straddles two block boundaries"
_NUMERIC = frozenset({BIGINT, DOUBLE, DECIMAL})
_TRUE = pa.array(TRUE_VALUES)
_FALSE = pa.array(FALSE_VALUES)
_MiB = 1024 * 1024
_DICTIONARY_SAMPLE_ROWS = 10_000
_AHEAD = 4
# A leading zero (digits lost as a number), or hexadecimal: Arrow's integer cast reads
# "0x1F" as 31, and the sample never infers a number from it.
_NOT_DECIMAL = f"{LEADING_ZERO}|^[+-]?0[xX]"


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
    row_group_bytes: int = 32 * _MiB
    """A row group is written once it holds this much Arrow data, even with
    fewer rows: rows of large fields would otherwise pile up in memory."""
    compression: str = "zstd"
    # 1 MiB blocks: measured flatter peak RSS than 4 MiB (143 vs 178 MiB at 500k rows)
    # and no slower on 2 cores (ADR 0009).
    block_size: int = _MiB
    max_field_bytes: int = 8 * _MiB
    """The largest row accepted (its values and delimiters), and the largest block tried
    when a row does not fit two (ADR 0009)."""
    max_decompressed_bytes: int = 16 * 1024 * _MiB
    """A container format's parts (an xlsx zip) may not declare more than this in all."""


class _NotTyped(Exception):
    """A value in a typed column does not fit its type."""


class _QuoteNeverClosed(Exception):
    """The file ends inside a quoted field."""


class _RowTooLarge(Exception):
    """A row is larger than ``max_field_bytes``."""


def convert_csv(
    source: Path | Arrival,
    layout: CsvLayout,
    target: Path,
    options: ConvertOptions,
    progress: Callable[[int], None] | None = None,
) -> ConvertResult:
    """Write ``source`` as Parquet to ``target`` with the layout's column types.

    Inferred typed columns holding a value that does not fit (or a number
    with a leading zero) past the sample are widened to VARCHAR (all found
    in one pass, see the module docstring); a ragged row raises RaggedRows
    with its line, a quote never closed InvalidCSV with the line of its
    record, a row larger than ``max_field_bytes`` FieldTooLarge with its
    line, invalid UTF-8 NotUTF8, a value not fitting a type override
    InvalidTypeOverride. ``layout.columns`` is updated in place with the
    final types. ``progress`` is told the rows read so far in this pass, per block.
    ``source`` may still be arriving (``Arrival``): the first pass reads it as it grows;
    an error is located, and a second pass made, once all of it is on disk.
    """
    arrival = arrival_of(source)
    widened: list[WidenedColumn] = []
    block_size = options.block_size
    while True:
        try:
            rows, failed = _write(arrival, layout, target, options, block_size, progress)
        except pa.ArrowInvalid as exc:
            target.unlink(missing_ok=True)  # a failed write leaves a readable partial file
            if _STRADDLING in str(exc) and block_size < options.max_field_bytes:
                # The reader's memory grows with its block: take the smallest that fits.
                block_size = min(block_size * 2, options.max_field_bytes)
                continue
            raise _error(exc, arrival.wait_all(), layout, options.max_field_bytes) from exc
        except _RowTooLarge:
            target.unlink(missing_ok=True)
            raise locate_oversized(
                arrival.wait_all(), layout.delimiter, options.max_field_bytes
            ) from None
        except _QuoteNeverClosed:
            target.unlink(missing_ok=True)
            raise unclosed_quote(arrival.wait_all(), layout.delimiter) or InvalidCSV(
                "a quoted field is never closed"
            ) from None
        except BaseException:
            target.unlink(missing_ok=True)
            raise
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
    source: Arrival,
    layout: CsvLayout,
    target: Path,
    options: ConvertOptions,
    block_size: int,
    progress: Callable[[int], None] | None,
) -> tuple[int, dict[int, str]]:
    """One pass: rows written, and {column index: reason} for the inferred
    typed columns that failed (then the file written is incomplete)."""
    columns = layout.columns
    schema = pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in columns])
    checked = {i for i, c in enumerate(columns) if c.type != VARCHAR}
    rows = 0
    failed: dict[int, str] = {}
    refused: Exception | None = None
    pending: list[pa.RecordBatch] = []
    pending_rows = pending_bytes = 0
    # The reader takes rows up to two blocks: measure them when that is over the limit.
    measure = 2 * block_size > options.max_field_bytes
    with (
        _ProbedFile(source, _probe(layout), _AHEAD if block_size > _MiB else None) as stream,
        _BackgroundWriter(target, schema, options) as writer,
    ):
        reader = _open_reader(stream, layout, block_size)
        for batch, last in _with_last(_consumed(reader, stream)):
            if last:
                batch = _without_probe(batch)
            if measure and _largest_row_bytes(batch) > options.max_field_bytes:
                raise _RowTooLarge
            arrays = list(batch.columns)
            for index in sorted(checked):
                column = columns[index]
                try:
                    arrays[index] = _typed(arrays[index], column)
                except _NotTyped as exc:
                    if not _widenable(column):
                        refused = refused or _refusal(column, str(exc))
                    failed[index] = str(exc)
                    checked.discard(index)  # widened next pass: no need to look further
            if failed:
                writer.cancel()  # the file is discarded: stop writing it
                continue  # only checking from here on (the probe row is last)
            # pyarrow emits one batch per block; buffer them so row groups get
            # row_group_rows rows instead of one small group per block.
            pending.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
            pending_rows += pending[-1].num_rows
            pending_bytes += pending[-1].nbytes
            if progress is not None:
                progress(rows + pending_rows)
            if pending_rows >= options.row_group_rows or pending_bytes >= options.row_group_bytes:
                writer.write(pa.Table.from_batches(pending, schema=schema))
                rows += pending_rows
                pending, pending_rows, pending_bytes = [], 0, 0
        if refused is not None:
            raise refused
        if pending_rows and not failed:
            writer.write(pa.Table.from_batches(pending, schema=schema))
            rows += pending_rows
    return rows, failed


def _open_reader(
    stream: io.RawIOBase, layout: CsvLayout, block_size: int
) -> pa_csv.CSVStreamingReader:
    return pa_csv.open_csv(
        pa.PythonFile(stream, mode="r"),
        read_options=pa_csv.ReadOptions(
            use_threads=True,
            block_size=block_size,
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
            column_types={f"f{i}": pa.string() for i in range(len(layout.columns))},
            # Only an unquoted empty field is null; "NA", "null"... are values.
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            check_utf8=True,
        ),
    )


class _ProbedFile(io.RawIOBase):
    """The file's bytes, then ``probe``'s.

    With ``ahead``, a read waits while that many blocks are read and not yet
    consumed (``consumed``): pyarrow's reader reads up to 32 blocks ahead,
    which with large blocks is a lot of memory. Every block read yields one
    batch (an empty one counts too) and a batch needs at most the block after
    its own, so the wait ends; closing the file (the pass ended, or failed)
    ends it too.
    """

    def __init__(self, source: Arrival, probe: bytes, ahead: int | None = None) -> None:
        super().__init__()
        self.file = source.open()
        self.probe = probe
        self.ahead = ahead
        self.reads = 0
        self.batches = 0
        self.ended = False
        self.progress = threading.Condition()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if (ahead := self.ahead) is not None:
            with self.progress:
                self.progress.wait_for(lambda: self.ended or self.reads - self.batches < ahead)
                self.reads += 1
        data = self.file.read(size)
        # The probe in the same read as the file's end: a file of one line without
        # a newline must not reach pyarrow as a first block with no row end.
        take = len(self.probe) if size < 0 else size - len(data)
        tail, self.probe = self.probe[:take], self.probe[take:]
        return data + tail if tail else data

    def consumed(self) -> None:
        with self.progress:
            self.batches += 1
            self.progress.notify_all()

    def close(self) -> None:
        with self.progress:  # a read still waiting must not wait for a consumer gone
            self.ended = True
            self.progress.notify_all()
        self.file.close()
        super().close()


def _consumed(reader: pa_csv.CSVStreamingReader, stream: _ProbedFile) -> Iterator[pa.RecordBatch]:
    for batch in reader:
        stream.consumed()
        if batch.num_rows:
            yield batch


def _largest_row_bytes(batch: pa.RecordBatch) -> int:
    """The largest row's values and delimiters in bytes (as ``locate_oversized`` counts)."""
    if not batch.num_rows or not batch.num_columns:
        return 0
    lengths = [pc.fill_null(pc.binary_length(column), 0) for column in batch.columns]
    total = lengths[0]
    for length in lengths[1:]:
        total = pc.add(total, length)
    largest = int(pc.max(total).as_py())
    columns: int = batch.num_columns
    return largest + columns


def _probe(layout: CsvLayout) -> bytes:
    """A row after the file's last: a quoted empty first field, unquoted empty
    others (read as '' and nulls). The newline before it ends a last line that
    has none (or makes a blank line, which the reader skips)."""
    return ("\n" + '""' + layout.delimiter * (len(layout.columns) - 1) + "\n").encode()


def _without_probe(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The last batch without the probe row, or _QuoteNeverClosed when the
    probe is not its last row (it went into a quoted field left open)."""
    last = batch.num_rows - 1
    probe_found = batch.column(0)[last].as_py() == "" and all(
        not column[last].is_valid for column in batch.columns[1:]
    )
    if not probe_found:
        raise _QuoteNeverClosed
    return batch.slice(0, last)


def _with_last(batches: Iterable[pa.RecordBatch]) -> Iterator[tuple[pa.RecordBatch, bool]]:
    """Each batch, and whether it is the last; _QuoteNeverClosed when there is
    none (the probe row went into the header's open quote)."""
    iterator = iter(batches)
    previous = next(iterator, None)
    if previous is None:
        raise _QuoteNeverClosed
    for batch in iterator:
        yield previous, False
        previous = batch
    yield previous, True


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
    encoding: measured ~17 % of the write time and a larger file (ADR 0009). Nested
    columns (JSON's STRUCT/LIST) are left to the writer's default: no distinct count."""
    sample = table.slice(0, _DICTIONARY_SAMPLE_ROWS)
    return [
        name
        for name, column in zip(sample.column_names, sample.columns, strict=True)
        if not pa.types.is_nested(column.type)
        and pc.count_distinct(column).as_py() <= sample.num_rows // 2
    ]


def _widenable(column: InferredColumn) -> bool:
    return column.source == "inferred" and column.type != VARCHAR


def _refusal(column: InferredColumn, reason: str) -> Exception:
    if column.source == "override":
        return InvalidTypeOverride(
            f"column {column.name!r} cannot be read as {column.type}: {reason}"
        )
    return InvalidCSV(f"column {column.name!r}: {reason}")


def _typed(values: pa.Array, column: InferredColumn) -> pa.Array:
    """Text values of a typed column as its type (a quoted "" is null, like
    the unquoted empty field the reader made null), or _NotTyped naming the
    first value that does not fit."""
    if _widenable(column) and column.type in _NUMERIC:
        first = _first_leading_zero(values)
        if first is not None:
            raise _NotTyped(
                f"a value past the sample has a leading zero or is hexadecimal ({first!r}): "
                "as a number it would lose digits or change"
            )
    if column.source == "override":
        values = pc.utf8_trim_whitespace(values)  # as lenient as pyarrow's own parsers were
    try:
        return _cast(values, column.type)
    except pa.ArrowInvalid:
        pass  # most often a quoted "": make those null and cast again
    try:
        return _cast(_empty_as_null(values), column.type)
    except pa.ArrowInvalid as exc:
        if _widenable(column):
            raise _NotTyped(f"a value past the sample is not {column.type}: {exc}") from exc
        raise _NotTyped(str(exc)) from exc


def _cast(values: pa.Array, type_name: str) -> pa.Array:
    if type_name != BOOLEAN:
        return pc.cast(values, ARROW_TYPES[type_name])
    # Arrow's cast would also take 1/0 and any case; ADR 0004 takes true/false only.
    true = pc.is_in(values, value_set=_TRUE)
    known = pc.or_(true, pc.is_in(values, value_set=_FALSE))
    wrong = pc.and_(pc.is_valid(values), pc.invert(known))
    if pc.any(wrong).as_py():
        raise pa.ArrowInvalid(f"invalid value {pc.filter(values, wrong)[0].as_py()!r}")
    return pc.if_else(pc.is_valid(values), true, pa.scalar(None, pa.bool_()))


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
    zeros = pc.match_substring_regex(subset, _NOT_DECIMAL)
    if not pc.any(zeros).as_py():
        return None
    first: str = subset[pc.index(zeros, True).as_py()].as_py()
    return first


def _empty_as_null(values: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)


def _error(exc: pa.ArrowInvalid, source: Path, layout: CsvLayout, limit: int) -> Exception:
    """The 400 for a pass pyarrow gave up on, naming the line (``locate``)."""
    message, delimiter = str(exc), layout.delimiter
    if "invalid UTF8" in message:
        return NotUTF8("the CSV is not valid UTF-8", details={"reason": message})
    if _RAGGED.format(len(layout.columns)) in message:
        # A quote left open makes its record short of fields: say that instead.
        return unclosed_quote(source, delimiter) or locate_ragged(
            source, delimiter, len(layout.columns)
        )
    if _STRADDLING in message:
        return unclosed_quote(source, delimiter) or locate_oversized(source, delimiter, limit)
    return InvalidCSV(f"the CSV cannot be parsed: {message}")
