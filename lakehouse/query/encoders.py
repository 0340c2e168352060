"""Result encoders: Arrow record batches in, response bytes out, one batch at a time.

Every encoder is fed the batches of one result in order and returns the
bytes to send for each; ``finish`` returns the trailer. Nothing holds more
than one batch, so memory stays bounded whatever the result size.

The JSON encoders never build Python dicts: each column becomes an Arrow
string array of JSON fragments (numbers cast by Arrow, strings escaped by
Arrow's regex kernels, dates formatted by ``strftime``), the fragments are
joined row-wise by ``binary_join_element_wise`` and the batch's bytes are
the joined array's data buffer. Types Arrow cannot format as JSON
(binary, nested, intervals ...) fall back to msgspec per value. JSON
encoding (SPEC): dates and timestamps ISO-8601 strings (DuckDB's
``infinity`` / ``-infinity`` as those strings; a value Arrow cannot format,
such as a timestamp past year 292277, null), integers and decimals numbers
(exact), floats in Arrow's shortest round-trip form (a REAL is written as
the shortest text of the float32 value: 0.1, not 0.10000000149011612;
exponents as ``1e+20``), NaN/Inf null, binary base64.

Small batches (< SMALL_BATCH_ROWS) of simple types go through msgspec on
Python values instead, which is faster there; columns whose encoding would
differ between the two (floats, dates, timestamps, times) always take the
Arrow path, so the output never depends on the row count.
"""

from __future__ import annotations

import enum
import io
import re
from typing import Any, Protocol

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq


class ResultFormat(enum.StrEnum):
    """The response formats of POST /sql."""

    JSON = "json"
    NDJSON = "ndjson"
    CSV = "csv"
    ARROW = "arrow"
    PARQUET = "parquet"


MEDIA_TYPES: dict[ResultFormat, str] = {
    ResultFormat.JSON: "application/json",
    ResultFormat.NDJSON: "application/x-ndjson",
    ResultFormat.CSV: "text/csv",
    ResultFormat.ARROW: "application/vnd.apache.arrow.stream",
    ResultFormat.PARQUET: "application/vnd.apache.parquet",
}

# Accept header media types -> format (the first one a client lists that we know wins).
ACCEPT_TYPES: dict[str, ResultFormat] = {
    "application/json": ResultFormat.JSON,
    "application/x-ndjson": ResultFormat.NDJSON,
    "application/ndjson": ResultFormat.NDJSON,
    "application/jsonl": ResultFormat.NDJSON,
    "text/csv": ResultFormat.CSV,
    "application/vnd.apache.arrow.stream": ResultFormat.ARROW,
    "application/vnd.apache.arrow.file": ResultFormat.ARROW,
    "application/vnd.apache.parquet": ResultFormat.PARQUET,
    "application/x-parquet": ResultFormat.PARQUET,
}


class Encoder(Protocol):
    """Turns a result's record batches into response bytes, batch by batch."""

    def encode(self, batch: pa.RecordBatch) -> bytes:
        """Bytes for one batch (may be empty)."""

    def finish(self) -> bytes:
        """Bytes after the last batch (closing bracket, footer ...)."""


def make_encoder(fmt: ResultFormat, schema: pa.Schema) -> Encoder:
    """The encoder for ``fmt`` of results with ``schema``."""
    if fmt is ResultFormat.JSON:
        return JsonArrayEncoder(schema)
    if fmt is ResultFormat.NDJSON:
        return NdjsonEncoder(schema)
    if fmt is ResultFormat.CSV:
        return CsvEncoder(schema)
    if fmt is ResultFormat.ARROW:
        return ArrowStreamEncoder(schema)
    return ParquetEncoder(schema)


# -- JSON -------------------------------------------------------------------

_msgspec_encoder = msgspec.json.Encoder(decimal_format="number")
_NULL = pa.scalar("null", pa.string())
_TRUE = pa.scalar("true", pa.string())
_FALSE = pa.scalar("false", pa.string())
_NEEDS_ESCAPE = re.compile(rb'["\\\x00-\x1f]')
_CONTROL = re.compile(rb"[\x00-\x1f]")
# The common escapes first; any other control character is rare, handled one by one.
_ESCAPES = [("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")]
_OTHER_CONTROLS = [c for c in map(chr, range(0x20)) if c not in "\n\r\t"]


