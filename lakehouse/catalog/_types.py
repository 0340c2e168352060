"""Column types across the three type systems a dataset meets: DuckDB's names (our
``Column.type``), Arrow's (the Parquet files) and Iceberg's (the table's schema).

Only the types ingest writes, plus the few a hand-made Parquet file commonly
holds, are mapped; anything else is refused with a clear message rather than
guessed. Nested types (ADR 0021) are spelled exactly as DuckDB prints them
(``STRUCT(a BIGINT, "b c" VARCHAR[])``, ``BIGINT[]``, ``MAP(VARCHAR, BIGINT)``), so a
type DuckDB reports and one read back from Iceberg compare equal as strings: a
small recursive parser reads that spelling into a tree, and one renderer writes
every tree back the way DuckDB would.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import pyarrow as pa
from pyiceberg.schema import Schema, assign_fresh_schema_ids
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    NestedField,
    StringType,
    StructType,
    TimestampType,
    TimestamptzType,
    TimeType,
)

from lakehouse.catalog.interface import Column

_SIMPLE: dict[str, IcebergType] = {
    "VARCHAR": StringType(),
    "BIGINT": LongType(),
    "INTEGER": IntegerType(),
    "DOUBLE": DoubleType(),
    "FLOAT": FloatType(),
    "BOOLEAN": BooleanType(),
    "DATE": DateType(),
    "TIME": TimeType(),
    "TIMESTAMP": TimestampType(),
    "TIMESTAMP WITH TIME ZONE": TimestamptzType(),
    "BLOB": BinaryType(),
}
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class UnsupportedType(ValueError):
    """A column type with no mapping (the message names it)."""


# -- the parsed form of a DuckDB type name ------------------------------------------


@dataclass(frozen=True)
class Scalar:
    name: str  # "BIGINT", "DECIMAL(10,2)", "TIMESTAMP WITH TIME ZONE"


@dataclass(frozen=True)
class Struct:
    fields: tuple[tuple[str, TypeTree], ...]


@dataclass(frozen=True)
class List:
    element: TypeTree


@dataclass(frozen=True)
class Map:
    key: TypeTree
    value: TypeTree


TypeTree: TypeAlias = "Scalar | Struct | List | Map"


class _Parser:
    """Recursive descent over one DuckDB type name:

    type   := base ("[]")*
    base   := "STRUCT(" name type ("," name type)* ")" | "MAP(" type "," type ")" | scalar
    name   := identifier | '"' (any character, '""' for a quote)* '"'
    scalar := words, optionally followed by "(" digits ("," digits)* ")"
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def fail(self, what: str) -> UnsupportedType:
        return UnsupportedType(
            f"column type {self.text!r} cannot be read: {what} at character {self.at}"
        )

    def parse(self) -> TypeTree:
        tree = self.type()
        self.spaces()
        if self.at != len(self.text):
            raise self.fail("unexpected text")
        return tree

    def spaces(self) -> None:
        while self.at < len(self.text) and self.text[self.at] == " ":
            self.at += 1

    def take(self, token: str) -> bool:
        self.spaces()
        if self.text.startswith(token, self.at):
            self.at += len(token)
            return True
        return False

    def expect(self, token: str) -> None:
        if not self.take(token):
            raise self.fail(f"{token!r} expected")

    def type(self) -> TypeTree:
        tree = self.base()
        while self.take("["):
            if not self.take("]"):
                raise self.fail("only variable-length lists ('[]') are supported")
            tree = List(tree)
        return tree

    def base(self) -> TypeTree:
        if self.take("STRUCT("):
            fields = [(self.name(), self.type())]
            while self.take(","):
                fields.append((self.name(), self.type()))
            self.expect(")")
            return Struct(tuple(fields))
        if self.take("MAP("):
            key = self.type()
            self.expect(",")
            value = self.type()
            self.expect(")")
            return Map(key, value)
        return self.scalar()

    def name(self) -> str:
        self.spaces()
        if self.take('"'):
            chars = []
            while True:
                end = self.text.find('"', self.at)
                if end < 0:
                    raise self.fail("unterminated quoted name")
                chars.append(self.text[self.at : end])
                self.at = end + 1
                if not self.text.startswith('"', self.at):
                    return "".join(chars)
                chars.append('"')  # '""' is one quote
                self.at += 1
        match = _PLAIN_NAME.match(self.text, self.at)
        if match is None:
            raise self.fail("a field name expected")
        self.at = match.end()
        return match[0]

    def scalar(self) -> Scalar:
        self.spaces()
        start = self.at
        while self.at < len(self.text) and _in_scalar(self.text[self.at]):
            self.at += 1
        if self.at < len(self.text) and self.text[self.at] == "(":
            end = self.text.find(")", self.at)
            if end < 0:
                raise self.fail("unterminated type arguments")
            self.at = end + 1
        name = self.text[start : self.at].strip()
        if not name:
            raise self.fail("a type name expected")
        return Scalar(name)


