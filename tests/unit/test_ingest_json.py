"""The NDJSON and JSON-array converters without a backend: types from the JSON values over
the whole file, nested values, widening, overrides, append conversions, bad input.
(Through a real server on both backends: tests/integration/test_ingest_json.py.)"""

from __future__ import annotations

import decimal
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from lakehouse.ingest.convert import ConvertOptions
from lakehouse.ingest.errors import (
    EmptyJSON,
    FieldTooLarge,
    InvalidJSON,
    InvalidTypeOverride,
    NotUTF8,
)
from lakehouse.ingest.formats import Converted, ConvertRequest
from lakehouse.ingest.json_convert import convert_json_array, convert_ndjson

CONVERTERS = {"ndjson": convert_ndjson, "json": convert_json_array}


def encode(records: list[Any], fmt: str) -> bytes:
    if fmt == "ndjson":
        return "".join(json.dumps(r) + "\n" for r in records).encode()
    return json.dumps(records, indent=1).encode()


def convert(
    tmp_path: Path, data: bytes, fmt: str = "ndjson", **request: Any
) -> tuple[Converted, list[dict[str, Any]]]:
    source, target = tmp_path / f"in.{fmt}", tmp_path / "out.parquet"
    source.write_bytes(data)
    options = request.pop("options", ConvertOptions())
    converted = CONVERTERS[fmt](source, target, ConvertRequest(options=options, **request))
    return converted, pq.read_table(target).to_pylist()


def types(converted: Converted) -> dict[str, str]:
    return {c.name: c.type for c in converted.columns}


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
def test_types_come_from_the_json_values(tmp_path: Path, fmt: str) -> None:
    big, huge = 2**70, 10**40
    records = [
        {"id": 1, "zip": "01234", "day": "2024-01-31", "rate": 9.5, "mixed_num": 1, "ok": True,
         "big": big, "huge": huge, "nothing": None, "": "e", "Name": "a"},
        {"id": 2, "zip": "60601", "day": "x", "rate": 3.25, "mixed_num": 2.5, "ok": False,
         "big": -5, "huge": 1, "nothing": None, "": None, "name": "b", "late": "z"},
        {"id": None},
    ]  # fmt: skip
    converted, rows = convert(tmp_path, encode(records, fmt), fmt)
    assert types(converted) == {
        "id": "BIGINT", "zip": "VARCHAR", "day": "VARCHAR", "rate": "DOUBLE",
        "mixed_num": "DOUBLE", "ok": "BOOLEAN", "big": "DECIMAL(38,0)", "huge": "VARCHAR",
        "nothing": "VARCHAR", "column_10": "VARCHAR", "Name": "VARCHAR", "name_2": "VARCHAR",
        "late": "VARCHAR",
    }  # fmt: skip
    assert list(rows[0]) == list(types(converted))  # columns in first-seen key order
    assert list(types(converted))[-2:] == ["name_2", "late"]
    assert converted.rows == 3
    assert converted.widened == []
    assert rows[0]["zip"] == "01234"  # a string stays a string: no leading zero lost
    assert rows[0]["big"] == decimal.Decimal(big)
    assert [r["huge"] for r in rows] == [str(huge), "1", None]  # digits kept as text
    assert [r["mixed_num"] for r in rows] == [1.0, 2.5, None]
    assert rows[2] == dict.fromkeys(types(converted), None) | {"id": None}  # missing keys
    assert rows[1]["late"] == "z"
    defaulted = {c.name: (c.reason, c.risk) for c in converted.columns if c.reason}
    assert set(defaulted) == {"huge", "nothing"}
    assert "38 digits" in defaulted["huge"][0]
    assert defaulted["nothing"] == ("the key only ever holds null", "defaulted")


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
def test_a_key_mixing_json_types_is_widened_to_json_text(tmp_path: Path, fmt: str) -> None:
    records = [
        {"v": 1, "obj": {"a": 1}, "nest": {"a": 1}, "exact": 0.5},
        {"v": "x", "obj": "plain", "nest": {"a": "one"}, "exact": 2**60 + 1},
        {"v": True, "obj": [1, {"b": None}], "nest": None},
    ]
    converted, rows = convert(tmp_path, encode(records, fmt), fmt)
    assert types(converted) == dict.fromkeys(["v", "obj", "nest", "exact"], "VARCHAR")
    widened = {w.name: w for w in converted.widened}
    assert set(widened) == {"v", "obj", "nest", "exact"}
    assert "number and string" in widened["v"].reason
    assert "inside, a" in widened["nest"].reason
    assert "2^53" in widened["exact"].reason
    assert {c.name: c.source for c in converted.columns} == dict.fromkeys(widened, "widened")
    # Strings as themselves, everything else as its JSON text.
    assert [r["v"] for r in rows] == ["1", "x", "true"]
    assert [r["obj"] for r in rows] == ['{"a":1}', "plain", '[1,{"b":null}]']
    assert [r["exact"] for r in rows] == ["0.5", str(2**60 + 1), None]