def _escaped(array: pa.Array) -> pa.Array:
    """String contents escaped for JSON (without the quotes); nulls stay null."""
    if array.type != pa.string():
        array = pc.cast(array, pa.string())
    buffer = array.buffers()[2]
    if buffer is None:
        return array
    # One scan of the raw bytes is far cheaper than a per-value kernel, and
    # most columns need no escaping at all; only the needed passes run.
    data = buffer.to_pybytes()
    if not _NEEDS_ESCAPE.search(data):
        return array
    for raw, escaped in _ESCAPES:
        if raw.encode() in data:
            array = pc.replace_substring(array, raw, escaped)
    if _CONTROL.search(array.buffers()[2].to_pybytes()):
        for char in _OTHER_CONTROLS:
            array = pc.replace_substring(array, char, f"\\u{ord(char):04x}")
    return array


_ZERO_FRACTION = {"ms": ".000", "us": ".000000", "ns": ".000000000"}


_INFINITY = pa.scalar("infinity", pa.string())
_MINUS_INFINITY = pa.scalar("-infinity", pa.string())
_NULL_TEXT = pa.scalar(None, pa.string())
# DuckDB's infinite dates and timestamps reach Arrow as the extreme integers.
_DATE_INFINITY = 2**31 - 1
_TIMESTAMP_INFINITY = 2**63 - 1


def _with_infinities(array: pa.Array, text: pa.Array) -> pa.Array:
    """``text`` with DuckDB's infinities spelled out and unformattable values null."""
    if pa.types.is_date32(array.type):
        ints, limit = array.cast(pa.int32()), _DATE_INFINITY
    elif pa.types.is_timestamp(array.type):
        ints, limit = array.cast(pa.int64()), _TIMESTAMP_INFINITY
    else:
        return text
    extremes = pc.min_max(ints)
    low, high = extremes["min"].as_py(), extremes["max"].as_py()
    if low is None or (low > -limit and high < limit and not _unformatted(text)):
        return text  # the common case: one cheap kernel, nothing to replace
    text = pc.if_else(pc.equal(ints, limit), _INFINITY, text)
    text = pc.if_else(pc.equal(ints, -limit), _MINUS_INFINITY, text)
    # Arrow writes "<value out of range: N>" (e.g. microseconds past year 292277).
    return pc.if_else(pc.starts_with(text, "<"), _NULL_TEXT, text)


def _unformatted(text: pa.Array) -> bool:
    return bool(pc.any(pc.starts_with(text, "<")).as_py())


def _iso_timestamps(array: pa.Array) -> pa.Array:
    """ISO-8601 text for a timestamp array, as ``datetime.isoformat`` writes it."""
    kind = array.type
    # Arrow's cast is much faster than strftime; it only needs the "T".
    text = pc.replace_substring(pc.cast(array, pa.string()), " ", "T", max_replacements=1)
    zero = _ZERO_FRACTION.get(kind.unit)
    if zero:  # whole seconds have no fraction (a literal replace: the digits are fixed-width)
        text = pc.replace_substring(text, zero, "", max_replacements=1)
    if kind.tz:
        text = pc.replace_substring_regex(text, r"([+-]\d\d)(\d\d)$", r"\1:\2")
        text = pc.replace_substring_regex(text, r"[+-]00:00$", "Z")
    return text


def _json_values(array: pa.Array) -> tuple[pa.Array, bool]:
    """One JSON value per element, as a null-free string array.

    The flag is True when the values are string contents still to be put
    between quotes (the row joiner folds the quotes into its separators,
    which saves a pass); False when they are complete JSON values.
    """
    kind = array.type
    if pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        values = pc.cast(array, pa.string())
    elif pa.types.is_floating(kind):
        values = pc.if_else(pc.is_finite(array), pc.cast(array, pa.string()), _NULL)
    elif pa.types.is_boolean(kind):
        values = pc.if_else(array, _TRUE, _FALSE)
    elif pa.types.is_null(kind):
        return pa.array(["null"] * len(array), pa.string()), False
    elif _is_text(kind):
        if pa.types.is_timestamp(kind):
            text = _with_infinities(array, _iso_timestamps(array))
        elif pa.types.is_string(kind):
            text = _escaped(array)
        elif pa.types.is_dictionary(kind) or pa.types.is_large_string(kind):
            text = _escaped(pc.cast(array, pa.string()))
        elif pa.types.is_time(kind):
            text = pc.cast(array, pa.string())
            zero = _ZERO_FRACTION.get(kind.unit)
            if zero:  # like time.isoformat: whole seconds have no fraction
                text = pc.replace_substring(text, zero, "", max_replacements=1)
        else:  # dates: Arrow's cast is ISO already, nothing to escape
            text = _with_infinities(array, pc.cast(array, pa.string()))
        if text.null_count == 0:
            return text, True
        values = pc.binary_join_element_wise('"', text, '"', "")
    else:
        # binary (base64), nested, intervals, ...: msgspec knows the SPEC encoding.
        return pa.array(_msgspec_values(array), pa.string()), False
    return pc.fill_null(values, _NULL), False


