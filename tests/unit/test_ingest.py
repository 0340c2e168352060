"""Ingest units, no backend: header normalisation, dialect detection, type inference,
type overrides, and widening during conversion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lakehouse.ingest.errors import InvalidTypeOverride
from lakehouse.ingest.schema import (
    BIGINT,
    BOOLEAN,
    DATE,
    DECIMAL,
    DOUBLE,
    TIMESTAMP,
    VARCHAR,
    detect_delimiter,
    infer_layout,
    normalise_header,
    parse_type_overrides,
)


def test_header_names_are_normalised() -> None:
    assert normalise_header(["id", "", "Name", "name", "select", " ", "name_2", "NAME"]) == [
        "id", "column_2", "Name", "name_2", "select", "column_6", "name_2_2", "NAME_3",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('a,b,c\n1,"x;y",3\n', ","),
        ('a;b;c\n1;"x,y";3\n2;4,5;6\n', ";"),
        ("a\tb\n1,5\t2\n", "\t"),
        ("a|b|c\n1|2|3\n", "|"),
        ("only\n1\n", ","),
    ],
)
def test_delimiter_detection(text: str, expected: str) -> None:
    assert detect_delimiter(text) == expected


def _infer(tmp_path: Path, text: str, sample_rows: int = 10_000) -> dict[str, tuple[str, Any]]:
    path = tmp_path / "x.csv"
    path.write_text(text, encoding="utf-8")
    layout = infer_layout(path, sample_rows, {})
    return {c.name: (c.type, c.reason) for c in layout.columns}


def test_inferred_types(tmp_path: Path) -> None:
    big = "123456789012345678901234567890"
    huge = "1" * 39
    text = (
        "i,f,b,d,ts,zip,big,huge,dmix,txt,empty\n"
        f"1,1.5,true,2024-01-31,2024-01-31 10:00:00,01234,{big},{huge},2024-01-31,x,\n"
        f"-2,3,FALSE,2024-02-01,2024-02-01T11:30:00.5,60601,-5,1,03/04/2024,y,\n"
    )
    types = _infer(tmp_path, text)
    assert {k: v[0] for k, v in types.items()} == {
        "i": BIGINT, "f": DOUBLE, "b": BOOLEAN, "d": DATE, "ts": TIMESTAMP, "zip": VARCHAR,
        "big": DECIMAL, "huge": VARCHAR, "dmix": VARCHAR, "txt": VARCHAR, "empty": VARCHAR,
    }  # fmt: skip
    assert "leading zeros" in types["zip"][1]
    assert "38 digits" in types["huge"][1]
    assert "03/04/2024" in types["dmix"][1]
    assert types["txt"][1] is None  # plain text is not "defaulted"
    assert types["empty"][1] is not None


def test_type_override_syntax() -> None:
    # Spaces around names and types are not part of them.
    assert parse_type_overrides("zip:int, when : timestamp ,a:b:string") == {
        "zip": BIGINT, "when": TIMESTAMP, "a:b": VARCHAR,
    }  # fmt: skip
    with pytest.raises(InvalidTypeOverride):
        parse_type_overrides("zip:uuid")
    with pytest.raises(InvalidTypeOverride):
        parse_type_overrides("zip")
    # Commas inside parentheses belong to the type.
    assert parse_type_overrides("a:decimal(38,0),b:int") == {"a": DECIMAL, "b": BIGINT}
    assert parse_type_overrides("a:decimal(38, 0)") == {"a": DECIMAL}
    with pytest.raises(InvalidTypeOverride, match="more than one"):
        parse_type_overrides("zip:int,ZIP:string")


def test_all_widened_numeric_columns_are_found_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three numeric columns failing past the sample: one pass finds them all,
    a second writes the file (not one pass per column); a date column
    failing too is widened as well."""
    import pyarrow.csv as pa_csv

    from lakehouse.ingest import convert

    header = "a,b,c,d,e"
    rows = [f"{i},{i}.5,{i},{i},2024-01-01" for i in range(300)]
    rows[150] = "x,150.5,150,150,2024-01-01"
    rows[200] = "200,y,200,200,2024-01-01"
    rows[250] = "250,250.5,007,250,2024-01-01"
    source = tmp_path / "x.csv"
    source.write_text("\n".join([header, *rows]) + "\n")
    opened: list[object] = []
    real_open = pa_csv.open_csv

    def counting_open(*args: Any, **kwargs: Any) -> Any:
        opened.append(args[0])
        return real_open(*args, **kwargs)

    monkeypatch.setattr(pa_csv, "open_csv", counting_open)
    options = convert.ConvertOptions(block_size=1024)  # several batches
    layout = infer_layout(source, 100, {})
    result = convert.convert_csv(source, layout, tmp_path / "x.parquet", options)
    assert [w.name for w in result.widened] == ["a", "b", "c"]
    assert "'007'" in result.widened[2].reason
    assert [c.type for c in layout.columns] == [VARCHAR, VARCHAR, VARCHAR, BIGINT, DATE]
    assert len(opened) == 2
    assert result.rows == 300

    rows[100] = "100,100.5,100,100,someday"
    source.write_text("\n".join([header, *rows]) + "\n")
    layout = infer_layout(source, 100, {})
    result = convert.convert_csv(source, layout, tmp_path / "x.parquet", options)
    assert sorted(w.name for w in result.widened) == ["a", "b", "c", "e"]
    assert [c.type for c in layout.columns][4] == VARCHAR
    assert result.rows == 300


def test_the_read_ahead_waits_for_the_consumer_until_the_file_is_closed(tmp_path: Path) -> None:
    """pyarrow's reader would read 32 blocks ahead: a read waits while ``ahead`` blocks
    are unconsumed, however long the consumer takes, and closing the file frees it."""
    import threading

    from lakehouse.ingest import convert

    source = tmp_path / "x.csv"
    source.write_bytes(b"x" * 100)
    stream = convert._ProbedFile(source, b"", ahead=2)
    returned: list[bytes | Exception] = []

    def read_four() -> None:
        for _ in range(4):
            try:
                returned.append(stream.read(10))
            except ValueError as exc:  # read after close
                returned.append(exc)

    reader = threading.Thread(target=read_four, daemon=True)
    reader.start()
    reader.join(0.5)
    assert reader.is_alive()  # a slow consumer (a row group being encoded) holds it
    assert len(returned) == 2  # two blocks read, the third waiting
    stream.consumed()
    reader.join(0.5)
    assert len(returned) == 3  # one consumed: one more read, the fourth waiting
    assert reader.is_alive()
    stream.close()  # the pass ended without consuming the rest: the read is let go
    reader.join(10)
    assert not reader.is_alive()
    assert len(returned) == 4  # data or, the file being closed, a ValueError


@pytest.mark.parametrize(
    ("data", "rows"),
    [(b"a,b\n", 0), (b"a,b", 0), (b"a,b\n1,x\n", 1), (b'a,b\n1,"two\nlines"', 1)],
    ids=["header-only", "header-without-newline", "one-row", "quoted-newline-no-eol"],
)
def test_tiny_files_convert_with_large_blocks(tmp_path: Path, data: bytes, rows: int) -> None:
    """With blocks over 1 MiB reads wait for the consumer: tiny files still end."""
    from lakehouse.ingest import convert

    source = tmp_path / "x.csv"
    source.write_bytes(data)
    layout = infer_layout(source, 100, {})
    options = convert.ConvertOptions(block_size=4 * 1024 * 1024)
    result = convert.convert_csv(source, layout, tmp_path / "x.parquet", options)
    assert result.rows == rows