PAD = {"pad": "p" * 100}
FILLER = [PAD] * 30_000  # about 3.5 MB: the records around it are in different batches


def test_a_value_past_the_first_batch_widens_the_column(tmp_path: Path) -> None:
    """Types are decided over the whole file, read in batches of about 2 MiB: a string
    in the last batch widens a column of numbers, and an integer a DOUBLE would round
    (the first batch had fractions) widens its column in another pass."""
    first = {"n": 1, "f": 0.5} | PAD
    last = {"n": "N/A", "f": 2**60 + 1} | PAD
    converted, rows = convert(tmp_path, encode([first, *FILLER, last], "ndjson"))
    assert types(converted) == {"n": "VARCHAR", "f": "VARCHAR", "pad": "VARCHAR"}
    widened = {w.name: w for w in converted.widened}
    assert (widened["n"].inferred, widened["f"].inferred) == ("BIGINT", "DOUBLE")
    assert "number and string" in widened["n"].reason
    assert "does not fit" in widened["f"].reason
    assert (rows[0]["n"], rows[0]["f"]) == ("1", "0.5")
    assert (rows[-1]["n"], rows[-1]["f"]) == ("N/A", str(2**60 + 1))
    assert converted.rows == 30_002


def test_types_changed_by_a_later_batch_are_written_as_changed(tmp_path: Path) -> None:
    """The first batch's types are written while the file is read; a later batch that
    refines them (integers now with fractions, a new key) makes the file be written again
    with the final types, nothing rounded or dropped."""
    first = {"l": [1], "x": 1} | PAD
    last = {"l": [2.5], "x": 2.5, "late": 3} | PAD
    converted, rows = convert(tmp_path, encode([first, *FILLER, last], "ndjson"))
    assert types(converted) == {"l": "DOUBLE[]", "x": "DOUBLE", "pad": "VARCHAR", "late": "BIGINT"}
    assert converted.widened == []
    assert (rows[0]["l"], rows[0]["x"], rows[0]["late"]) == ([1.0], 1.0, None)
    assert (rows[-1]["l"], rows[-1]["x"], rows[-1]["late"]) == ([2.5], 2.5, 3)


def test_nested_objects_and_arrays_are_struct_and_list_columns(tmp_path: Path) -> None:
    records = [
        {"payload": {"user": {"id": 7, "my key": "x"}}, "tags": ["a", "b"], "pts": [[1, 2]]},
        {"payload": {"user": {"id": 8}, "n": 1.5}, "tags": [], "pts": None, "empty": {}},
        {"payload": {"Z": 1, "z": 2}, "tags": None},
    ]
    converted, _ = convert(tmp_path, encode(records, "ndjson"))
    assert types(converted) == {
        "payload": "VARCHAR",  # keys z and Z differ only in case: SQL cannot tell them apart
        "tags": "VARCHAR[]",
        "pts": "BIGINT[][]",
        "empty": "VARCHAR",  # objects without keys
    }
    records[2]["payload"] = {"z": 2}
    converted, _ = convert(tmp_path, encode(records, "ndjson"))
    assert types(converted)["payload"] == (
        'STRUCT("user" STRUCT(id BIGINT, "my key" VARCHAR), n DOUBLE, z BIGINT)'
    )
    # SQL reaches inside, as the query engine will once the catalog holds the types.
    sql = """
        SELECT payload.user.id, payload.user."my key", tags[1], pts[1][2],
               (SELECT count(*) FROM (SELECT unnest(tags))), empty->>'$'
        FROM read_parquet(?)
    """
    assert duckdb.execute(sql, [str(tmp_path / "out.parquet")]).fetchall() == [
        (7, "x", "a", 2, 2, None),
        (8, None, None, None, 0, "{}"),
        (None, None, None, None, 0, None),
    ]