def _msgspec_values(array: pa.Array) -> list[str]:
    maps = _maps_as(array.type)
    try:
        values = array.to_pylist(maps_as_pydicts=maps)
        return [_msgspec_encoder.encode(v).decode() for v in values]
    except (OverflowError, ValueError, pa.ArrowException):
        # A value Python cannot hold (an infinite date inside a list ...): null for that
        # one value, never a failed response.
        return [_msgspec_one(array, i, maps) for i in range(len(array))]


def _msgspec_one(array: pa.Array, index: int, maps: Any) -> str:
    try:
        return _msgspec_encoder.encode(array[index].as_py(maps_as_pydicts=maps)).decode()
    except (OverflowError, ValueError, pa.ArrowException):
        return "null"


def _maps_as(kind: pa.DataType) -> str | None:
    """How ``to_pylist`` gives maps: as dicts (JSON objects) when every map inside
    ``kind`` has text or integer keys, else (None) as [key, value] pairs, since JSON
    object keys are text and other keys (decimals, booleans, ...) have no exact one."""
    for key in _map_keys(kind):
        text = pa.types.is_string(key) or pa.types.is_large_string(key)
        if not (text or pa.types.is_integer(key)):
            return None
    return "lossy"  # DuckDB maps have distinct keys: nothing to lose


def _map_keys(kind: pa.DataType) -> list[pa.DataType]:
    if pa.types.is_map(kind):
        return [kind.key_type, *_map_keys(kind.key_type), *_map_keys(kind.item_type)]
    return [key for i in range(kind.num_fields) for key in _map_keys(kind.field(i).type)]


def _is_text(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or (pa.types.is_dictionary(kind) and pa.types.is_string(kind.value_type))
        or pa.types.is_timestamp(kind)
        or pa.types.is_date(kind)
        or pa.types.is_time(kind)
    )


SMALL_BATCH_ROWS = 64
"""Below this many rows msgspec on Python values beats Arrow's per-call kernel overhead."""


def _msgspec_friendly(schema: pa.Schema) -> bool:
    """Whether ``to_pylist`` + msgspec gives the same JSON as the Arrow path: not for
    floats (msgspec writes a float32 as its float64 value and 1e20 without '+') nor
    temporal types (infinities and years past 9999 do not fit Python's types) nor maps
    written as pairs."""
    names = schema.names
    return len(set(names)) == len(names) and not any(
        pa.types.is_floating(f.type)
        or pa.types.is_timestamp(f.type)
        or pa.types.is_date(f.type)
        or pa.types.is_time(f.type)
        or _maps_as(f.type) is None
        for f in schema
    )


class _JsonRows:
    """Row objects ``{"col":value,...}``, each between ``row_prefix`` and ``row_suffix``."""

    def __init__(self, schema: pa.Schema, row_prefix: str, row_suffix: str) -> None:
        keys = [msgspec.json.encode(name).decode() for name in schema.names]
        self._prefixes = [
            (row_prefix + "{" if i == 0 else ",") + key + ":" for i, key in enumerate(keys)
        ]
        self._suffix = "}" + row_suffix
        self._empty_row = (row_prefix + "{}" + row_suffix).encode()
        self._row_prefix = row_prefix.encode()
        self._row_suffix = row_suffix.encode()
        self._small_ok = _msgspec_friendly(schema)

    def rows(self, batch: pa.RecordBatch) -> bytes:
        if batch.num_rows == 0:
            return b""
        if not self._prefixes:
            return self._empty_row * int(batch.num_rows)
        if self._small_ok and batch.num_rows < SMALL_BATCH_ROWS:
            return self._small(batch)
        parts: list[Any] = []
        open_quote = False  # the previous value still needs its closing quote
        for prefix, column in zip(self._prefixes, batch.columns, strict=True):
            values, quote = _json_values(column)
            parts.append(('"' if open_quote else "") + prefix + ('"' if quote else ""))
            parts.append(values)
            open_quote = quote
        parts.append(('"' if open_quote else "") + self._suffix)
        joined = pc.binary_join_element_wise(*parts, "")
        return _string_array_bytes(joined)

    def _small(self, batch: pa.RecordBatch) -> bytes:
        # Same encoding rules (msgspec: ISO dates, NaN/Inf null, base64, exact decimals).
        encode = _msgspec_encoder.encode
        return b"".join(
            self._row_prefix + encode(row) + self._row_suffix
            for row in batch.to_pylist(maps_as_pydicts="lossy")
        )