def _in_scalar(char: str) -> bool:
    return char.isalnum() or char in " _"


def parse_type(duckdb_type: str) -> TypeTree:
    """The tree of a DuckDB type name. Raises ``UnsupportedType`` for text that is none."""
    return _Parser(duckdb_type).parse()


@functools.cache
def _keywords() -> frozenset[str]:
    """DuckDB's keywords, which it quotes as field names (the pinned version's list)."""
    import duckdb  # only rendering odd field names needs it

    with duckdb.connect() as connection:
        rows = connection.sql("SELECT keyword_name FROM duckdb_keywords()").fetchall()
    return frozenset(str(row[0]).lower() for row in rows)


def _field_name(name: str) -> str:
    """A struct field's name as DuckDB prints it: bare when a plain non-keyword name."""
    if _PLAIN_NAME.fullmatch(name) and name.lower() not in _keywords():
        return name
    return '"' + name.replace('"', '""') + '"'


def render_type(tree: TypeTree) -> str:
    """The DuckDB type name of a tree, spelled as DuckDB prints it."""
    if isinstance(tree, Scalar):
        return tree.name
    if isinstance(tree, List):
        return render_type(tree.element) + "[]"
    if isinstance(tree, Map):
        return f"MAP({render_type(tree.key)}, {render_type(tree.value)})"
    fields = ", ".join(f"{_field_name(name)} {render_type(t)}" for name, t in tree.fields)
    return f"STRUCT({fields})"


def struct_growth(old: str, new: str) -> list[tuple[tuple[str, ...], str]] | None:
    """The struct fields type ``new`` adds to type ``old``, each as its path inside the
    column (``element`` and ``value`` step into a list's elements and a map's values)
    and its DuckDB type, when ``new`` is ``old`` with fields added after a struct's own
    (at any depth); ``[]`` when they are the same type; None for any other change."""
    try:
        return _growth(parse_type(old), parse_type(new), ())
    except UnsupportedType:
        return None


def _growth(
    old: TypeTree, new: TypeTree, path: tuple[str, ...]
) -> list[tuple[tuple[str, ...], str]] | None:
    if old == new:
        return []
    if isinstance(old, List) and isinstance(new, List):
        return _growth(old.element, new.element, (*path, "element"))
    if isinstance(old, Map) and isinstance(new, Map) and old.key == new.key:
        return _growth(old.value, new.value, (*path, "value"))
    if not (isinstance(old, Struct) and isinstance(new, Struct)):
        return None
    kept, extra = new.fields[: len(old.fields)], new.fields[len(old.fields) :]
    if [name for name, _ in kept] != [name for name, _ in old.fields]:
        return None  # a field renamed, dropped or moved
    found: list[tuple[tuple[str, ...], str]] = []
    for (name, before), (_, after) in zip(old.fields, kept, strict=True):
        inner = _growth(before, after, (*path, name))
        if inner is None:
            return None
        found += inner
    return found + [((*path, name), render_type(t)) for name, t in extra]


# -- DuckDB <-> Iceberg -------------------------------------------------------------


def iceberg_type(duckdb_type: str) -> IcebergType:
    """The Iceberg type of a DuckDB type name (nested ones with field ids 1, 2, ... in
    the order met: a schema renumbers them). Raises ``UnsupportedType``."""
    ids = itertools.count(1)
    return _iceberg(parse_type(duckdb_type), lambda: next(ids), duckdb_type)


def _iceberg(tree: TypeTree, next_id: Callable[[], int], whole: str) -> IcebergType:
    if isinstance(tree, Scalar):
        if tree.name in _SIMPLE:
            return _SIMPLE[tree.name]
        if match := _DECIMAL.fullmatch(tree.name):
            return DecimalType(int(match[1]), int(match[2]))
        raise UnsupportedType(f"column type {whole!r} cannot be stored in a table")
    if isinstance(tree, List):
        return ListType(next_id(), _iceberg(tree.element, next_id, whole), element_required=False)
    if isinstance(tree, Map):
        key_id, value_id = next_id(), next_id()
        return MapType(
            key_id,
            _iceberg(tree.key, next_id, whole),
            value_id,
            _iceberg(tree.value, next_id, whole),
            value_required=False,
        )
    _check_field_names(tree, whole)
    return StructType(
        *(
            NestedField(next_id(), name, _iceberg(t, next_id, whole), required=False)
            for name, t in tree.fields
        )
    )


def _check_field_names(tree: Struct, whole: str) -> None:
    names = [name.lower() for name, _ in tree.fields]
    if len(set(names)) != len(names) or "" in names:
        raise UnsupportedType(
            f"column type {whole!r} cannot be stored in a table: its struct field names "
            "must be non-empty and distinct (case-insensitively)"
        )


def duckdb_type(iceberg: IcebergType) -> str:
    """The DuckDB type name of an Iceberg type. Raises ``UnsupportedType``."""
    return render_type(_tree_of_iceberg(iceberg))


