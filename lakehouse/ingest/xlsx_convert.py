"""Excel ``.xlsx`` -> Parquet: the xlsx converter of ``lakehouse.ingest.formats``.

openpyxl reads the spooled file in read-only mode, one row at a time, with the cached
values of formulas (ADR 0022). The sheet's first non-empty row is the header; fully
empty rows are skipped (as CSV's blank lines are) and columns empty everywhere, left or
right of the table, are ignored. Names are normalised as CSV headers are.

Types come from the cells, not from their text: a number, a date, a boolean or a
string is what the workbook says it is, so a zip code stored as text keeps its leading
zero. A column of whole numbers is BIGINT (xlsx stores every number as a double), of
numbers DOUBLE, of dates at midnight DATE, of dates and times TIMESTAMP, of booleans
BOOLEAN, of text VARCHAR. A column mixing kinds is VARCHAR, reported as CSV reports it.

As for CSV, the types are decided on the first ``sample_rows`` rows and the file is
written in the same pass. A cell past them that does not fit (a fraction in a BIGINT
column, text in a DATE column, a value left or right of every column so far) stops the
writing; the pass reads on to learn every column's kinds, and a second pass writes the
file with the types that fit all cells (the changed columns reported as ``widened``).
"""

from __future__ import annotations

import codecs
import datetime as dt
import decimal
import itertools
import lzma
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Protocol
from xml.etree import ElementTree
from xml.etree.ElementTree import ParseError

import msgspec
import openpyxl
import pyarrow as pa
from openpyxl.utils.exceptions import InvalidFileException

from lakehouse.ingest.convert import ConvertOptions, WidenedColumn, _BackgroundWriter
from lakehouse.ingest.errors import (
    DecompressedTooLarge,
    EmptySheet,
    FieldTooLarge,
    InvalidTypeOverride,
    InvalidXLSX,
    UnknownSheet,
)
from lakehouse.ingest.formats import Converted, ConvertRequest
from lakehouse.ingest.schema import (
    ARROW_TYPES,
    BIGINT,
    BOOLEAN,
    DATE,
    DECIMAL,
    DOUBLE,
    FALSE_VALUES,
    TIMESTAMP,
    TIMESTAMPTZ,
    TRUE_VALUES,
    VARCHAR,
    InferredColumn,
    _apply_overrides,
    conforming_overrides,
    normalise_header,
)

SAMPLE_ROWS = 10_000
"""Rows the types are decided on, as ``ingest.sample_rows`` is for CSV."""
_SAMPLE_CELLS = 500_000
# openpyxl holds the shared strings table in memory, one Python string per entry.
_MAX_SHARED_STRINGS_BYTES = 256 * 1024 * 1024
_SHARED_STRINGS = "xl/sharedstrings.xml"
_SHARED_STRINGS_TYPE = (
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
)
"""The sample is held as Python values: fewer rows for a wide sheet keep that bounded."""
_BATCH_ROWS = 4096
_INT64 = 2**63
_MIDNIGHT = dt.time()
# What openpyxl raises reading a file that is no workbook, or a broken one.
_UNREADABLE = (
    zipfile.BadZipFile,
    zlib.error,
    ParseError,
    InvalidFileException,
    EOFError,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
)

Row = Sequence[Any]


class _Kinds:
    """The kinds of cell seen in each column (kind -> first value of it), and where
    the table's cells are: first and last non-empty column."""

    def __init__(self) -> None:
        self.columns: list[dict[str, Any]] = []
        self.first = self.last = -1

    def add(self, row: Row, header: bool = False) -> None:
        """Note the row's cells; a header's cells name columns but are no values."""
        for index, value in enumerate(row):
            if _empty(value):
                continue
            if index >= len(self.columns):
                self.columns.extend({} for _ in range(index + 1 - len(self.columns)))
            if not header:
                # Most cells are text: no need to ask what they are.
                kind = "text" if type(value) is str else _kind(value)
                self.columns[index].setdefault(kind, value)
            self.first = index if self.first < 0 else min(self.first, index)
            self.last = max(self.last, index)

    def of(self, index: int) -> dict[str, Any]:
        return self.columns[index] if index < len(self.columns) else {}

    def copy(self) -> _Kinds:
        copied = _Kinds()
        copied.columns = [dict(kinds) for kinds in self.columns]
        copied.first, copied.last = self.first, self.last
        return copied


