"""The xlsx converter on real workbooks written by xlsxwriter, no backend: types from the
cells, header names, formulas, empty cells, sheets, widening, overrides, append types and
files that are no workbook. (Through the server on both backends:
tests/integration/test_ingest_xlsx.py.)"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import itertools
import zipfile
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.strategies as st
import pyarrow.parquet as pq
import pytest

from lakehouse.ingest import xlsx_convert
from lakehouse.ingest.convert import ConvertOptions
from lakehouse.ingest.errors import (
    DecompressedTooLarge,
    EmptySheet,
    FieldTooLarge,
    InvalidTypeOverride,
    InvalidXLSX,
    UnknownSheet,
)
from lakehouse.ingest.formats import Converted, ConvertRequest
from lakehouse.ingest.xlsx_convert import (
    _ELEMENT_TAG,
    _text_longer_than,
    _UnusualMarkup,
    convert_xlsx,
)
from tests.support.xlsx import (
    Blank,
    Formula,
    Merged,
    Sheets,
    rewritten,
    write_xlsx,
    xlsx_bytes,
)

JAN_2 = dt.datetime(2024, 1, 2)
JAN_3_0506 = dt.datetime(2024, 1, 3, 5, 6)


def convert(
    tmp_path: Path, sheets: Sheets, sample_rows: int = 10_000, **request: Any
) -> tuple[Converted, list[dict[str, Any]]]:
    source = write_xlsx(tmp_path / "upload", sheets)
    target = tmp_path / "out.parquet"
    converted = convert_xlsx(
        source, target, ConvertRequest(options=ConvertOptions(), **request), sample_rows
    )
    return converted, pq.read_table(target).to_pylist()


def types(converted: Converted) -> dict[str, str]:
    return {c.name: c.type for c in converted.columns}


def test_cells_are_typed_by_their_kind_and_text_stays_text(tmp_path: Path) -> None:
    converted, rows = convert(
        tmp_path,
        {
            "people": [
                ["id", "rate", "hired", "seen", "active", "zip", "name"],
                [1, 2.5, JAN_2, JAN_2, True, "01234", "Ann"],
                [1e16, 3, dt.datetime(2024, 2, 29), JAN_3_0506, False, "60601", "Bo"],
            ]
        },
    )
    assert types(converted) == {
        "id": "BIGINT",  # whole numbers are integers, 1e16 (stored as "1E+16") too
        "rate": "DOUBLE",
        "hired": "DATE",  # every value at midnight
        "seen": "TIMESTAMP",
        "active": "BOOLEAN",
        "zip": "VARCHAR",  # text cells that look like numbers stay text
        "name": "VARCHAR",
    }
    assert rows == [
        {"id": 1, "rate": 2.5, "hired": JAN_2.date(), "seen": JAN_2, "active": True,
         "zip": "01234", "name": "Ann"},
        {"id": 10**16, "rate": 3.0, "hired": dt.date(2024, 2, 29), "seen": JAN_3_0506,
         "active": False, "zip": "60601", "name": "Bo"},
    ]  # fmt: skip
    assert converted.rows == 2
    assert converted.widened == []
    assert all(c.source == "inferred" and c.reason is None for c in converted.columns)


def test_formulas_are_read_as_their_cached_values(tmp_path: Path) -> None:
    converted, rows = convert(
        tmp_path,
        {
            "s": [
                ["a", "double", "label"],
                [2, Formula("=A2*2", 4), Formula('="x"&A2', "x2")],
                [3, Formula("=A3*2", 6), Formula('="x"&A3', "x3")],
            ]
        },
    )
    assert types(converted) == {"a": "BIGINT", "double": "BIGINT", "label": "VARCHAR"}
    assert rows == [
        {"a": 2, "double": 4, "label": "x2"},
        {"a": 3, "double": 6, "label": "x3"},
    ]


def test_merged_empty_and_duplicate_header_cells_are_named_as_csv_names_them(
    tmp_path: Path,
) -> None:
    converted, rows = convert(
        tmp_path,
        {"s": [[Merged("period", 2), None, "id", "ID", 2024], [1, 2, None, 3, 4, 5, 6]]},
    )
    # The merged cell's value is in its first column; the second is empty, as is the
    # third; a data cell right of the header gets a column too.
    assert [c.name for c in converted.columns] == [
        "period", "column_2", "column_3", "id", "ID_2", "2024", "column_7",
    ]  # fmt: skip
    assert list(rows[0].values()) == [1, 2, None, 3, 4, 5, 6]


def test_empty_cells_are_null_and_empty_rows_and_columns_around_the_table_are_ignored(
    tmp_path: Path,
) -> None:
    # The table starts at B3; formatted blank cells after it (as Excel leaves them).
    converted, rows = convert(
        tmp_path,
        {
            "s": [
                [],
                [None, None, Blank()],
                [None, "a", "b", Blank()],
                [None, 1, None],
                [],  # a blank row inside the table is skipped, as CSV's blank lines are
                [None, None, "x", Blank()],
                [None, Blank(), Blank(), Blank()],
                [Blank()],
            ]
        },
    )
    assert types(converted) == {"a": "BIGINT", "b": "VARCHAR"}
    assert rows == [{"a": 1, "b": None}, {"a": None, "b": "x"}]
    assert converted.rows == 2


def test_a_column_mixing_kinds_is_text_and_reported(tmp_path: Path) -> None:
    converted, rows = convert(
        tmp_path,
        {"s": [["mix", "n"], [5, 1], ["five", None], [True, None], [JAN_2, None], [2.5, None]]},
    )
    mix, n = converted.columns
    assert (mix.type, mix.source, mix.risk) == ("VARCHAR", "inferred", "mixed")
    assert mix.reason is not None
    assert "'five' (text)" in mix.reason
    assert "'5' (integer)" in mix.reason
    assert [r["mix"] for r in rows] == ["5", "five", "true", "2024-01-02", "2.5"]
    assert (n.type, n.reason) == ("BIGINT", None)


def test_a_cell_past_the_sample_that_does_not_fit_widens_its_column(tmp_path: Path) -> None:
    sheet = [
        ["n", "d", "code", "zip"],
        [1, JAN_2, 7, "01234"],
        [2, JAN_2, 8, "02134"],
        [2.5, JAN_3_0506, "A-9", 60601],
    ]
    converted, rows = convert(tmp_path, {"s": sheet}, sample_rows=2)
    assert types(converted) == {
        "n": "DOUBLE",
        "d": "TIMESTAMP",
        "code": "VARCHAR",
        "zip": "VARCHAR",
    }
    widened = {w.name: w for w in converted.widened}
    assert sorted(widened) == ["code", "d", "n"]
    assert (widened["n"].inferred, widened["d"].inferred) == ("BIGINT", "DATE")
    assert "'A-9' (text)" in widened["code"].reason
    by_name = {c.name: c for c in converted.columns}
    assert (by_name["code"].source, by_name["code"].risk) == ("widened", "widened")
    # The file was written again with the wider types: rows before the cell too.
    assert rows == [
        {"n": 1.0, "d": JAN_2, "code": "7", "zip": "01234"},
        {"n": 2.0, "d": JAN_2, "code": "8", "zip": "02134"},
        {"n": 2.5, "d": JAN_3_0506, "code": "A-9", "zip": "60601"},
    ]
    # With the whole sheet in the sample nothing is widened: the same types, reported mixed.
    converted, _ = convert(tmp_path, {"s": sheet})
    assert converted.widened == []
    assert types(converted)["code"] == "VARCHAR"


def test_sheets_first_by_default_or_by_name(tmp_path: Path) -> None:
    sheets: Sheets = {"one": [["a"], [1]], "two": [["b"], ["x"]], "empty": []}
    assert convert(tmp_path, sheets)[1] == [{"a": 1}]
    assert convert(tmp_path, sheets, sheet="two")[1] == [{"b": "x"}]
    with pytest.raises(UnknownSheet) as unknown:
        convert(tmp_path, sheets, sheet="three")
    assert unknown.value.details == {"sheet": "three", "sheets": ["one", "two", "empty"]}
    assert "one, two, empty" in str(unknown.value)
    with pytest.raises(EmptySheet):
        convert(tmp_path, sheets, sheet="empty")
    assert not (tmp_path / "out.parquet").exists()


def test_type_overrides_apply_and_a_cell_that_does_not_fit_is_a_400(tmp_path: Path) -> None:
    sheet = [["zip", "n", "when"], [60601, "12", JAN_2], [1234, "13", JAN_3_0506]]
    converted, rows = convert(
        tmp_path, {"s": [sheet[0], *sheet[1:]]}, overrides={"ZIP": "VARCHAR", "n": "BIGINT"}
    )
    assert types(converted) == {"zip": "VARCHAR", "n": "BIGINT", "when": "TIMESTAMP"}
    assert [c.source for c in converted.columns] == ["override", "override", "inferred"]
    assert rows[1] == {"zip": "1234", "n": 13, "when": JAN_3_0506}

    with pytest.raises(InvalidTypeOverride, match="'when' cannot be read as DATE"):
        convert(tmp_path, {"s": sheet}, overrides={"when": "DATE"})
    with pytest.raises(InvalidTypeOverride, match="names no column"):
        convert(tmp_path, {"s": sheet}, overrides={"nope": "BIGINT"})
    assert not (tmp_path / "out.parquet").exists()


def test_a_cell_that_does_not_fit_its_override_is_named_by_its_data_row(tmp_path: Path) -> None:
    rows: list[list[Any]] = [["n"], *([i] for i in range(1, 6000))]
    rows[4500] = ["n/a"]  # past the first batch of rows converted
    with pytest.raises(InvalidTypeOverride, match="'n/a' in data row 4500") as error:
        convert(tmp_path, {"s": rows}, overrides={"n": "BIGINT"})
    assert error.value.details == {"column": "n", "row": 4500}


def test_on_append_columns_take_the_datasets_wider_type(tmp_path: Path) -> None:
    converted, rows = convert(
        tmp_path,
        {"s": [["amount", "zip", "day"], [3, 60601, JAN_2]]},
        dataset_types={"amount": "DOUBLE", "zip": "VARCHAR", "day": "TIMESTAMP"},
    )
    assert types(converted) == {"amount": "DOUBLE", "zip": "VARCHAR", "day": "TIMESTAMP"}
    assert {c.source for c in converted.columns} == {"dataset"}
    assert rows == [{"amount": 3.0, "zip": "60601", "day": JAN_2}]


def test_progress_is_told_the_rows_converted(tmp_path: Path) -> None:
    seen: list[int] = []
    convert(tmp_path, {"s": [["a"], *([i] for i in range(5000))]}, progress=seen.append)
    assert seen
    assert seen == sorted(seen)
    assert seen[-1] == 5000


def _zip_without_workbook() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "no workbook here")
    return buffer.getvalue()


def _sheet_data_corrupted() -> bytes:
    """A workbook whose sheet's compressed bytes are damaged half-way: it opens, and
    fails while its rows are read."""
    data = bytearray(xlsx_bytes({"s": [["a"], *([f"row {i}"] for i in range(3000))]}))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        sheet = archive.getinfo("xl/worksheets/sheet1.xml")
    middle = sheet.header_offset + 30 + len(sheet.filename) + sheet.compress_size // 2
    data[middle : middle + 64] = bytes(64)
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"id,name\n1,Ann\n", "not a complete zip archive"),
        (_zip_without_workbook(), "holds no Excel workbook"),
        (xlsx_bytes({"s": [["a"], *([i] for i in range(2000))]})[:-200], "zip archive"),
        (_sheet_data_corrupted(), "not a readable .xlsx workbook"),
    ],
    ids=["renamed_csv", "zip_without_workbook", "truncated", "corrupted_sheet"],
)
def test_a_file_that_is_no_workbook_is_invalid_xlsx(
    tmp_path: Path, data: bytes, problem: str
) -> None:
    source = tmp_path / "spool-upload.csv"
    source.write_bytes(data)
    target = tmp_path / "out.parquet"
    with pytest.raises(InvalidXLSX, match=problem) as error:
        convert_xlsx(source, target, ConvertRequest(options=ConvertOptions()))
    assert error.value.status_code == 400
    assert str(tmp_path) not in str(error.value)
    assert not target.exists()


def test_a_shared_strings_table_too_large_for_memory_is_refused_unread(tmp_path: Path) -> None:
    # openpyxl loads the shared strings whole: past 256 MiB declared, a 413 before reading.
    workbook = tmp_path / "big.xlsx"
    original = zipfile.ZipFile(io.BytesIO(xlsx_bytes({"s": [["a"], ["x"]]})))
    with zipfile.ZipFile(workbook, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for part_name in original.namelist():
            if part_name != "xl/sharedStrings.xml":
                archive.writestr(part_name, original.read(part_name))
        with archive.open("xl/sharedStrings.xml", "w", force_zip64=True) as part:
            chunk = bytes(16 * 1024 * 1024)
            for _ in range(17):
                part.write(chunk)
    with pytest.raises(DecompressedTooLarge, match="shared strings"):
        convert_xlsx(workbook, tmp_path / "out.parquet", ConvertRequest(options=ConvertOptions()))
    assert not (tmp_path / "out.parquet").exists()


PIECES = [
    *(b"<", b">", b"/", b"!", b"!--", b"-->", b"<!DOCTYPE", b" "),
    *(b"a", b"t", b"r", b"x:t", b"rPr", b"c", b"row"),  # tag names, rich text's among them
    *(b"x", b"xxxxxxx", b"y" * 20),
]


@hypothesis.given(
    pieces=st.lists(st.sampled_from(PIECES), max_size=40),
    limit=st.integers(min_value=1, max_value=60),
    chunk=st.integers(min_value=1, max_value=70),
)
def test_the_scan_before_openpyxl_finds_every_long_text_across_chunk_edges(
    pieces: list[bytes], limit: int, chunk: int
) -> None:
    """``_text_longer_than`` (the scan before openpyxl reads a workbook) reads chunks;
    it agrees with splitting the whole part at every tag that ends a text (not rich
    text's, whose runs openpyxl joins): a raw ``>``, a comment or a CDATA section does
    not end a text for the parser either, and a DTD is refused."""
    data = b"".join(pieces)
    if b"<!" in data or b"<?" in data:  # refused: as such, or for a long text before it
        with contextlib.suppress(_UnusualMarkup):
            assert _text_longer_than(io.BytesIO(data), limit, chunk)
        return
    tags = [m.start() for m in _ELEMENT_TAG.finditer(data)]
    bounds = [0, *tags, len(data)]
    expected = any(end - start > limit for start, end in itertools.pairwise(bounds))
    assert _text_longer_than(io.BytesIO(data), limit, chunk) == expected


@pytest.mark.parametrize(
    "xml",
    [
        b"<t>" + b"x>" * 600 + b"</t>",  # a raw '>' may stand in a text
        b'<c r="' + b"x" * 1000 + b'"/>',  # a long attribute
        # Rich text: openpyxl joins a cell's runs into one value.
        b"<si><r><t>"
        + b"x" * 400
        + b"</t></r><r><rPr><b/></rPr><t>"
        + b"x" * 400
        + b"</t></r></si>",
        b"<is><x:t>" + b"x" * 400 + b"</x:t><x:r><x:t>" + b"x" * 400 + b"</x:t></x:r></is>",
    ],
)
def test_texts_the_parser_joins_are_measured_whole(xml: bytes) -> None:
    for chunk in (7, 64, 1 << 20):
        assert _text_longer_than(io.BytesIO(xml), 700, chunk)
        assert not _text_longer_than(io.BytesIO(xml), 2000, chunk)


def test_a_part_declaring_a_dtd_is_refused_and_parts_are_found_by_content(
    tmp_path: Path,
) -> None:
    """Entities could expand a short text past any limit: a DTD is refused, wherever
    the part is in the zip and whatever it is called (openpyxl finds parts through the
    package's relationships, not by name). Binary parts are not XML: not scanned."""
    options = ConvertOptions(max_field_bytes=1000)
    source, target = tmp_path / "book.xlsx", tmp_path / "out.parquet"
    original = xlsx_bytes({"s": [["id"], [1]]})

    def with_extra(name: str, data: bytes) -> Path:
        source.write_bytes(rewritten(original, extra={name: data}))
        return source

    bomb = b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY e "xxxx">]><t>&e;&e;</t>'
    with pytest.raises(InvalidXLSX, match="holds a DTD"):
        convert_xlsx(with_extra("xl/strings.bin", bomb), target, _request(options))
    long_text = b"\xef\xbb\xbf  <t>" + b"x" * 2000 + b"</t>"
    with pytest.raises(FieldTooLarge) as refused:
        convert_xlsx(
            with_extra("xl/any.name", long_text), tmp_path / "o.parquet", _request(options)
        )
    assert refused.value.details == {"part": "xl/any.name", "max_field_bytes": 1000}
    image = b"\x89PNG\r\n\x1a\n" + b"\xff" * 5000  # 5,000 bytes with no '<': not XML
    converted = convert_xlsx(
        with_extra("xl/media/image1.png", image), tmp_path / "o.parquet", _request(options)
    )
    assert converted.rows == 1


def _request(options: ConvertOptions) -> ConvertRequest:
    return ConvertRequest(options=options)


def test_a_renamed_shared_strings_table_is_still_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """openpyxl finds the shared strings by content type, whatever the part's name, and
    loads the table whole: its cap follows the content types, not the usual name."""
    monkeypatch.setattr(xlsx_convert, "_MAX_SHARED_STRINGS_BYTES", 1000)
    strings = "".join(f"s{i:05d}" for i in range(300))  # 300 distinct strings
    original = xlsx_bytes(
        {"s": [["id", "name"], *([i, strings[i * 6 : i * 6 + 6]] for i in range(300))]}
    )
    source = tmp_path / "book.xlsx"

    def rename(name: str, data: bytes) -> tuple[str, bytes]:
        name = "xl/strings.bin" if name == "xl/sharedStrings.xml" else name
        return name, data.replace(b"sharedStrings.xml", b"strings.bin")

    source.write_bytes(rewritten(original, rename))
    assert "xl/sharedStrings.xml" not in zipfile.ZipFile(source).namelist()
    with pytest.raises(DecompressedTooLarge, match="shared strings"):
        convert_xlsx(source, tmp_path / "out.parquet", ConvertRequest(options=ConvertOptions()))
    monkeypatch.setattr(xlsx_convert, "_MAX_SHARED_STRINGS_BYTES", 256 * 1024 * 1024)
    converted = convert_xlsx(
        source, tmp_path / "out.parquet", ConvertRequest(options=ConvertOptions())
    )
    assert converted.rows == 300  # openpyxl did find the renamed table


def test_a_cell_joined_from_rich_text_runs_is_measured_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """openpyxl joins a shared string's rich text runs into one value: runs each under
    the limit, together over it, are refused; without the scan openpyxl would read it."""
    placeholder = b"RICH-TEXT-PLACEHOLDER"
    runs = b"<r><t>" + b"x" * 600 + b"</t></r><r><rPr><b/></rPr><t>" + b"y" * 600 + b"</t></r>"
    original = xlsx_bytes({"s": [["id", "note"], [1, placeholder.decode()]]})
    source = tmp_path / "book.xlsx"
    source.write_bytes(
        rewritten(
            original, lambda name, data: (name, data.replace(b"<t>" + placeholder + b"</t>", runs))
        )
    )
    options = ConvertOptions(max_field_bytes=1000)
    with pytest.raises(FieldTooLarge) as refused:
        convert_xlsx(source, tmp_path / "out.parquet", ConvertRequest(options=options))
    assert refused.value.details["part"] == "xl/sharedStrings.xml"
    monkeypatch.setattr(xlsx_convert, "_check_texts", lambda archive, limit: None)
    convert_xlsx(source, tmp_path / "out.parquet", ConvertRequest(options=options))
    [note] = pq.read_table(tmp_path / "out.parquet").column("note").to_pylist()
    assert note == "x" * 600 + "y" * 600  # one value of 1,200 characters


@pytest.mark.parametrize(
    "xml",
    [
        b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY e "x">]><t>&e;</t>',
        b"<t>" + b"x" * 40 + b"<!-- <a> -->" + b"x" * 40 + b"</t>",  # the parser joins them
        b"<t>" + b"x" * 40 + b"<![CDATA[<a>]]>" + b"x" * 40 + b"</t>",
        b'<?xml version="1.0"?><t>' + b"x" * 40 + b"<?x <a ?>" + b"x" * 40 + b"</t>",
    ],
)
def test_markup_excel_does_not_write_is_refused(xml: bytes) -> None:
    """Tag-like text inside a comment, CDATA or a processing instruction would end a
    text for the scan but not for the parser; a DTD's entities could expand a text."""
    for chunk in (3, 64, 1 << 20):
        with pytest.raises(_UnusualMarkup):
            _text_longer_than(io.BytesIO(xml), 1000, chunk)
    declared = b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<t>x</t>'
    assert not _text_longer_than(io.BytesIO(declared), 1000)  # the declaration is fine


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_part_is_scanned_as_utf8(tmp_path: Path, encoding: str) -> None:
    """UTF-16 parts (with a byte-order mark or without) are read as the parser reads
    them: a long text is found, a DTD is refused, a short text passes."""
    original = xlsx_bytes({"s": [["id"], [1]]})
    source = tmp_path / "book.xlsx"
    options = ConvertOptions(max_field_bytes=1000)

    def with_part(text: str) -> Path:
        source.write_bytes(rewritten(original, extra={"xl/wide.xml": text.encode(encoding)}))
        return source

    target = tmp_path / "out.parquet"
    with pytest.raises(FieldTooLarge):
        convert_xlsx(with_part("<t>" + "x" * 2000 + "</t>"), target, ConvertRequest(options))
    bomb = with_part('<!DOCTYPE t [<!ENTITY e "x">]><t>&e;</t>')
    with pytest.raises(InvalidXLSX, match="holds a DTD"):
        convert_xlsx(bomb, target, ConvertRequest(options))
    # U+413C is the bytes '<A' in UTF-16: no tag, once decoded.
    sneaky = "<t>" + ("\u413c " + "x" * 100) * 20 + "</t>"
    with pytest.raises(FieldTooLarge):
        convert_xlsx(with_part(sneaky), target, ConvertRequest(options))
    assert convert_xlsx(with_part("<t>short</t>"), target, ConvertRequest(options)).rows == 1
