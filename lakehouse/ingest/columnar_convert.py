"""Parquet and Arrow IPC uploads: the schema kept as written (ADR 0021).

Both formats already carry types, so nothing is inferred: every column keeps its
type when a table can hold it, or takes the nearest type that holds every value
without loss (an ``int8`` as INTEGER, a ``uint64`` as DECIMAL(20,0), a
``large_string`` as VARCHAR, a millisecond timestamp as microseconds ...), and the
typing report says so in the column's ``reason``. Nested types (struct, list, map)
are mapped field by field. A type with no such neighbour (a union, a duration, an
interval), or a value that would lose precision on the way (a nanosecond timestamp
that is not a whole microsecond), is a 400 naming the column.

The file is read batch by batch from the spooled upload, never whole: Parquet by
``iter_batches`` (one row group's pages at a time), an Arrow file through a memory
map (random access), an Arrow stream message by message. Batches are regrouped into
row groups of our own size and compression, so a table's files are alike whatever
wrote the upload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq

from lakehouse.catalog import UnsupportedType, arrow_column_type, arrow_type
from lakehouse.errors import BadRequest
from lakehouse.ingest.errors import (
    DecompressedTooLarge,
    InvalidArrow,
    InvalidParquet,
    InvalidTypeOverride,
    UnsupportedColumnType,
)
from lakehouse.ingest.formats import Converted, ConvertRequest
from lakehouse.ingest.schema import InferredColumn, normalise_header

_MAX_DECIMAL128 = 38
# A column chunk is decompressed whole while its row group is read: a small file can
# declare gigabytes (a Parquet bomb). Larger chunks are refused before anything is read.
_MAX_CHUNK_BYTES = 512 * 1024 * 1024


class _Stored(NamedTuple):
    """The Arrow type a column is written as, and what changed on the way."""

    type: pa.DataType
    notes: list[str]


class _Column(NamedTuple):
    name: str
    stored: pa.DataType
    typed: InferredColumn


def convert_parquet(source: Path, target: Path, request: ConvertRequest) -> Converted:
    """The ``Converter`` of Parquet uploads."""
    _refuse_overrides(request, "Parquet")
    try:
        # pre_buffer would read every row group asked for up front: the whole file.
        parquet = pq.ParquetFile(source, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise _invalid(InvalidParquet, "Parquet", exc, source) from None
    with parquet:
        _check_declared_sizes(parquet.metadata, request)
        schema = parquet.schema_arrow
        return _convert(
            schema, _parquet_batches(parquet, request), target, request, InvalidParquet, source
        )


def _parquet_batches(parquet: pq.ParquetFile, request: ConvertRequest) -> Iterator[pa.RecordBatch]:
    """The file's rows a row group at a time (asked for together, the groups are read
    ahead of their batches)."""
    batch_rows = _batch_rows(parquet.metadata, request)
    for group in range(parquet.num_row_groups):
        yield from parquet.iter_batches(
            batch_size=batch_rows, row_groups=[group], use_threads=False
        )


def _check_declared_sizes(metadata: pq.FileMetaData, request: ConvertRequest) -> None:
    """Refuse (413) a file whose column chunks declare more than the converter can hold:
    one chunk over ``_MAX_CHUNK_BYTES``, values averaging over ``max_field_bytes`` (the
    largest row a CSV may have), or more than ``max_decompressed_bytes`` in all."""
    options = request.options
    total = 0
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            size = chunk.total_uncompressed_size
            total += size
            per_value = size / max(chunk.num_values, 1)
            if size > _MAX_CHUNK_BYTES or per_value > options.max_field_bytes:
                raise DecompressedTooLarge(
                    f"column {chunk.path_in_schema!r} of row group {group} declares {size} "
                    f"bytes uncompressed ({per_value:.0f} a value): more than this server "
                    f"converts in memory ({_MAX_CHUNK_BYTES} a column chunk, "
                    f"{options.max_field_bytes} a value); write it with smaller row groups",
                    details={"column": chunk.path_in_schema, "row_group": group},
                )
    if total > options.max_decompressed_bytes:
        raise DecompressedTooLarge(
            f"the file declares {total} bytes uncompressed, more than the limit of "
            f"{options.max_decompressed_bytes}",
            details={"max_decompressed_bytes": options.max_decompressed_bytes},
        )


def convert_arrow(source: Path, target: Path, request: ConvertRequest) -> Converted:
    """The ``Converter`` of Arrow IPC uploads, the file format (``ARROW1``, read through
    a memory map) or the stream format."""
    _refuse_overrides(request, "Arrow")
    with pa.memory_map(str(source)) as mapped:
        batches: Iterator[pa.RecordBatch]
        try:
            reader = pa_ipc.open_file(mapped)
            schema = reader.schema
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        except (pa.ArrowException, OSError):
            try:
                mapped.seek(0)
                stream = pa_ipc.open_stream(mapped)
            except (pa.ArrowException, OSError) as exc:
                raise _invalid(InvalidArrow, "Arrow IPC", exc, source) from None
            schema, batches = stream.schema, iter(stream)
        return _convert(schema, batches, target, request, InvalidArrow, source)


def _refuse_overrides(request: ConvertRequest, kind: str) -> None:
    if request.overrides:
        raise InvalidTypeOverride(
            f"?types= applies to the text formats (CSV, TSV, JSON, xlsx); a {kind} file's "
            "columns keep the types it was written with",
            details={"overrides": sorted(request.overrides)},
        )


def _invalid(error: type[BadRequest], kind: str, exc: BaseException, source: Path) -> BadRequest:
    """A 400 for an upload that is not what it claims; Arrow's reason without the
    spool path."""
    reason = str(exc).replace(str(source), "<upload>").splitlines()[0] if str(exc) else ""
    return error(
        f"the upload is not a readable {kind} file (truncated, corrupt or another format)",
        details={"reason": reason[:300] or type(exc).__name__},
    )


def _batch_rows(metadata: pq.FileMetaData, request: ConvertRequest) -> int:
    """Rows per batch read: our row group's rows, fewer when the file's rows are wide
    enough that so many would pass our row group's bytes."""
    options = request.options
    rows = max(metadata.num_rows, 1)
    size = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    wide = options.row_group_bytes * rows // max(size, 1)
    return max(1, min(options.row_group_rows, int(wide)))