def _string_array_bytes(array: pa.Array) -> bytes:
    """The concatenation of all values of a null-free string array, without a Python loop."""
    offsets = array.buffers()[1]
    data = array.buffers()[2]
    first = int.from_bytes(offsets[array.offset * 4 : array.offset * 4 + 4], "little", signed=True)
    last_at = (array.offset + len(array)) * 4
    last = int.from_bytes(offsets[last_at : last_at + 4], "little", signed=True)
    return bytes(data[first:last].to_pybytes()) if data is not None else b""


class JsonArrayEncoder:
    """``[{"col":value,...},...]``: the default response."""

    def __init__(self, schema: pa.Schema) -> None:
        self._rows = _JsonRows(schema, ",", "")
        self._started = False

    def encode(self, batch: pa.RecordBatch) -> bytes:
        body = self._rows.rows(batch)
        if not body:
            return b""
        if not self._started:
            self._started = True
            return b"[" + body[1:]  # the first row has no separating comma
        return body

    def finish(self) -> bytes:
        return b"]" if self._started else b"[]"


class NdjsonEncoder:
    """One JSON object per line."""

    def __init__(self, schema: pa.Schema) -> None:
        self._rows = _JsonRows(schema, "", "\n")

    def encode(self, batch: pa.RecordBatch) -> bytes:
        return self._rows.rows(batch)

    def finish(self) -> bytes:
        return b""


# -- CSV, Arrow IPC, Parquet --------------------------------------------------


class _Sink(io.RawIOBase):
    """A write-only file that hands back what was written since the last ``take``."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        return len(chunk)

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def _as_text(kind: pa.DataType) -> bool:
    """Types a CSV cell cannot hold as such: written as their JSON text instead."""
    return bool(
        pa.types.is_nested(kind)
        or pa.types.is_interval(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
    )


def _textual(schema: pa.Schema, predicate: Any) -> tuple[pa.Schema, list[int]]:
    """The schema with ``predicate`` columns turned into strings, and their indexes."""
    indexes = [i for i, field in enumerate(schema) if predicate(field.type)]
    for i in indexes:
        schema = schema.set(i, pa.field(schema.field(i).name, pa.string()))
    return schema, indexes


def _to_text(batch: pa.RecordBatch, schema: pa.Schema, indexes: list[int]) -> pa.RecordBatch:
    if not indexes:
        return batch
    columns = list(batch.columns)
    for i in indexes:
        values, _ = _json_values(columns[i])
        if pa.types.is_binary(columns[i].type) or pa.types.is_fixed_size_binary(columns[i].type):
            values = pc.utf8_slice_codeunits(values, 1, -1)  # base64 without its JSON quotes
        columns[i] = pc.if_else(pc.is_null(columns[i]), pa.scalar(None, pa.string()), values)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class CsvEncoder:
    """RFC 4180 CSV with a header row (pyarrow's writer); nested and binary values
    are written as their JSON text (binary: base64)."""

    def __init__(self, schema: pa.Schema) -> None:
        self._schema, self._text_columns = _textual(schema, _as_text)
        self._sink = _Sink()
        self._writer = pa_csv.CSVWriter(self._sink, self._schema)

    def encode(self, batch: pa.RecordBatch) -> bytes:
        self._writer.write_batch(_to_text(batch, self._schema, self._text_columns))
        return self._sink.take()

    def finish(self) -> bytes:
        self._writer.close()
        return self._sink.take()


class ArrowStreamEncoder:
    """The Arrow IPC streaming format (schema, then one message per batch)."""

    def __init__(self, schema: pa.Schema) -> None:
        self._sink = _Sink()
        self._writer = pa_ipc.new_stream(self._sink, schema)

    def encode(self, batch: pa.RecordBatch) -> bytes:
        self._writer.write_batch(batch)
        return self._sink.take()

    def finish(self) -> bytes:
        self._writer.close()
        return self._sink.take()


class ParquetEncoder:
    """A Parquet file, one row group per batch, written as it goes (intervals, which
    Parquet cannot hold, as JSON text)."""

    def __init__(self, schema: pa.Schema) -> None:
        self._schema, self._text_columns = _textual(schema, pa.types.is_interval)
        self._sink = _Sink()
        self._writer = pq.ParquetWriter(self._sink, self._schema, compression="zstd")

    def encode(self, batch: pa.RecordBatch) -> bytes:
        if batch.num_rows:
            self._writer.write_batch(_to_text(batch, self._schema, self._text_columns))
        return self._sink.take()

    def finish(self) -> bytes:
        self._writer.close()
        return self._sink.take()
