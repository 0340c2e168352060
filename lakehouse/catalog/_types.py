"""Column types across the three type systems a dataset meets: DuckDB's names (our
``Column.type``), Arrow's (the Parquet files) and Iceberg's (the table's schema).

Only the types ingest writes, plus the few a hand-made Parquet file commonly
holds, are mapped; anything else is refused with a clear message rather than
guessed.
"""

from __future__ import annotations

import re

import pyarrow as pa
from pyiceberg.schema import Schema
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
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


class UnsupportedType(ValueError):
    """A column type with no mapping (the message names it)."""


def iceberg_type(duckdb_type: str) -> IcebergType:
    """The Iceberg type of a DuckDB type name. Raises ``UnsupportedType``."""
    if duckdb_type in _SIMPLE:
        return _SIMPLE[duckdb_type]
    if match := _DECIMAL.fullmatch(duckdb_type):
        return DecimalType(int(match[1]), int(match[2]))
    raise UnsupportedType(f"column type {duckdb_type!r} cannot be stored in a table")


def duckdb_type(iceberg: IcebergType) -> str:
    """The DuckDB type name of an Iceberg type. Raises ``UnsupportedType``."""
    if isinstance(iceberg, DecimalType):
        return f"DECIMAL({iceberg.precision},{iceberg.scale})"
    for name, candidate in _SIMPLE.items():
        if candidate == iceberg:
            return name
    raise UnsupportedType(f"Iceberg type {iceberg} has no DuckDB column type here")


def arrow_column_type(arrow: pa.DataType) -> str:
    """The DuckDB type name of an Arrow type, as a Parquet file's footer has it.
    Raises ``UnsupportedType``."""
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
    if pa.types.is_timestamp(arrow) and arrow.unit == "us":
        return "TIMESTAMP WITH TIME ZONE" if arrow.tz else "TIMESTAMP"
    if pa.types.is_decimal(arrow):
        return f"DECIMAL({arrow.precision},{arrow.scale})"
    if pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow):
        return "BLOB"
    raise UnsupportedType(f"Parquet column type {arrow} cannot be stored in a table")


def iceberg_schema(columns: list[Column]) -> Schema:
    """A new table's schema: every column optional, field ids 1..n in order."""
    fields = [
        NestedField(field_id=i, name=c.name, field_type=iceberg_type(c.type), required=False)
        for i, c in enumerate(columns, start=1)
    ]
    return Schema(*fields)


def columns_of(schema: Schema) -> list[Column]:
    """A table schema's columns as DuckDB types, in order."""
    return [Column(name=f.name, type=duckdb_type(f.field_type)) for f in schema.fields]