def _convert(
    schema: pa.Schema,
    batches: Iterator[pa.RecordBatch],
    target: Path,
    request: ConvertRequest,
    invalid: type[BadRequest],
    source: Path,
) -> Converted:
    kind = "Parquet" if invalid is InvalidParquet else "Arrow IPC"
    columns = _plan(schema, request.dataset_types)
    stored = pa.schema([pa.field(c.name, c.stored) for c in columns])
    options = request.options
    compression = None if options.compression == "none" else options.compression
    rows = 0
    with pq.ParquetWriter(target, stored, compression=compression) as writer:
        groups = _RowGroups(writer, options.row_group_rows, options.row_group_bytes)
        try:
            for batch in batches:
                groups.add(_cast(batch, columns, stored))
                rows += batch.num_rows
                if request.progress is not None:
                    request.progress(rows)
        except (pa.ArrowException, OSError) as exc:  # a page or message cut short ...
            raise _invalid(invalid, kind, exc, source) from None
        groups.flush()
    return Converted(columns=[c.typed for c in columns], rows=rows)


def _plan(schema: pa.Schema, dataset_types: dict[str, str]) -> list[_Column]:
    """Each column's name (normalised as CSV headers are), the type it is stored as,
    and how it was typed."""
    if not len(schema):
        raise UnsupportedColumnType("the file has no columns", details={"columns": 0})
    names = normalise_header(schema.names)
    columns = []
    for name, field in zip(names, schema, strict=True):
        stored = _storable(name, field.type)
        try:
            duckdb = arrow_column_type(stored.type)
            arrow_type(duckdb)  # every part of it has an Iceberg type too
        except UnsupportedType as exc:
            raise _unsupported(name, field.type, str(exc)) from None
        reason = "; ".join(dict.fromkeys(stored.notes)) or None
        typed = InferredColumn(name=name, type=duckdb, reason=reason)
        wanted = dataset_types.get(name.lower())
        if wanted is not None and wanted != duckdb and _widens(duckdb, wanted):
            typed = InferredColumn(name=name, type=wanted, source="dataset")
            stored = _Stored(arrow_type(wanted), stored.notes)
        columns.append(_Column(name, stored.type, typed))
    return columns


def _unsupported(name: str, arrow: pa.DataType, why: str) -> UnsupportedColumnType:
    return UnsupportedColumnType(
        f"column {name!r} has the type {arrow}, which a table cannot hold: {why}",
        details={"column": name, "type": str(arrow)},
    )


# What a type a table cannot hold is stored as (each holds every value of it).
_WIDER: list[tuple[Callable[[pa.DataType], bool], pa.DataType]] = [
    (lambda t: pa.types.is_int8(t) or pa.types.is_int16(t), pa.int32()),
    (lambda t: pa.types.is_uint8(t) or pa.types.is_uint16(t), pa.int32()),
    (pa.types.is_uint32, pa.int64()),
    (pa.types.is_uint64, pa.decimal128(20, 0)),
    (pa.types.is_float16, pa.float32()),
    (lambda t: pa.types.is_large_string(t) or pa.types.is_string_view(t), pa.string()),
    (
        lambda t: (
            pa.types.is_large_binary(t)
            or pa.types.is_binary_view(t)
            or pa.types.is_fixed_size_binary(t)
        ),
        pa.binary(),
    ),
    (pa.types.is_date64, pa.date32()),
    (lambda t: pa.types.is_time(t) and t != pa.time64("us"), pa.time64("us")),
]