def test_widened_objects_stay_reachable_with_json_functions(tmp_path: Path) -> None:
    records = [{"doc": {"a": {"b": 1}}}, {"doc": {"a": "text"}}]
    convert(tmp_path, encode(records, "json"), "json")
    sql = "SELECT doc->>'$.a.b', doc->>'$.a' FROM read_parquet(?)"
    assert duckdb.execute(sql, [str(tmp_path / "out.parquet")]).fetchall() == [
        ("1", '{"b":1}'),
        (None, "text"),
    ]


def test_type_overrides(tmp_path: Path) -> None:
    records = [
        {"zip": 60601, "amount": 12, "day": "2024-01-31", "flag": "true"},
        {"zip": "01234", "amount": "7", "day": None, "flag": False},
    ]
    data = encode(records, "ndjson")
    overrides = {"ZIP": "VARCHAR", "amount": "DECIMAL(38,0)", "day": "DATE", "flag": "BOOLEAN"}
    converted, rows = convert(tmp_path, data, overrides=overrides)
    assert types(converted) == {
        "zip": "VARCHAR", "amount": "DECIMAL(38,0)", "day": "DATE", "flag": "BOOLEAN",
    }  # fmt: skip
    assert {c.source for c in converted.columns} == {"override"}
    assert converted.widened == []  # zip mixed numbers and strings: the override decides
    assert [r["zip"] for r in rows] == ["60601", "01234"]
    assert [r["amount"] for r in rows] == [12, 7]
    assert str(rows[0]["day"]) == "2024-01-31"
    assert [r["flag"] for r in rows] == [True, False]

    records.append({"amount": 9.5})
    with pytest.raises(InvalidTypeOverride) as refused:
        convert(tmp_path, encode(records, "ndjson"), overrides={"amount": "DECIMAL(38,0)"})
    assert "'amount'" in refused.value.message
    assert "9.5" in refused.value.message
    assert not (tmp_path / "out.parquet").exists()
    with pytest.raises(InvalidTypeOverride, match="names no column: 'nope'"):
        convert(tmp_path, data, overrides={"nope": "BIGINT"})


def test_append_converts_to_the_datasets_wider_types(tmp_path: Path) -> None:
    records = [{"id": 1, "zip": 60601, "amount": 12, "big": 2**60 + 1, "name": "a"}]
    dataset_types = {"zip": "VARCHAR", "amount": "DOUBLE", "big": "DOUBLE", "id": "DECIMAL(38,0)"}
    converted, rows = convert(tmp_path, encode(records, "ndjson"), dataset_types=dataset_types)
    described = {c.name: (c.type, c.source) for c in converted.columns}
    assert described == {
        "id": ("DECIMAL(38,0)", "dataset"),
        "zip": ("VARCHAR", "dataset"),
        "amount": ("DOUBLE", "dataset"),
        "big": ("BIGINT", "inferred"),  # as DOUBLE it would lose digits: kept as it is
        "name": ("VARCHAR", "inferred"),
    }
    assert rows == [{"id": 1, "zip": "60601", "amount": 12.0, "big": 2**60 + 1, "name": "a"}]


def test_row_groups_compression_and_progress(tmp_path: Path) -> None:
    seen: list[int] = []
    records = [{"i": i} for i in range(5)]
    converted, rows = convert(
        tmp_path,
        encode(records, "json"),
        "json",
        options=ConvertOptions(row_group_rows=2, compression="gzip"),
        progress=seen.append,
    )
    assert rows == records
    metadata = pq.ParquetFile(tmp_path / "out.parquet").metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [2, 2, 1]
    assert metadata.row_group(0).column(0).compression == "GZIP"
    assert seen[-1] == converted.rows == 5


def test_blank_lines_a_bom_and_crlf_are_fine(tmp_path: Path) -> None:
    data = b'\xef\xbb\xbf{"a": 1}\r\n\r\n   \n{"a": 2}'
    _, rows = convert(tmp_path, data)
    assert rows == [{"a": 1}, {"a": 2}]
    _, rows = convert(tmp_path, b'\xef\xbb\xbf [ {"a": 1} , {"a": 2} ] \n', "json")
    assert rows == [{"a": 1}, {"a": 2}]


