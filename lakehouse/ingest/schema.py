"""Dialect detection and schema inference from the header and a sample of rows.

The rules (ADR 0004): a column gets a type only when every non-empty value of
the sample parses as that type; otherwise it is text (``VARCHAR``) and, when
some values looked typed, the column is reported as *defaulted* with the
reason. Numbers with leading zeros stay text; integers beyond int64 become
``DECIMAL(38,0)`` (exact) and beyond 38 digits text; a date column is a date
only when every value is an ISO date. Types are DuckDB type names.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from collections.abc import Iterable
from pathlib import Path

import msgspec
import pyarrow as pa

from lakehouse.ingest.arrival import Arrival, arrival_of
from lakehouse.ingest.errors import EmptyCSV, InvalidCSV, InvalidTypeOverride, NotUTF8
from lakehouse.ingest.locate import ragged, unclosed_quote

VARCHAR = "VARCHAR"
BIGINT = "BIGINT"
DOUBLE = "DOUBLE"
BOOLEAN = "BOOLEAN"
DATE = "DATE"
TIMESTAMP = "TIMESTAMP"
TIMESTAMPTZ = "TIMESTAMP WITH TIME ZONE"
DECIMAL = "DECIMAL(38,0)"

ARROW_TYPES: dict[str, pa.DataType] = {
    VARCHAR: pa.string(),
    BIGINT: pa.int64(),
    DOUBLE: pa.float64(),
    BOOLEAN: pa.bool_(),
    DATE: pa.date32(),
    TIMESTAMP: pa.timestamp("us"),
    TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
    DECIMAL: pa.decimal128(38, 0),
}

# Spellings accepted by ?types=col:type.
TYPE_ALIASES: dict[str, str] = {
    **dict.fromkeys(("string", "str", "text", "varchar"), VARCHAR),
    **dict.fromkeys(("int", "integer", "int64", "bigint", "long"), BIGINT),
    **dict.fromkeys(("float", "double", "float64", "real", "number"), DOUBLE),
    **dict.fromkeys(("bool", "boolean"), BOOLEAN),
    "date": DATE,
    "timestamp": TIMESTAMP,
    "timestamptz": TIMESTAMPTZ,
    "decimal": DECIMAL,
    "decimal(38,0)": DECIMAL,
}

TRUE_VALUES = ["true", "True", "TRUE"]
FALSE_VALUES = ["false", "False", "FALSE"]
_BOOLS = frozenset(TRUE_VALUES + FALSE_VALUES)
DELIMITERS = (",", ";", "\t", "|")

_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
LEADING_ZERO = r"^[+-]?0[0-9]"
"""A number with a leading zero (a zip code, an account number) is text: as a
number it would lose digits. Inference and the converter both use this; the
sign is optional because pyarrow's float cast accepts ``+007.5`` (inference
itself never takes a ``+`` value for a number)."""
_LEADING_ZERO = re.compile(LEADING_ZERO)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_VALUE = re.compile(
    rf"(?P<int>{_INT.pattern})|(?P<float>{_FLOAT.pattern})|(?P<date>{_DATE.pattern})"
    rf"|(?P<ts>{_TS.pattern.replace('(Z|', '(?P<tz>Z|')})"
)
# The first character of every int, float, date or timestamp.
_TYPED_START = frozenset("-.0123456789")
_INT64_MAX = 2**63 - 1
_HEAD_BYTES = 1024 * 1024
_DIALECT_LINES = 50
# Python's csv module refuses fields over 128 KiB by default; free text can be longer.
csv.field_size_limit(64 * 1024 * 1024)


class InferredColumn(msgspec.Struct):
    """One column as it will be written: final name, DuckDB type, and why."""

    name: str
    type: str
    source: str = "inferred"
    """``inferred``, ``override`` (``?types=``), ``dataset`` (an append took the
    dataset's wider type) or ``widened``."""
    reason: str | None = None
    """Why a column became VARCHAR although some values looked typed."""
    risk: str | None = None
    """Why this typing deserves a look before committing: ``leading_zeros``, ``mixed``
    (typed and text values, or several typed kinds) or ``defaulted`` (text for another
    reason); None when nothing was guessed."""


class CsvLayout(msgspec.Struct):
    """What the converter needs to know about a file."""

    delimiter: str
    columns: list[InferredColumn]


def parse_type_overrides(raw: str | None) -> dict[str, str]:
    """``col:type,col2:type`` -> {col: DuckDB type}. Raises InvalidTypeOverride."""
    if not raw:
        return {}
    result: dict[str, str] = {}
    seen: dict[str, str] = {}  # lower-cased name -> as given: columns match case-insensitively
    for item in _split_overrides(raw):
        if not item.strip():
            continue
        column, sep, type_name = item.rpartition(":")
        column = column.strip()  # "a:int, b:string" names "b", not " b"
        canonical = TYPE_ALIASES.get(type_name.strip().lower().replace(" ", ""))
        if not sep or not column or canonical is None:
            raise InvalidTypeOverride(
                f"bad type override {item!r}: expected column:type with type one of "
                + ", ".join(sorted(TYPE_ALIASES)),
            )
        if column.lower() in seen:
            raise InvalidTypeOverride(
                f"column {column!r} has more than one type override",
                details={"column": column},
            )
        seen[column.lower()] = column
        result[column] = canonical
    return result


def _split_overrides(raw: str) -> list[str]:
    """Split on the commas outside parentheses, so ``a:decimal(38,0)`` is one item."""
    items, depth, start = [], 0, 0
    for position, char in enumerate(raw):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            items.append(raw[start:position])
            start = position + 1
    items.append(raw[start:])
    return items


def normalise_header(names: Iterable[str]) -> list[str]:
    """Empty names become ``column_N`` (1-based position); a name equal to an
    earlier one (case-insensitively, as SQL compares them) gets ``_2``, ``_3``...
    NUL characters are dropped: no SQL identifier can hold one."""
    result: list[str] = []
    seen: set[str] = set()
    for position, raw in enumerate(names, start=1):
        raw = raw.replace("\0", "")
        name = raw if raw.strip() else f"column_{position}"
        candidate, n = name, 1
        while candidate.lower() in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate.lower())
        result.append(candidate)
    return result


