"""NDJSON / JSON Lines and JSON arrays of objects -> Parquet, typed from the JSON values.

JSON already says which value is which, so nothing is guessed from text (ADR 0020):

- strings stay ``VARCHAR`` (``"01234"`` and ``"2024-01-31"`` included: no digit is lost;
  ``?types=d:date`` makes a date of them); booleans are ``BOOLEAN``; integers are
  ``BIGINT``, beyond int64 ``DECIMAL(38,0)`` (exact), beyond 38 digits ``VARCHAR``
  (their digits, reported as defaulted); numbers with a fraction or exponent are
  ``DOUBLE``, and so is a key mixing them with integers, unless an integer would lose
  digits as a double (beyond 2^53): then the key is widened to text;
- a key missing from a record, or ``null``, is NULL; a key that only ever holds null is
  ``VARCHAR`` (reported as defaulted); columns come in the order keys are first seen,
  named as CSV headers are (``normalise_header``);
- objects become ``STRUCT`` columns (fields: the union of the keys seen, in first-seen
  order) and arrays ``LIST`` columns (``BIGINT[]``), nested to any depth, so SQL reaches
  inside (``payload.user.id``, ``tags[1]``, ``unnest(tags)``);
- a key whose values have different JSON types anywhere inside (a number and a string,
  an object and an array, ``{"a": 1}`` and ``{"a": "x"}``) is widened as a whole to
  ``VARCHAR``: strings as themselves, every other value as its JSON text (so
  ``col->>'$.a'`` still reaches inside objects), reported in ``widened`` with the reason.
  So are objects no STRUCT can hold (keys differing only in case, as SQL compares field
  names, or an empty key); a key whose objects never have a key is JSON text too,
  reported as defaulted.

Types are decided over the whole file, never a sample. The first pass reads every
record, merging the Arrow types pyarrow infers per batch, and meanwhile writes the file
with the first batch's types; when no later batch changes them (the common case) that
file is the result. Otherwise a second pass writes it with the types of the whole file.
Memory: one batch of decoded records (about 2 MiB of JSON) plus about one row group of
Arrow data. A value a pass cannot store as its column's type (an integer beyond 2^53 in
a DOUBLE column whose fractions came in another batch) widens that column, and the file
is written again.

``?types=`` overrides convert each value's text (a string's own, any other value's JSON
text) to the type and refuse a value that does not fit with a 400 naming it. On append,
a column whose type converts to the dataset's without loss is written as the dataset's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.ingest.convert import WidenedColumn, _BackgroundWriter
from lakehouse.ingest.errors import EmptyJSON, InvalidTypeOverride
from lakehouse.ingest.formats import Converted, ConvertRequest
from lakehouse.ingest.json_records import Record, array_batches, ndjson_batches
from lakehouse.ingest.schema import (
    ARROW_TYPES,
    InferredColumn,
    conforming_overrides,
    matched_overrides,
    normalise_header,
)

_DECIMAL = pa.decimal128(38, 0)
_INT64 = range(-(2**63), 2**63)
_DOUBLE_EXACT = 2**53
_ARROW_FAILURES = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError)
_JSON_KINDS = {
    pa.types.is_integer: "number",
    pa.types.is_floating: "number",
    pa.types.is_decimal: "number",
    pa.types.is_string: "string",
    pa.types.is_boolean: "boolean",
    pa.types.is_struct: "object",
    pa.types.is_list: "array",
}
_AS_TEXT = "strings are kept as they are, other values as their JSON text"
# Objects and arrays nested deeper than this are kept as JSON text: a list costs Parquet
# two or three schema levels, and a Parquet schema may have 100.
MAX_NESTING = 24

Batches = Callable[[Path, int], Iterator[list[Record]]]


class _AsText(Exception):
    """A key's values cannot share a typed column: it is written as JSON text."""

    def __init__(self, reason: str, widened: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.widened = widened
        self.inferred: pa.DataType | None = None


class _Key:
    """One top-level key: the type of its values so far (``seen``, or a ``conflict``), and
    the plan of its column: name, type, or JSON text (``text``, with the reason)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.seen: pa.DataType = pa.null()
        self.conflict: _AsText | None = None
        self.name = key
        self.type: pa.DataType = pa.null()
        self.text: _AsText | None = None
        self.target: pa.DataType | None = None  # an override's or the dataset's type
        self.source = "inferred"


class _Keys(dict[str, _Key]):
    """Every key seen so far, in first-seen order, and the records read."""

    records = 0
    batch_array: pa.StructArray | None = None
    """The last batch as pyarrow inferred it (None: not as a whole), for the first pass
    to write without converting the records again."""

    def infer(self, batch: list[Record]) -> None:
        """Merge a batch's value types into each key's."""
        self.records += len(batch)
        self.batch_array, types = _batch_types(batch)
        for name, batch_type in types.items():
            key = self.get(name)
            if key is None:
                key = self[name] = _Key(name)
            if key.conflict is not None:
                continue
            try:
                if isinstance(batch_type, _AsText):
                    raise batch_type
                key.seen = _merge(key.seen, batch_type, "")
            except _AsText as exc:
                exc.inferred = key.seen if key.seen != pa.null() else _first_type(batch, name)
                key.conflict = exc

    def state(self) -> list[tuple[str, pa.DataType, bool]]:
        """What the plan of the columns depends on (to see that it changed)."""
        return [(k.key, k.seen, k.conflict is None) for k in self.values()]

    def inferring(self, batches: Iterator[list[Record]]) -> Iterator[list[Record]]:
        for batch in batches:
            self.infer(batch)
            yield batch


def convert_ndjson(source: Path, target: Path, request: ConvertRequest) -> Converted:
    """Convert an NDJSON (JSON Lines) file: one object per line (the ``Converter``)."""
    return _convert(ndjson_batches, source, target, request)


def convert_json_array(source: Path, target: Path, request: ConvertRequest) -> Converted:
    """Convert a file holding one JSON array of objects (the ``Converter``)."""
    return _convert(array_batches, source, target, request)


def _convert(batches: Batches, source: Path, target: Path, request: ConvertRequest) -> Converted:
    """The first pass infers the types and writes the file with the first batch's types
    meanwhile: where no later batch changes them (the common case), that is the file.
    Otherwise a second pass writes it with the types of the whole file."""
    limit = request.options.max_field_bytes
    keys = _Keys()
    stream = keys.inferring(batches(source, limit))
    first = next(stream, None)
    columns: list[_Key] = []
    rows, failed = 0, None
    if first is not None and _plannable(keys, request):
        columns = _plan(keys, request)
        rows, failed = _write(chain([first], stream), columns, target, request, keys)
    else:
        for _ in stream:  # nothing to write with yet: infer only
            pass
    if not keys.records:
        raise EmptyJSON("the upload holds no JSON records")
    if failed is None or failed:  # the types changed after the first batch, or did not fit
        columns = _plan(keys, request)
        rows = _rewrite(batches, source, limit, columns, target, request)
    widened = [
        WidenedColumn(name=c.name, inferred=_duckdb_types([inferred])[0], reason=c.text.reason)
        for c in columns
        if c.source == "inferred" and c.text is not None and c.text.widened
        for inferred in [c.text.inferred or pa.string()]
    ]
    return Converted(columns=_described(columns), rows=rows, widened=widened)


def _rewrite(
    batches: Batches,
    source: Path,
    limit: int,
    columns: list[_Key],
    target: Path,
    request: ConvertRequest,
) -> int:
    """Write the file with the whole file's types; a column whose values do not fit its
    type (or the dataset's) is retyped and the pass runs again. Returns the rows."""
    while True:
        rows, failed = _write(batches(source, limit), columns, target, request, None)
        if not failed:
            return rows
        for column, reason in failed.items():
            if column.source == "dataset":  # a value does not fit the dataset's type
                column.target, column.source = None, "inferred"
            else:
                column.text = _AsText(reason)
                column.text.inferred = column.type


def _plannable(keys: _Keys, request: ConvertRequest) -> bool:
    """Whether the keys seen so far make columns: some key, and every override's."""
    names = {name.lower() for name in normalise_header(keys)}
    return bool(keys) and {name.lower() for name in request.overrides} <= names


def _plan(keys: _Keys, request: ConvertRequest) -> list[_Key]:
    """Each key's column from the types seen so far. Raises EmptyJSON (no key),
    InvalidTypeOverride (an override naming no key)."""
    if not keys:
        raise EmptyJSON("the JSON records have no keys: there is no column to make")
    columns = list(keys.values())
    for name, key in zip(normalise_header(keys), columns, strict=True):
        key.name, key.type, key.text = name, key.seen, key.conflict
        key.target, key.source = None, "inferred"
        if key.text is None:
            try:
                key.type = _storable(key.seen, "")
            except _AsText as exc:
                exc.inferred = key.seen
                key.text = exc
    _apply_overrides(columns, request.overrides)
    if request.dataset_types:
        _conform(columns, _described(columns), request.dataset_types)
    return columns


def _batch_types(
    batch: list[Record],
) -> tuple[pa.StructArray | None, dict[str, pa.DataType | _AsText]]:
    """The type of each key's values in a batch (or why they need text), keys in
    first-seen order: all in one go where pyarrow can infer the batch as a whole (a
    struct array, returned too), else key by key."""
    try:
        array = pa.array(batch)
    except _ARROW_FAILURES:
        names = dict.fromkeys(k for record in batch for k in record)
        return None, {n: _batch_type([r.get(n) for r in batch]) for n in names}
    return array, {field.name: field.type for field in array.type}


def _batch_type(values: list[Any]) -> pa.DataType | _AsText:
    """The type of one batch's values of a key: pyarrow's inference, which holds for
    most; where it gives up, a look at the values says why."""
    try:
        return pa.array(values).type
    except _ARROW_FAILURES:
        pass
    try:
        return _python_type(values, "")
    except _AsText as exc:
        return exc


def _first_type(batch: list[Record], name: str) -> pa.DataType | None:
    """The type of a key's first value that is not null (what a conflict widened)."""
    first = next((r[name] for r in batch if r.get(name) is not None), None)
    found = _batch_type([first])
    return None if isinstance(found, _AsText) else found


def _python_type(values: list[Any], path: str) -> pa.DataType:
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pa.null()
    if kinds <= {int, float}:
        ints = [v for v in values if type(v) is int]
        if float in kinds:
            big = next((v for v in ints if abs(v) > _DOUBLE_EXACT), None)
            if big is not None:
                raise _AsText(
                    f"{_where(path)}integers beyond 2^53 (e.g. {big}) mixed with fractions "
                    f"would lose digits as DOUBLE: {_AS_TEXT}"
                )
            return pa.float64()
        if all(v in _INT64 for v in ints):
            return pa.int64()
        longest = max(ints, key=lambda v: abs(v))
        if len(str(abs(longest))) <= 38:
            return _DECIMAL
        raise _AsText(
            f"{_where(path)}integers longer than 38 digits (e.g. {longest}) are kept as text",
            widened=False,
        )
    if len(kinds) > 1:
        raise _AsText(_mixed(path, {_kind_name(k) for k in kinds}))
    kind = kinds.pop()
    if kind is dict:
        fields: dict[str, pa.DataType] = {}
        for record in values:
            if record is not None:
                for name in record:
                    fields.setdefault(name, pa.null())
        return pa.struct(
            [
                (
                    name,
                    _python_type([v.get(name) for v in values if v is not None], f"{path}.{name}"),
                )
                for name in fields
            ]
        )
    if kind is list:
        items = [item for value in values if value is not None for item in value]
        return pa.list_(_python_type(items, f"{path}[]"))
    return pa.array(values).type  # strings, booleans


def _merge(left: pa.DataType, right: pa.DataType, path: str) -> pa.DataType:
    """The type holding both batches' values, or _AsText."""
    if left == right or right == pa.null():
        return left
    if left == pa.null():
        return right
    numbers = {left, right}
    if numbers == {pa.int64(), pa.float64()}:
        return pa.float64()  # an integer beyond 2^53 fails the second pass: then widened
    if numbers == {pa.int64(), _DECIMAL}:
        return _DECIMAL
    if numbers == {pa.float64(), _DECIMAL}:
        raise _AsText(
            f"{_where(path)}integers beyond int64 mixed with fractions would lose digits "
            f"as DOUBLE: {_AS_TEXT}"
        )
    if pa.types.is_struct(left) and pa.types.is_struct(right):
        fields = {f.name: f.type for f in left}
        for field in right:
            fields[field.name] = _merge(
                fields.get(field.name, pa.null()), field.type, f"{path}.{field.name}"
            )
        return pa.struct(list(fields.items()))
    if pa.types.is_list(left) and pa.types.is_list(right):
        return pa.list_(_merge(left.value_type, right.value_type, f"{path}[]"))
    raise _AsText(_mixed(path, {_json_kind(left), _json_kind(right)}))


def _storable(arrow: pa.DataType, path: str) -> pa.DataType:
    """The type a column is written as: nulls-only become VARCHAR, and objects no
    table column can hold are _AsText."""
    if path.count(".") + path.count("[]") > MAX_NESTING:  # Parquet allows 100 levels
        raise _AsText(f"values nested deeper than {MAX_NESTING} levels; {_AS_TEXT}")
    if arrow == pa.null():
        if not path:
            raise _AsText("the key only ever holds null", widened=False)
        return pa.string()
    if pa.types.is_list(arrow):
        return pa.list_(_storable(arrow.value_type, f"{path}[]"))
    if not pa.types.is_struct(arrow):
        return arrow
    if arrow.num_fields == 0:
        raise _AsText(f"{_where(path)}objects without any key are kept as JSON text", False)
    seen: dict[str, str] = {}
    for field in arrow:
        clash = seen.get(field.name.lower())
        if clash is not None or not field.name.strip():
            what = (
                f"keys {clash!r} and {field.name!r} differ only in case"
                if clash
                else ("an empty key")
            )
            raise _AsText(f"{_where(path)}{what}: SQL cannot tell them apart; {_AS_TEXT}")
        seen[field.name.lower()] = field.name
    return pa.struct([(f.name, _storable(f.type, f"{path}.{f.name}")) for f in arrow])


def _where(path: str) -> str:
    return f"inside, {path.lstrip('.')}: " if path else ""


def _mixed(path: str, kinds: set[str]) -> str:
    return (
        f"{_where(path)}values of different JSON types ({' and '.join(sorted(kinds))}): {_AS_TEXT}"
    )


def _json_kind(arrow: pa.DataType) -> str:
    return next((name for test, name in _JSON_KINDS.items() if test(arrow)), str(arrow))


def _kind_name(kind: type) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", dict: "object"}
    return names.get(kind, "array")


def _apply_overrides(columns: list[_Key], overrides: dict[str, str]) -> None:
    by_name = {c.name: c for c in columns}
    for name, type_name in matched_overrides(list(by_name), overrides).items():
        by_name[name].target = ARROW_TYPES[type_name]
        by_name[name].source = "override"


def _conform(
    columns: list[_Key], typed: list[InferredColumn], dataset_types: dict[str, str]
) -> None:
    """On append: take the dataset's type where this column's converts to it losslessly."""
    wider = conforming_overrides(typed, dataset_types)
    for column in columns:
        if column.name in wider and column.source == "inferred":
            column.target = ARROW_TYPES[wider[column.name]]
            column.source = "dataset"


def _arrow_type(column: _Key) -> pa.DataType:
    if column.target is not None:
        return column.target
    return pa.string() if column.text is not None else column.type


def _described(columns: list[_Key]) -> list[InferredColumn]:
    """The typing report of each column, types spelled as DuckDB spells them."""
    names = _duckdb_types([_arrow_type(c) for c in columns])
    result = []
    for column, type_name in zip(columns, names, strict=True):
        source, reason, risk = column.source, None, None
        if source == "dataset":
            reason = "the dataset has this type"
        elif source == "inferred" and column.text is not None:
            reason = column.text.reason
            source, risk = ("widened", "widened") if column.text.widened else (source, "defaulted")
        result.append(
            InferredColumn(
                name=column.name, type=type_name, source=source, reason=reason, risk=risk
            )
        )
    return result


def _duckdb_types(types: list[pa.DataType]) -> list[str]:
    """DuckDB's own spelling of Arrow types (``STRUCT(a BIGINT, "my key" VARCHAR[])``)."""
    schema = pa.schema([pa.field(f"c{i}", t) for i, t in enumerate(types)])
    with duckdb.connect() as con:
        return [str(t) for t in con.from_arrow(schema.empty_table()).types]


def _write(
    batches: Iterator[list[Record]],
    columns: list[_Key],
    target: Path,
    request: ConvertRequest,
    keys: _Keys | None,
) -> tuple[int, dict[_Key, str] | None]:
    """A pass writing the file: rows written, and the columns whose values did not fit
    their inferred or dataset type. The first pass gives the ``keys`` it infers: None
    when their types changed from the ``columns``' (then the batches are read to their
    end all the same). An incomplete file is removed."""
    planned = keys.state() if keys is not None else None
    options = request.options
    schema = pa.schema([pa.field(c.name, _arrow_type(c)) for c in columns])
    failed: dict[_Key, str] = {}
    rows = pending_rows = pending_bytes = 0
    pending: list[pa.RecordBatch] = []
    changed = False
    try:
        with _BackgroundWriter(target, schema, options) as writer:
            for batch in batches:
                changed = changed or (keys is not None and keys.state() != planned)
                if changed:
                    writer.cancel()
                    continue  # the first pass still infers the types from the rest
                inferred = keys.batch_array if keys is not None else None
                arrays = _arrays(batch, columns, schema, failed, inferred)
                if failed:
                    writer.cancel()
                    continue  # only checking from here on
                pending.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
                pending_rows += len(batch)
                pending_bytes += pending[-1].nbytes
                if request.progress is not None:
                    request.progress(rows + pending_rows)
                if (
                    pending_rows >= options.row_group_rows
                    or pending_bytes >= options.row_group_bytes
                ):
                    writer.write(pa.Table.from_batches(pending, schema=schema))
                    rows += pending_rows
                    pending, pending_rows, pending_bytes = [], 0, 0
            if pending and not failed and not changed:
                writer.write(pa.Table.from_batches(pending, schema=schema))
                rows += pending_rows
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if changed or failed:
        target.unlink(missing_ok=True)
    return rows, None if changed else failed


def _arrays(
    batch: list[Record],
    columns: list[_Key],
    schema: pa.Schema,
    failed: dict[_Key, str],
    inferred: pa.StructArray | None,
) -> list[pa.Array]:
    """A batch's columns: taken from ``inferred`` (the batch as pyarrow inferred it) where
    that has the column's type, converted as a whole where they take the values as they
    are, else one by one; ``failed`` gets the columns whose values do not fit."""
    direct = [i for i, c in enumerate(columns) if _direct(c, schema[i].type)]
    arrays: list[pa.Array] = [None] * len(columns)
    if inferred is not None:
        found = {field.name: field.type for field in inferred.type}
        for i in direct:
            kind = found.get(columns[i].key, pa.null())
            if kind == schema[i].type:
                arrays[i] = inferred.field(columns[i].key)
            elif kind == pa.null():
                arrays[i] = pa.nulls(len(batch), schema[i].type)
        direct = [i for i in direct if arrays[i] is None]
    struct = pa.struct([(columns[i].key, schema[i].type) for i in direct])
    try:
        # pyarrow refuses what does not fit (an integer beyond 2^53 as DOUBLE).
        for i, array in zip(direct, pa.array(batch, type=struct).flatten(), strict=True):
            arrays[i] = array
    except _ARROW_FAILURES:
        direct = []  # one column at a time, to find the one that does not fit
    for i, (column, field) in enumerate(zip(columns, schema, strict=True)):
        if arrays[i] is not None or column in failed:
            continue
        values = [r.get(column.key) for r in batch]
        try:
            arrays[i] = _array(values, column, field.type)
        except _ARROW_FAILURES as exc:
            if column.source == "override":
                raise _refused(column, field.type, values) from exc
            failed[column] = f"a value does not fit {field.type}: {exc}; {_AS_TEXT}"
    return arrays


def _refused(column: _Key, arrow: pa.DataType, values: list[Any]) -> InvalidTypeOverride:
    """The 400 for an override a value does not fit, naming the first such value."""
    value = next(v for v in values if _unfit(_text(v), arrow))
    type_name = _duckdb_types([arrow])[0]
    return InvalidTypeOverride(
        f"column {column.name!r} cannot be read as {type_name}: {_text(value)!r} does not fit",
        details={"column": column.name, "value": _text(value)},
    )


def _unfit(text: str | None, arrow: pa.DataType) -> bool:
    try:
        pc.cast(pc.utf8_trim_whitespace(pa.array([text], pa.string())), arrow)
    except _ARROW_FAILURES:
        return True
    return False


def _direct(column: _Key, arrow: pa.DataType) -> bool:
    """Whether a column takes its JSON values as they are (no text, no cast)."""
    return column.text is None and column.source != "override" and column.target != pa.string()


def _array(values: list[Any], column: _Key, arrow: pa.DataType) -> pa.Array:
    if _direct(column, arrow):
        return pa.array(values, type=arrow)
    if all(v is None for v in values):
        return pa.nulls(len(values), arrow)
    text = pa.array([_text(v) for v in values], type=pa.string())
    if arrow == pa.string():
        return text
    if column.source == "override":
        text = pc.utf8_trim_whitespace(text)
    return pc.cast(text, arrow)


_encode = msgspec.json.Encoder().encode


def _text(value: Any) -> str | None:
    """A value as text: a string as itself, anything else as its JSON text."""
    if value is None or type(value) is str:
        return value
    return _encode(value).decode()