def _tree_of_iceberg(iceberg: IcebergType) -> TypeTree:
    if isinstance(iceberg, DecimalType):
        return Scalar(f"DECIMAL({iceberg.precision},{iceberg.scale})")
    if isinstance(iceberg, ListType):
        return List(_tree_of_iceberg(iceberg.element_type))
    if isinstance(iceberg, MapType):
        return Map(_tree_of_iceberg(iceberg.key_type), _tree_of_iceberg(iceberg.value_type))
    if isinstance(iceberg, StructType):
        return Struct(tuple((f.name, _tree_of_iceberg(f.field_type)) for f in iceberg.fields))
    for name, candidate in _SIMPLE.items():
        if candidate == iceberg:
            return Scalar(name)
    raise UnsupportedType(f"Iceberg type {iceberg} has no DuckDB column type here")


# -- Arrow ----------------------------------------------------------------------------


def arrow_column_type(arrow: pa.DataType) -> str:
    """The DuckDB type name of an Arrow type, as a Parquet file's footer has it.
    Raises ``UnsupportedType``."""
    return render_type(_tree_of_arrow(arrow))


def _tree_of_arrow(arrow: pa.DataType) -> TypeTree:
    if pa.types.is_struct(arrow):
        return Struct(tuple((f.name, _tree_of_arrow(f.type)) for f in arrow))
    if pa.types.is_map(arrow):
        return Map(_tree_of_arrow(arrow.key_type), _tree_of_arrow(arrow.item_type))
    if pa.types.is_list(arrow) or pa.types.is_large_list(arrow):
        return List(_tree_of_arrow(arrow.value_type))
    return Scalar(_flat_arrow_type(arrow))


def _flat_arrow_type(arrow: pa.DataType) -> str:
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return "VARCHAR"
    if pa.types.is_int64(arrow):
        return "BIGINT"
    if pa.types.is_int32(arrow) or pa.types.is_int16(arrow) or pa.types.is_int8(arrow):
        return "INTEGER"
    if pa.types.is_float64(arrow):
        return "DOUBLE"
    if pa.types.is_float32(arrow):
        return "FLOAT"
    if pa.types.is_boolean(arrow):
        return "BOOLEAN"
    if pa.types.is_date32(arrow):
        return "DATE"
    if pa.types.is_time64(arrow) and arrow.unit == "us":
        return "TIME"
    if pa.types.is_timestamp(arrow) and arrow.unit == "us":
        return "TIMESTAMP WITH TIME ZONE" if arrow.tz else "TIMESTAMP"
    if pa.types.is_decimal(arrow):
        return f"DECIMAL({arrow.precision},{arrow.scale})"
    if pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow):
        return "BLOB"
    raise UnsupportedType(f"Parquet column type {arrow} cannot be stored in a table")


_ARROW_SIMPLE: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "FLOAT": pa.float32(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIME": pa.time64("us"),
    "TIMESTAMP": pa.timestamp("us"),
    "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="UTC"),
    "BLOB": pa.binary(),
}


def arrow_type(duckdb_type: str) -> pa.DataType:
    """The Arrow type a Parquet file stores a column of this DuckDB type as (the inverse
    of ``arrow_column_type``). Raises ``UnsupportedType``."""
    return _arrow(parse_type(duckdb_type), duckdb_type)


def _arrow(tree: TypeTree, whole: str) -> pa.DataType:
    if isinstance(tree, Scalar):
        if tree.name in _ARROW_SIMPLE:
            return _ARROW_SIMPLE[tree.name]
        if match := _DECIMAL.fullmatch(tree.name):
            return pa.decimal128(int(match[1]), int(match[2]))
        raise UnsupportedType(f"column type {whole!r} cannot be stored in a table")
    if isinstance(tree, List):
        return pa.list_(pa.field("element", _arrow(tree.element, whole)))
    if isinstance(tree, Map):
        return pa.map_(_arrow(tree.key, whole), _arrow(tree.value, whole))
    _check_field_names(tree, whole)
    return pa.struct([pa.field(name, _arrow(t, whole)) for name, t in tree.fields])


def iceberg_schema(columns: list[Column]) -> Schema:
    """A new table's schema: every column optional, field ids unique (the columns
    1..n in order, then their nested fields)."""
    fields = [
        NestedField(field_id=i, name=c.name, field_type=iceberg_type(c.type), required=False)
        for i, c in enumerate(columns, start=1)
    ]
    # Nested types each number their fields from 1: renumber the whole schema.
    ids = itertools.count(1)
    return assign_fresh_schema_ids(Schema(*fields), lambda: next(ids))


def columns_of(schema: Schema) -> list[Column]:
    """A table schema's columns as DuckDB types, in order."""
    return [Column(name=f.name, type=duckdb_type(f.field_type)) for f in schema.fields]