def infer_layout(
    source: Path | Arrival,
    sample_rows: int,
    overrides: dict[str, str],
    delimiter: str | None = None,
) -> CsvLayout:
    """Detect the dialect (the delimiter unless given: TSV's is a tab), read the header
    and up to ``sample_rows`` rows, infer the column types. Blocking: run it in a
    worker thread. ``source`` may still be arriving: only its head is read.

    Raises EmptyCSV, NotUTF8, RaggedRows (within the sample), InvalidCSV,
    InvalidTypeOverride (an override names no column).
    """
    arrival = arrival_of(source)
    head = _read_head(arrival)
    if not head.strip():
        raise EmptyCSV("the CSV is empty")
    first_line = head.splitlines()[0] if head.splitlines() else ""
    if not first_line.strip():
        raise EmptyCSV("the CSV has no header row: its first line is empty")
    delimiter = delimiter or detect_delimiter(head)
    with io.TextIOWrapper(arrival.open(), encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, quotechar='"', doublequote=True)
        try:
            header = next(reader)
            if not any(name.strip() for name in header):
                raise EmptyCSV("the CSV has no header row: every header name is empty")
            if any("\0" in name for name in header):
                # pyarrow's reader miscounts the rows after such a header: a row would be lost.
                raise InvalidCSV("the CSV's header row holds a NUL byte")
            width = len(header)
            rows: list[list[str]] = []
            count = 0
            previous_line = reader.line_num
            for row in reader:
                if not row:  # blank line; pyarrow skips them too
                    previous_line = reader.line_num
                    continue
                if len(row) != width:
                    # A quote left open makes its record short of fields: say that instead.
                    raise unclosed_quote(arrival.wait_all(), delimiter) or ragged(
                        previous_line + 1, count + 2, width, len(row)
                    )
                rows.append(row)
                count += 1
                previous_line = reader.line_num
                if count >= sample_rows:
                    break
        except UnicodeDecodeError as exc:
            raise NotUTF8("the CSV is not valid UTF-8", details={"reason": str(exc)}) from exc
        except csv.Error as exc:
            raise InvalidCSV(f"the CSV cannot be parsed: {exc}") from exc
    # Transposed in one go: cheaper than appending each value to its column.
    samples = [list(values) for values in zip(*rows, strict=True)] if rows else [[] for _ in header]
    names = normalise_header(header)
    columns = [_column(name, values) for name, values in zip(names, samples, strict=True)]
    _apply_overrides(columns, overrides)
    return CsvLayout(delimiter=delimiter, columns=columns)


def detect_delimiter(text: str) -> str:
    """The candidate that splits the header into the most fields and the first
    lines into that same number (quotes respected).

    When no candidate splits the header, the file has one column: pick the
    candidate that splits none of the first lines either (``,`` first), so a
    value holding a comma does not read as a ragged row.
    """
    lines = text.splitlines(keepends=True)[:_DIALECT_LINES]
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the head may end mid-line
    best, best_score = ",", (0, 0)
    single_column, fewest_splits = ",", None
    for candidate in DELIMITERS:
        try:
            rows = [r for r in csv.reader(lines, delimiter=candidate) if r]
        except csv.Error:
            continue
        if not rows:
            continue
        width = len(rows[0])
        consistent = sum(1 for r in rows if len(r) == width)
        if width < 2:
            if fewest_splits is None or len(rows) - consistent < fewest_splits:
                single_column, fewest_splits = candidate, len(rows) - consistent
            continue
        score = (consistent, width)
        if score > best_score:
            best, best_score = candidate, score
    return best if best_score > (0, 0) else single_column