def _storable(name: str, arrow: pa.DataType) -> _Stored:
    """The type a column of ``arrow`` is stored as: itself, or the nearest one a table
    can hold without losing a value (nested types field by field)."""
    if pa.types.is_dictionary(arrow):  # an encoding, not a type: its values'
        return _storable(name, arrow.value_type)
    if pa.types.is_null(arrow):
        return _Stored(pa.string(), ["no values, stored as VARCHAR"])
    if pa.types.is_timestamp(arrow):
        tz = "UTC" if arrow.tz else None
        notes = [f"timestamp[{arrow.unit}] stored in microseconds"] if arrow.unit != "us" else []
        if arrow.tz and arrow.tz.upper() not in ("UTC", "+00:00", "ETC/UTC", "Z"):
            notes.append(f"time zone {arrow.tz} stored as UTC (the same instants)")
        return _Stored(pa.timestamp("us", tz=tz), notes)
    if pa.types.is_decimal(arrow):
        if arrow.precision > _MAX_DECIMAL128:
            raise _unsupported(name, arrow, f"more than {_MAX_DECIMAL128} digits")
        stored = pa.decimal128(arrow.precision, arrow.scale)
        return _Stored(stored, [] if stored == arrow else [f"{arrow} stored as decimal128"])
    for matches, wider in _WIDER:
        if matches(arrow):
            return _Stored(wider, [f"{arrow} stored as {arrow_column_type(wider)}"])
    if pa.types.is_struct(arrow):
        if arrow.num_fields == 0:
            raise _unsupported(name, arrow, "a struct without fields")
        fields = [(f.name, _storable(name, f.type)) for f in arrow]
        return _Stored(
            pa.struct([pa.field(n, s.type) for n, s in fields]),
            [note for _, s in fields for note in s.notes],
        )
    if pa.types.is_map(arrow):
        key, item = _storable(name, arrow.key_type), _storable(name, arrow.item_type)
        return _Stored(pa.map_(key.type, item.type), key.notes + item.notes)
    if _is_list(arrow):
        element = _storable(name, arrow.value_type)
        fixed = [f"{arrow} stored as a list"] if pa.types.is_fixed_size_list(arrow) else []
        return _Stored(pa.list_(pa.field("element", element.type)), fixed + element.notes)
    try:
        arrow_column_type(arrow)
    except UnsupportedType:
        raise _unsupported(name, arrow, "no lossless type for it") from None
    return _Stored(arrow, [])


def _is_list(arrow: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(arrow)
        or pa.types.is_large_list(arrow)
        or pa.types.is_fixed_size_list(arrow)
        or pa.types.is_list_view(arrow)
        or pa.types.is_large_list_view(arrow)
    )


# An appended column may take the dataset's type when that holds every value of its own.
_WIDENINGS = {
    ("INTEGER", "BIGINT"),
    ("INTEGER", "DOUBLE"),
    ("BIGINT", "DOUBLE"),
    ("FLOAT", "DOUBLE"),
}


def _widens(own: str, dataset: str) -> bool:
    if (own, dataset) in _WIDENINGS:
        return True
    digits = {"INTEGER": 10, "BIGINT": 19}.get(own)
    if digits is None or not dataset.startswith("DECIMAL("):
        return False
    try:
        decimal = arrow_type(dataset)
    except UnsupportedType:
        return False
    return bool(decimal.precision - decimal.scale >= digits)


def _cast(batch: pa.RecordBatch, columns: list[_Column], stored: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for column, array in zip(columns, batch.columns, strict=True):
        if array.type == column.stored:
            arrays.append(array)
            continue
        try:
            arrays.append(array.cast(column.stored, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise UnsupportedColumnType(
                f"column {column.name!r}: a value of type {array.type} does not fit "
                f"{column.typed.type} without loss",
                details={"column": column.name, "type": str(array.type), "reason": str(exc)[:300]},
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=stored)


class _RowGroups:
    """Batches regrouped into row groups of ``rows`` rows (or ``max_bytes``)."""

    def __init__(self, writer: pq.ParquetWriter, rows: int, max_bytes: int) -> None:
        self._writer = writer
        self._rows = rows
        self._max_bytes = max_bytes
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._pending_bytes = 0

    def add(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        if self._pending_rows >= self._rows or self._pending_bytes >= self._max_bytes:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            table = pa.Table.from_batches(self._pending)
            self._writer.write_table(table, row_group_size=self._rows)
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
