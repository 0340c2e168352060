"""Where in a CSV file an error is: the line a record starts on, found with
the csv module, only once pyarrow (whose multi-threaded reader does not say
where) or the sample has met the error."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from pathlib import Path

from lakehouse.ingest.errors import FieldTooLarge, InvalidCSV, RaggedRows

# The csv module refuses fields over 128 KiB by default; the fields this module looks
# for are larger (up to [ingest] max_field_bytes, and beyond it to report them).
csv.field_size_limit(64 * 1024 * 1024)


def ragged(line: int, row: int, expected: int, got: int) -> RaggedRows:
    return RaggedRows(
        f"line {line}: expected {expected} fields (as in the header), got {got}",
        details={"line": line, "row": row, "expected": expected, "got": got},
    )


class Records:
    """The records of a CSV file (the header first) and the line each starts
    on, read with the csv module: ``line`` is also where a csv.Error was met."""

    def __init__(self, source: Path, delimiter: str) -> None:
        self.source = source
        self.delimiter = delimiter
        self.line = 1

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        with self.source.open(encoding="utf-8-sig", newline="", errors="replace") as handle:
            reader = csv.reader(handle, delimiter=self.delimiter, quotechar='"')
            for row in reader:
                if row:  # not a blank line, which pyarrow skips too
                    yield self.line, row
                self.line = reader.line_num + 1


def unclosed_quote(source: Path, delimiter: str) -> InvalidCSV | None:
    """InvalidCSV naming the line of the last record when a quoted field in it
    is never closed (the csv module finds the last record, a strict parse of
    just that record tells), else None."""
    records = Records(source, delimiter)
    try:
        last_start = max((line for line, _row in records), default=1)
    except csv.Error:
        return None  # a field beyond the csv module's limit: not this question
    with source.open(encoding="utf-8-sig", newline="", errors="replace") as handle:
        tail = itertools.islice(handle, last_start - 1, None)
        strict = csv.reader(tail, delimiter=delimiter, quotechar='"', strict=True)
        try:
            for _row in strict:
                pass
        except csv.Error as exc:
            if "unexpected end of data" not in str(exc):
                return None
            return InvalidCSV(
                f"line {last_start}: a quoted field in the record starting on this line "
                "is never closed",
                details={"line": last_start},
            )
    return None


def locate_ragged(source: Path, delimiter: str, width: int) -> Exception:
    """The first record with another number of fields than the header (``width``)."""
    records = Records(source, delimiter)
    try:
        for row_number, (line, row) in enumerate(records, start=1):
            if len(row) != width:
                return ragged(line, row_number, width, len(row))
    except csv.Error as exc:
        return InvalidCSV(f"line {records.line}: {exc}", details={"line": records.line})
    return InvalidCSV("a row has another number of fields than the header")


def locate_oversized(source: Path, delimiter: str, limit: int) -> Exception:
    """FieldTooLarge naming the line of the first record larger than ``limit``."""
    records = Records(source, delimiter)
    line = None
    try:
        for start, row in records:
            # The bytes of the values and delimiters: the record's size without its quotes.
            if sum(len(value.encode()) for value in row) + len(row) > limit:
                line = start
                break
    except csv.Error:  # a field beyond even the csv module's limit
        line = records.line
    where = f"line {line}: " if line is not None else ""
    return FieldTooLarge(
        f"{where}a field, with the rest of its row, is larger than the largest accepted "
        f"({limit} bytes, [ingest] max_field_bytes)",
        details={"line": line, "max_field_bytes": limit},
    )