def _read_head(arrival: Arrival) -> str:
    raw = arrival.head(_HEAD_BYTES)
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        # final=False: a multi-byte character cut at the end of the head is not an error.
        return decoder.decode(raw, final=len(raw) < _HEAD_BYTES)
    except UnicodeDecodeError as exc:
        raise NotUTF8(
            f"the CSV is not valid UTF-8 (byte offset {exc.start})",
            details={"byte_offset": exc.start},
        ) from exc


def _kind(value: str) -> str:
    if value in _BOOLS:
        return "bool"
    if value[0] not in _TYPED_START:
        return "text"  # names, emails...: no regex needed
    match = _VALUE.fullmatch(value)  # one regex for the four typed shapes: the sample's hot path
    if match is None:
        return "text"
    if match.group("int") is not None:
        return "int"
    if match.group("float") is not None:
        return "float"
    try:
        if match.group("date") is not None:
            dt.date.fromisoformat(value)
            return "date"
        dt.datetime.fromisoformat(value)
    except ValueError:
        return "text"
    return "tstz" if match.group("tz") else "ts"


def _column(name: str, values: list[str]) -> InferredColumn:
    def text(reason: str | None, risk: str | None = "defaulted") -> InferredColumn:
        return InferredColumn(name=name, type=VARCHAR, reason=reason, risk=risk)

    def typed(type_name: str) -> InferredColumn:
        return InferredColumn(name=name, type=type_name)

    kinds: dict[str, str] = {}  # kind -> first example
    for value in dict.fromkeys(values):  # distinct values, first occurrence first
        if value == "":
            continue
        kind = _kind(value)
        kinds.setdefault(kind, value)
    if not kinds:
        return text("no non-empty values in the sample")
    found = set(kinds)
    if found == {"bool"}:
        return typed(BOOLEAN)
    if found <= {"int", "float"}:
        zero = next((v for v in values if _LEADING_ZERO.match(v)), None)
        if zero is not None:
            return text(
                f"numbers with leading zeros are kept as text (e.g. {zero!r})", "leading_zeros"
            )
        if "float" in found:
            return typed(DOUBLE)
        digits = max(len(v.lstrip("-")) for v in values if v)
        if digits <= 18 or all(-_INT64_MAX - 1 <= int(v) <= _INT64_MAX for v in values if v):
            return typed(BIGINT)
        if digits <= 38:
            return typed(DECIMAL)
        return text("integers longer than 38 digits are kept as text")
    if found == {"date"}:
        return typed(DATE)
    if found <= {"date", "ts"}:
        return typed(TIMESTAMP)
    if found == {"tstz"}:
        return typed(TIMESTAMPTZ)
    if "text" not in found:
        return text(
            f"mixed value kinds {sorted(found)}: e.g. "
            + ", ".join(repr(kinds[k]) for k in sorted(found)),
            "mixed",
        )
    typed_kinds = sorted(found - {"text"})
    if not typed_kinds:
        return text(None, None)  # plain text, nothing ambiguous
    examples = ", ".join(f"{kinds[k]!r} ({k})" for k in typed_kinds)
    return text(
        f"some values look typed ({examples}) but others are text, e.g. {kinds['text']!r}",
        "mixed",
    )


def matched_overrides(names: list[str], overrides: dict[str, str]) -> dict[str, str]:
    """``?types=`` by column name as normalised (matched case-insensitively): {name: type}.
    Raises InvalidTypeOverride for an override naming no column."""
    by_name = {name.lower(): name for name in names}
    matched = {}
    for wanted, type_name in overrides.items():
        name = by_name.get(wanted.lower())
        if name is None:
            raise InvalidTypeOverride(
                f"type override names no column: {wanted!r}", details={"columns": names}
            )
        matched[name] = type_name
    return matched


def _apply_overrides(columns: list[InferredColumn], overrides: dict[str, str]) -> None:
    by_name = {c.name: c for c in columns}
    for name, type_name in matched_overrides(list(by_name), overrides).items():
        column = by_name[name]
        column.type = type_name
        column.source = "override"
        column.reason = None
        column.risk = None


# Inferred type -> the table types a value of it converts to without loss, for appends.
_LOSSLESS: dict[str, frozenset[str]] = {
    BIGINT: frozenset({VARCHAR, DOUBLE, DECIMAL}),
    DOUBLE: frozenset({VARCHAR}),
    DECIMAL: frozenset({VARCHAR}),
    BOOLEAN: frozenset({VARCHAR}),
    DATE: frozenset({VARCHAR, TIMESTAMP}),
    TIMESTAMP: frozenset({VARCHAR}),
    TIMESTAMPTZ: frozenset({VARCHAR}),
}


def conforming_overrides(
    columns: Iterable[InferredColumn], table_types: dict[str, str]
) -> dict[str, str]:
    """For an append: the inferred columns to write as the table's wider type (a zip
    column of this week's file that happens to hold no leading zero stays text, an
    all-integer amount stays DOUBLE). ``table_types``: lower-case name -> type."""
    return {
        c.name: table_types[c.name.lower()]
        for c in columns
        if c.source == "inferred"
        and table_types.get(c.name.lower(), c.type) in _LOSSLESS.get(c.type, frozenset())
    }