class _Layout(msgspec.Struct):
    """The sheet columns ``first``..``first + len(columns) - 1`` and how each is written."""

    first: int
    columns: list[InferredColumn]

    def same_as(self, other: _Layout) -> bool:
        return self.first == other.first and [c.type for c in self.columns] == [
            c.type for c in other.columns
        ]


def convert_xlsx(
    source: Path, target: Path, request: ConvertRequest, sample_rows: int = SAMPLE_ROWS
) -> Converted:
    """Write the sheet ``request.sheet`` (the first by default) of the workbook
    ``source`` as Parquet to ``target`` (see the module docstring). Raises InvalidXLSX
    for a file that is no readable workbook, UnknownSheet, EmptySheet, and
    InvalidTypeOverride for an override naming no column or a cell that does not fit."""
    try:
        return _convert(source, target, request, sample_rows)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def _convert(source: Path, target: Path, request: ConvertRequest, sample_rows: int) -> Converted:
    _check_package(source, request.options)
    with _Sheet(source, request.sheet) as sheet:
        rows = sheet.rows()
        header = next(rows, None)
        if header is None:
            raise EmptySheet(f"the sheet {sheet.name!r} has no cell with a value")
        sample_rows = min(sample_rows, max(_SAMPLE_CELLS // max(len(header), 1), 1))
        sample = list(itertools.islice(rows, sample_rows))
        kinds = _Kinds()
        kinds.add(header, header=True)
        for row in sample:
            kinds.add(row)
        sampled = kinds.copy()
        layout = _layout(header, sampled, request)

        def still_fits() -> bool:
            return _layout(header, kinds, request).same_as(layout)

        later = _learning(rows, kinds)
        written = _write(target, layout, request, itertools.chain(sample, later), still_fits)
    if written is not None:
        return Converted(columns=layout.columns, rows=written)
    # A cell past the sample did not fit: ``kinds`` now knows every cell of the sheet.
    final = _layout(header, kinds, request)
    widened = _widened(final, kinds, sampled, layout, sample_rows)
    target.unlink(missing_ok=True)
    with _Sheet(source, request.sheet) as sheet:
        rows = sheet.rows()
        next(rows)
        written = _write(target, final, request, rows, None)
    assert written is not None  # nothing left to learn: the layout fits every cell
    return Converted(columns=final.columns, rows=written, widened=widened)


def _check_package(source: Path, options: ConvertOptions) -> None:
    """Refuse, before openpyxl reads any of it, a workbook that would take more memory
    than its size says: parts declaring more than ``max_decompressed_bytes`` in all (a zip
    bomb; zipfile never inflates a part past its declared size), a shared strings table
    over ``_MAX_SHARED_STRINGS_BYTES`` (openpyxl loads it whole), or a text longer than
    ``max_field_bytes`` (``_check_texts``)."""
    try:
        with zipfile.ZipFile(source) as archive:
            parts = archive.infolist()
            if sum(part.file_size for part in parts) > options.max_decompressed_bytes:
                raise _too_large(options.max_decompressed_bytes, "its parts")
            # By its usual name first, before anything is inflated; then (below) by the
            # content types, as openpyxl finds it.
            _check_shared_strings(parts, {_SHARED_STRINGS}, set())
            _check_texts(archive, options.max_field_bytes)
            names, extensions = _shared_strings_parts(archive)
            _check_shared_strings(parts, names, extensions)
    except _UnusualMarkup as exc:
        raise InvalidXLSX(
            f"the workbook part {exc.args[0]!r} holds a DTD, a comment, a CDATA section or "
            "a processing instruction, which Excel does not write (refused: a DTD's "
            "entities could expand without limit)"
        ) from None
    except _ZIP_ERRORS as exc:
        raise _invalid(exc) from None


def _too_large(limit: int, what: str) -> DecompressedTooLarge:
    return DecompressedTooLarge(
        f"the workbook would decompress to more than {limit} bytes ({what})",
        details={"max_decompressed_bytes": limit},
    )


def _check_texts(archive: zipfile.ZipFile, max_bytes: int) -> None:
    """Refuse a workbook with a text longer than ``max_bytes`` (CSV's largest field) in
    any of its XML: the XML parser and openpyxl hold a text whole, several times over (a
    200 MB cell grew memory by 2.2 GB). Excel itself caps a cell at 32,767 characters.
    Every part that is XML is scanned, whatever its name (openpyxl finds parts through
    the package's relationships and content types, not by name), UTF-16 ones as UTF-8.
    Markup Excel never writes is refused (``_UnusualMarkup``): a DTD (its entities could
    expand a short text into a long one), comments, CDATA sections and processing
    instructions (the parser joins the text around them, and tag-like text inside them
    would fool the scan). One streaming pass per part (``_text_longer_than``)."""
    for part in archive.infolist():
        with archive.open(part) as stream:
            encoding = _xml_encoding(stream.read(4))
        if encoding is None:
            continue  # the XML parser would refuse it at its first bytes
        with archive.open(part) as stream:
            readable = stream if encoding == "utf-8" else _AsUTF8(stream, encoding)
            too_long = _text_longer_than(readable, max_bytes)
        if too_long:
            raise FieldTooLarge(
                f"the workbook holds a text of more than {max_bytes} bytes "
                f"(in {part.filename}); the largest accepted is ingest.max_field_bytes",
                details={"part": part.filename, "max_field_bytes": max_bytes},
            )


# What reading a zip member can raise: encrypted (RuntimeError) or unsupported
# compression (NotImplementedError) among them.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    OSError,
    ValueError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    RuntimeError,
    NotImplementedError,
)
# Where a text ends for the parser and openpyxl: an element's start or end tag, except
# the tags of rich text, whose runs openpyxl joins into one cell value (t, r and a run's
# properties, phonetic runs). Comments, CDATA sections and processing instructions do
# not end a text either (the parser joins the text around them), and a raw ``>`` may
# stand in a text.
_RICH_TEXT_TAGS = (
    b"t|r|rPr|rFont|charset|family|b|i|strike|outline|shadow|condense|extend|color|sz|u|"
    b"vertAlign|scheme|rPh|phoneticPr"
)
_ELEMENT_TAG = re.compile(
    rb"<(?!/?(?:[A-Za-z_][\w.\-]*:)?(?:" + _RICH_TEXT_TAGS + rb")[\s/>])"
    rb"/?[A-Za-z_:][\w.\-:]*[\s/>]"
)
_UNFINISHED_TAG = re.compile(rb"</?[^\s/>]*")
_UNUSUAL_MARKUP = (b"<!", b"<?")
"""DTDs, comments, CDATA sections, processing instructions (the XML declaration at the
start of a part excepted)."""
_XML_DECLARATION = re.compile(rb"\A(?:\xef\xbb\xbf)?[ \t\r\n]*<\?xml[^<>]*\?>")


def _shared_strings_parts(archive: zipfile.ZipFile) -> tuple[set[str], set[str]]:
    """The part names and extensions the package's content types call shared strings,
    resolved as openpyxl does. Read after ``_check_texts`` (no DTD, no long text), so
    ``[Content_Types].xml`` is safe to parse."""
    try:
        types = ElementTree.fromstring(archive.read("[Content_Types].xml"))  # noqa: S314
    except (KeyError, ParseError):
        return set(), set()  # openpyxl refuses such a package, saying why
    names, extensions = set(), set()
    for entry in types:
        if entry.get("ContentType") == _SHARED_STRINGS_TYPE:
            names.add(entry.get("PartName", "").removeprefix("/").lower())
            extensions.add(entry.get("Extension", "").lower())
    return names, extensions - {""}


def _check_shared_strings(
    parts: list[zipfile.ZipInfo], names: set[str], extensions: set[str]
) -> None:
    """The shared strings table's cap, on the parts named (lower case) or of those
    extensions."""
    strings = sum(
        part.file_size
        for part in parts
        if part.filename.lower() in names or part.filename.rsplit(".", 1)[-1].lower() in extensions
    )
    if strings > _MAX_SHARED_STRINGS_BYTES:
        raise _too_large(_MAX_SHARED_STRINGS_BYTES, "its shared strings table")


class _UnusualMarkup(Exception):
    """A workbook part holds markup Excel does not write (``_UNUSUAL_MARKUP``)."""


def _xml_encoding(head: bytes) -> str | None:
    """The encoding a part's first bytes show it is XML in, or None: not XML."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"  # the decoder reads the byte-order mark
    if head.startswith(b"<\x00"):
        return "utf-16-le"
    if head.startswith(b"\x00<"):
        return "utf-16-be"
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")[:1]
    return "utf-8" if start in (b"<", b"") else None


class _AsUTF8:
    """A UTF-16 part read as UTF-8, for the scan."""

    def __init__(self, stream: IO[bytes], encoding: str) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder(encoding)("replace")
        self.name = getattr(stream, "name", "")

    def read(self, size: int) -> bytes:
        while True:
            raw = self._stream.read(size)
            text = self._decoder.decode(raw, final=not raw)
            if text or not raw:
                return text.encode("utf-8", "surrogatepass")


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


def _text_longer_than(stream: _Readable, max_bytes: int, chunk_bytes: int = 1 << 20) -> bool:
    """Whether the XML in ``stream`` has more than ``max_bytes`` bytes from one element
    tag that ends a text (``_ELEMENT_TAG``) to the next; the tags' own bytes count too,
    so a long attribute is found as well. Raises ``_UnusualMarkup``. Streamed in chunks of
    about half ``max_bytes``; a tag cut by a chunk's edge waits for the next chunk."""
    size = max(1, min(max_bytes // 2, chunk_bytes))
    run = 0  # bytes since the last text-ending tag began, carried across chunks
    held = b""  # a '<' whose name the chunk's edge cut: the next chunk tells its tag
    seen = b""  # the last byte looked at, for a marker cut by a chunk's edge
    first_chunk = True
    while chunk := stream.read(size):
        data, held = held + chunk, b""
        cut = data.rfind(b"<")
        if cut >= 0 and _UNFINISHED_TAG.fullmatch(data, cut):  # its name may go on
            data, held = data[:cut], data[cut:]
            if len(held) > max_bytes:
                return True  # a name that long: the text around it is longer still
        if first_chunk:  # the XML declaration is the one '<?' allowed
            declaration = _XML_DECLARATION.match(data)
            if declaration is not None:
                data = b" " * declaration.end() + data[declaration.end() :]
            first_chunk = False
        window = seen + data
        if any(marker in window for marker in _UNUSUAL_MARKUP):
            raise _UnusualMarkup(getattr(stream, "name", ""))
        seen = window[-1:]
        if len(data) > max_bytes:  # rare (a tiny limit, a long held tag): every tag
            tags = [match.start() for match in _ELEMENT_TAG.finditer(data)]
        else:  # a text between two tags of this chunk is shorter than the limit
            first = _ELEMENT_TAG.search(data)
            tags = [] if first is None else [first.start(), _last_tag(data)]
        if not tags:
            run += len(data)
        else:
            gaps = [b - a for a, b in itertools.pairwise([-run, *tags])]
            if max(gaps) > max_bytes:
                return True
            run = len(data) - tags[-1]
        if run > max_bytes:
            return True
    if any(marker in seen + held for marker in _UNUSUAL_MARKUP):
        raise _UnusualMarkup(getattr(stream, "name", ""))
    return run + len(held) > max_bytes


def _last_tag(data: bytes) -> int:
    """Where the last element tag in ``data`` (which holds one) begins."""
    at = data.rfind(b"<")
    for _ in range(64):  # in a workbook's XML the last '<' is almost always a tag's
        if _ELEMENT_TAG.match(data, at):
            return at
        at = data.rfind(b"<", 0, at)
    return [match.start() for match in _ELEMENT_TAG.finditer(data)][-1]


class _Sheet:
    """The non-empty rows of one sheet of the workbook, read row by row; InvalidXLSX
    for a file openpyxl cannot read, when opened or while read."""

    def __init__(self, source: Path, sheet: str | None) -> None:
        self.source = source
        self.wanted = sheet
        self.name = ""
        self.file: IO[bytes] | None = None
        self.workbook: Any = None
        self.worksheet: Any = None

    def __enter__(self) -> _Sheet:
        try:
            self._open()
        except BaseException:
            self.__exit__(None, None, None)  # not called when __enter__ raises
            raise
        return self

    def _open(self) -> None:
        # A file object: openpyxl would refuse a path whose name does not end in .xlsx.
        self.file = self.source.open("rb")
        try:
            self.workbook = openpyxl.load_workbook(self.file, read_only=True, data_only=True)
        except _UNREADABLE as exc:
            raise _invalid(exc) from None
        names = list(self.workbook.sheetnames)
        if not names:
            raise InvalidXLSX("the workbook has no sheet")
        self.name = names[0] if self.wanted is None else self.wanted
        if self.name not in names:
            raise UnknownSheet(
                f"the workbook has no sheet {self.wanted!r}; its sheets: {', '.join(names)}",
                details={"sheet": self.wanted, "sheets": names},
            )
        self.worksheet = worksheet = self.workbook[self.name]
        if not hasattr(worksheet, "reset_dimensions"):  # a chart sheet holds no cells
            raise UnknownSheet(
                f"the sheet {self.name!r} is a chart, not a worksheet",
                details={"sheet": self.name, "sheets": names},
            )
        # The dimensions a file declares can be wrong; read the cells each row has.
        worksheet.reset_dimensions()

    def rows(self) -> Iterator[Row]:
        try:
            for row in self.worksheet.iter_rows(values_only=True):
                if not all(_empty(value) for value in row):
                    yield row
        except _UNREADABLE as exc:
            raise _invalid(exc) from None

    def __exit__(self, *exc_info: object) -> None:
        if self.workbook is not None:
            self.workbook.close()
        if self.file is not None:
            self.file.close()


def _invalid(exc: BaseException) -> InvalidXLSX:
    """The 400 for a file openpyxl could not read, saying why without local paths."""
    if isinstance(exc, zipfile.BadZipFile | zlib.error | EOFError):
        problem = "it is not a complete zip archive (a renamed file of another kind, or cut short)"
    elif isinstance(exc, KeyError | InvalidFileException):
        problem = "it is a zip archive but holds no Excel workbook"
    elif isinstance(exc, ParseError):
        problem = "a part of the workbook is not well-formed XML"
    else:
        problem = "a part of the workbook cannot be read"
    return InvalidXLSX(
        f"the upload is not a readable .xlsx workbook: {problem}",
        details={"reason": type(exc).__name__},
    )


def _learning(rows: Iterator[Row], kinds: _Kinds) -> Iterator[Row]:
    for row in rows:
        kinds.add(row)
        yield row


def _write(
    target: Path,
    layout: _Layout,
    request: ConvertRequest,
    rows: Iterator[Row],
    still_fits: Callable[[], bool] | None,
) -> int | None:
    """Write ``rows`` with ``layout``: the rows written, or None once ``still_fits``
    says a cell read does not fit the layout (the file is then incomplete, and the
    rows are read on to the end)."""
    options: ConvertOptions = request.options
    schema = pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in layout.columns])
    fits = True
    written = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    with _BackgroundWriter(target, schema, options) as writer:
        while batch := list(itertools.islice(rows, _BATCH_ROWS)):
            if fits and still_fits is not None and not still_fits():
                fits = False
                writer.cancel()
            if not fits:
                continue  # only learning the kinds from here on
            pending.append(_record_batch(batch, layout, schema, written + pending_rows))
            pending_rows += len(batch)
            if pending_rows >= options.row_group_rows:
                writer.write(pa.Table.from_batches(pending, schema=schema))
                written += pending_rows
                pending, pending_rows = [], 0
            if request.progress is not None:
                request.progress(written + pending_rows)
        if fits and pending_rows:
            writer.write(pa.Table.from_batches(pending, schema=schema))
            written += pending_rows
    return written if fits else None


def _record_batch(
    rows: list[Row], layout: _Layout, schema: pa.Schema, offset: int
) -> pa.RecordBatch:
    """The rows' cells of the layout's columns, each converted to its column's type."""
    arrays = []
    for position, column in enumerate(layout.columns):
        index = layout.first + position
        convert = _CONVERTERS[column.type]
        values: list[object] = []
        for number, row in enumerate(rows):
            value = row[index] if index < len(row) else None
            if _empty(value):
                values.append(None)
                continue
            try:
                values.append(convert(value))
            except (ValueError, TypeError, ArithmeticError) as exc:
                # Only an override can meet a cell that does not fit: inferred types fit all.
                raise InvalidTypeOverride(
                    f"column {column.name!r} cannot be read as {column.type}: "
                    f"{_text(value)!r} in data row {offset + number + 1}",
                    details={"column": column.name, "row": offset + number + 1},
                ) from exc
        arrays.append(pa.array(values, type=ARROW_TYPES[column.type]))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _layout(header: Row, kinds: _Kinds, request: ConvertRequest) -> _Layout:
    """The columns for the cells ``kinds`` has seen, named from ``header``, typed, with
    the ``?types=`` overrides and, on append, the dataset's wider types applied."""
    first, last = max(kinds.first, 0), max(kinds.last, 0)
    names = normalise_header(
        "" if i >= len(header) or _empty(header[i]) else _text(header[i])
        for i in range(first, last + 1)
    )
    columns = [_column(name, kinds.of(first + i)) for i, name in enumerate(names)]
    _apply_overrides(columns, request.overrides)
    wider = conforming_overrides(columns, request.dataset_types)
    for column in columns:
        if column.name in wider:
            column.type = wider[column.name]
            column.source = "dataset"
            column.reason = "the dataset has this type"
            column.risk = None
    return _Layout(first=first, columns=columns)


def _widened(
    final: _Layout, kinds: _Kinds, sampled: _Kinds, layout: _Layout, sample_rows: int
) -> list[WidenedColumn]:
    """The columns the sample typed otherwise, with the cells that changed them; their
    typing in ``final`` is updated to say so. A column the sample saw no cell of is
    typed from the cells found later, which is no widening."""
    before = {layout.first + i: c.type for i, c in enumerate(layout.columns)}
    widened = []
    for position, column in enumerate(final.columns):
        index = final.first + position
        inferred = before.get(index)
        seen = sampled.of(index)
        if inferred is None or inferred == column.type or not seen:
            continue
        if column.source not in ("inferred", "dataset"):
            continue
        later = {k: v for k, v in kinds.of(index).items() if k not in seen}
        reason = (
            f"past the first {sample_rows} rows the column holds "
            + ", ".join(f"{_text(v)!r} ({k})" for k, v in later.items())
            + f": {column.type}, not {inferred}"
        )
        widened.append(WidenedColumn(name=column.name, inferred=inferred, reason=reason))
        column.source, column.reason, column.risk = "widened", reason, "widened"
    return widened


def _column(name: str, kinds: dict[str, Any]) -> InferredColumn:
    """A column's type from the kinds of its cells (the header's excluded)."""
    found = set(kinds)
    for kind_set, type_name in _TYPES:
        if found and found <= kind_set:
            return InferredColumn(name=name, type=type_name)
    if not found:
        return InferredColumn(
            name=name, type=VARCHAR, reason="no cell has a value", risk="defaulted"
        )
    if found == {"text"}:
        return InferredColumn(name=name, type=VARCHAR)
    examples = ", ".join(f"{_text(kinds[k])!r} ({k})" for k in sorted(found))
    return InferredColumn(
        name=name, type=VARCHAR, reason=f"cells of several kinds: {examples}", risk="mixed"
    )


# Kinds of cell -> the type that holds them all, narrowest first.
_TYPES: list[tuple[frozenset[str], str]] = [
    (frozenset({"boolean"}), BOOLEAN),
    (frozenset({"integer"}), BIGINT),
    (frozenset({"integer", "number"}), DOUBLE),
    (frozenset({"date"}), DATE),
    (frozenset({"date", "timestamp"}), TIMESTAMP),
]


def _empty(value: object) -> bool:
    return value is None or value == ""


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer" if -_INT64 <= value < _INT64 else "number"
    if isinstance(value, float):
        return "integer" if value.is_integer() and -_INT64 <= value < _INT64 else "number"
    if isinstance(value, dt.datetime):
        return "date" if value.time() == _MIDNIGHT else "timestamp"
    if isinstance(value, dt.date):
        return "date"
    return "text"  # strings, error values (#N/A), times of day, durations


def _text(value: object) -> str:
    """A cell as text, for a VARCHAR column (and header names)."""
    kind = _kind(value)
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "integer":
        return str(int(value))  # type: ignore[call-overload]
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if kind == "date" else value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _integer(value: object) -> int:
    if isinstance(value, str):
        return int(value.strip())
    if not isinstance(value, int | float) or _kind(value) != "integer":
        raise ValueError("not a whole number")
    return int(value)


def _double(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError("not a number")
    return float(value)


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if value in TRUE_VALUES or value in FALSE_VALUES:
        return value in TRUE_VALUES
    raise ValueError("not a boolean")


def _timestamp(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, _MIDNIGHT)
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value.strip())
    raise TypeError("not a date")


def _date(value: object) -> dt.date:
    stamp = _timestamp(value)
    if stamp.time() != _MIDNIGHT or stamp.tzinfo is not None:
        raise ValueError("has a time of day")
    return stamp.date()


def _timestamptz(value: object) -> dt.datetime:
    stamp = _timestamp(value)
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.UTC)


_CONVERTERS: dict[str, Callable[[Any], object]] = {
    VARCHAR: _text,
    BIGINT: _integer,
    DOUBLE: _double,
    BOOLEAN: _boolean,
    DATE: _date,
    TIMESTAMP: _timestamp,
    TIMESTAMPTZ: _timestamptz,
    DECIMAL: lambda value: decimal.Decimal(_integer(value)),
}
