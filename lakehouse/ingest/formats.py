"""The upload formats ingest reads, and the contract every format's converter keeps.

A converter reads one local file (the spooled upload, already decompressed) and
writes one Parquet file that the catalog can commit: column names normalised the
way CSV headers are (``schema.normalise_header``), types that
``lakehouse.catalog`` maps to Iceberg. It runs in a worker thread and keeps memory
bounded by about one row group, whatever the file's size; a format that needs
random access (Parquet, Arrow file, xlsx) reads the spooled file on disk, never a
copy in RAM.

Bad input raises an ingest ``BadRequest`` subclass (400) naming where it is (a line,
a byte offset, a column); nothing is committed by a converter, and the service
removes the files after any error.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import msgspec

from lakehouse.ingest.convert import ConvertOptions, WidenedColumn
from lakehouse.ingest.schema import InferredColumn


class Format(enum.StrEnum):
    """An upload's format, as ``?format=`` names it."""

    CSV = "csv"
    TSV = "tsv"
    NDJSON = "ndjson"
    JSON = "json"  # one JSON array of objects
    PARQUET = "parquet"
    ARROW = "arrow"  # Arrow IPC, file or stream
    XLSX = "xlsx"


class Compression(enum.StrEnum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"


class ConvertRequest(msgspec.Struct):
    """What a converter is asked to do besides reading ``source`` and writing ``target``."""

    options: ConvertOptions
    overrides: dict[str, str] = {}
    """``?types=``: column name as the user wrote it -> DuckDB type (``parse_type_overrides``).
    Names match case-insensitively against the normalised names; a name matching no column
    is ``InvalidTypeOverride`` (400). Such a column's ``source`` is ``override``, and a
    value that does not fit is a 400 naming the column and the value."""
    dataset_types: dict[str, str] = {}
    """On append: the dataset's column types by lower-cased name. A column whose own type
    converts to the dataset's without loss (an int32 into BIGINT, BIGINT into DOUBLE or
    DECIMAL) is written with the dataset's type and ``source`` ``dataset``; anything else
    is written as it is and the catalog's append rules decide (409 with both schemas)."""
    sheet: str | None = None
    """``?sheet=`` for xlsx (its name); None: the first sheet. Other formats ignore it."""
    progress: Callable[[int], None] | None = None
    """Called (from the worker thread) with the number of rows converted so far."""


class Converted(msgspec.Struct):
    """What a converter wrote: the columns as committed (name, type, how typed), the
    row count, and the columns widened past what the first values suggested."""

    columns: list[InferredColumn]
    rows: int
    widened: list[WidenedColumn] = []
    delimiter: str | None = None
    """CSV/TSV only: the delimiter found."""


class Converter(Protocol):
    def __call__(self, source: Path, target: Path, request: ConvertRequest) -> Converted:
        """Convert ``source`` to the Parquet file ``target``. Blocking: call it from a
        worker thread. Raises an ingest ``BadRequest`` (400) for input it cannot read."""
        ...