NDJSON_ERRORS = [
    (b'{"a": 1}\n{"a": 2,}\n', InvalidJSON, 2),
    (b'{"a": 1}\n\n{"a": 2} {"a": 3}\n', InvalidJSON, 3),
    (b'{"a": 1}\n[1, 2]\n', InvalidJSON, 2),
    (b'{"a": 1}\n"text"\n', InvalidJSON, 2),
    (b'{"a": 1}\n{"a": NaN}\n', InvalidJSON, 2),
    (b'{"a": 1}\n{"a": "\xff"}\n', NotUTF8, 2),
    (b'{"a": 1}\n{"a": "unterminated\n', InvalidJSON, 2),
]


@pytest.mark.parametrize(("data", "error", "line"), NDJSON_ERRORS)
def test_bad_ndjson_names_the_line(
    tmp_path: Path, data: bytes, error: type[Exception], line: int
) -> None:
    with pytest.raises(error) as raised:
        convert(tmp_path, data)
    assert raised.value.details["line"] == line  # type: ignore[attr-defined]
    assert f"line {line}" in raised.value.message  # type: ignore[attr-defined]
    assert not (tmp_path / "out.parquet").exists()


ARRAY_ERRORS = [
    (b'[{"a": 1}, {"a": 2,}]', InvalidJSON, 19),
    (b'[{"a": 1}, 5]', InvalidJSON, 11),
    (b'[{"a": 1}, {"a": 2}', InvalidJSON, 19),  # never closed
    (b'[{"a": 1}] x', InvalidJSON, 11),
    (b'  {"a": 1}', InvalidJSON, 2),
    (b"42", InvalidJSON, 0),
    (b'[{"a": "\xff"}]', NotUTF8, 8),
]


@pytest.mark.parametrize(("data", "error", "offset"), ARRAY_ERRORS)
def test_bad_json_array_names_the_byte_offset(
    tmp_path: Path, data: bytes, error: type[Exception], offset: int
) -> None:
    with pytest.raises(error) as raised:
        convert(tmp_path, data, "json")
    assert raised.value.details["byte_offset"] == offset  # type: ignore[attr-defined]
    assert not (tmp_path / "out.parquet").exists()


def test_an_error_deep_in_a_large_array_is_found(tmp_path: Path) -> None:
    good = encode([{"n": i, "s": "x" * 50} for i in range(40_000)], "json")
    data = good[:-1] + b', {"n": }]'
    with pytest.raises(InvalidJSON) as raised:
        convert(tmp_path, data, "json")
    assert raised.value.details["byte_offset"] == len(good) - 1 + 8


@pytest.mark.parametrize(
    ("data", "fmt"),
    [(b"  \n\n", "ndjson"), (b"[ ]", "json"), (b"{}\n{}\n", "ndjson"), (b"[{}]", "json"),
     (b" \n", "json")],
)  # fmt: skip
def test_no_records_or_no_keys_is_empty_json(tmp_path: Path, data: bytes, fmt: str) -> None:
    with pytest.raises(EmptyJSON):
        convert(tmp_path, data, fmt)


def test_a_record_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    options = ConvertOptions(max_field_bytes=1024 * 1024)
    line = encode([{"a": "x" * 3_000_000}], "ndjson")
    with pytest.raises(FieldTooLarge) as raised:
        convert(tmp_path, b'{"a": "ok"}\n' + line, options=options)
    assert raised.value.details["line"] == 2
    with pytest.raises(FieldTooLarge):
        convert(tmp_path, encode([{"a": "x" * 6_000_000}], "json"), "json", options=options)


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
def test_values_nested_too_deep_for_parquet_are_kept_as_json_text(tmp_path: Path, fmt: str) -> None:
    # Parquet allows 100 schema levels, and a list costs two or three: 60 nested arrays
    # once made a file nobody could read back.
    deep: Any = 1
    for _ in range(60):
        deep = [deep]
    converted, rows = convert(tmp_path, encode([{"id": 1, "deep": deep}], fmt), fmt)
    assert types(converted) == {"id": "BIGINT", "deep": "VARCHAR"}
    assert [w.name for w in converted.widened] == ["deep"]
    assert "nested deeper than" in converted.widened[0].reason
    assert json.loads(rows[0]["deep"]) == deep
