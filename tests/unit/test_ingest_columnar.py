"""The Parquet / Arrow IPC converter without a backend (lakehouse/ingest/columnar_convert.py):
the rarer Arrow types each stored as the nearest lossless type, values kept, and the
values that would lose precision refused naming their column. (Through the app, on both
backends: tests/integration/test_ingest_columnar.py.)"""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest

from lakehouse.ingest.columnar_convert import convert_arrow, convert_parquet
from lakehouse.ingest.convert import ConvertOptions
from lakehouse.ingest.errors import DecompressedTooLarge, UnsupportedColumnType
from lakehouse.ingest.formats import ConvertRequest

REQUEST = ConvertRequest(options=ConvertOptions())


def convert(
    tmp_path: Path, table: pa.Table, request: ConvertRequest = REQUEST
) -> tuple[list[tuple[str, str, str | None, str]], list[dict[str, object]]]:
    source, target = tmp_path / "in.arrows", tmp_path / "out.parquet"
    with pa.OSFile(str(source), "wb") as sink, pyarrow.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    converted = convert_arrow(source, target, request)
    columns = [(c.name, c.type, c.reason, c.source) for c in converted.columns]
    return columns, pq.read_table(target).to_pylist()


def test_rarer_types_are_stored_as_their_nearest_lossless_type(tmp_path: Path) -> None:
    table = pa.table(
        {
            "d64": pa.array([dt.date(2024, 2, 29)], pa.date64()),
            "t_ns": pa.array([dt.time(1, 2, 3, 4)], pa.time64("ns")),
            "dec": pa.array([decimal.Decimal("1.5")], pa.decimal256(30, 1)),
            "view": pa.array(["v"], pa.string_view()),
            "fixed": pa.array([b"ab"], pa.binary(2)),
            "pair": pa.array([[1, 2]], pa.list_(pa.int16(), 2)),
            "lv": pa.array([[1]], pa.large_list(pa.uint16())),
            "tz": pa.array(
                [dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)], pa.timestamp("s", "Asia/Tokyo")
            ),
        }
    )
    columns, rows = convert(tmp_path, table)
    assert columns == [
        ("d64", "DATE", "date64[ms] stored as DATE", "inferred"),
        ("t_ns", "TIME", "time64[ns] stored as TIME", "inferred"),
        ("dec", "DECIMAL(30,1)", "decimal256(30, 1) stored as decimal128", "inferred"),
        ("view", "VARCHAR", "string_view stored as VARCHAR", "inferred"),
        ("fixed", "BLOB", "fixed_size_binary[2] stored as BLOB", "inferred"),
        (
            "pair",
            "INTEGER[]",
            "fixed_size_list<item: int16>[2] stored as a list; int16 stored as INTEGER",
            "inferred",
        ),
        ("lv", "INTEGER[]", "uint16 stored as INTEGER", "inferred"),
        (
            "tz",
            "TIMESTAMP WITH TIME ZONE",
            "timestamp[s] stored in microseconds; "
            "time zone Asia/Tokyo stored as UTC (the same instants)",
            "inferred",
        ),
    ]
    assert rows == [
        {
            "d64": dt.date(2024, 2, 29),
            "t_ns": dt.time(1, 2, 3, 4),
            "dec": decimal.Decimal("1.5"),
            "view": "v",
            "fixed": b"ab",
            "pair": [1, 2],
            "lv": [1],
            "tz": dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC),
        }
    ]


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("d64", pa.array([86_400_000 + 1], pa.date64())),  # a date with a time of day
        ("t_ns", pa.array([1_500], pa.time64("ns"))),  # not a whole microsecond
        ("dec", pa.array([decimal.Decimal(1)], pa.decimal256(40, 0))),  # past 38 digits
        ("iv", pa.array([pa.MonthDayNano([1, 2, 3])], pa.month_day_nano_interval())),
        ("s", pa.array([{"a": 1, "A": 2}], pa.struct([("a", pa.int64()), ("A", pa.int64())]))),
    ],
    ids=["date_with_time", "nanoseconds", "wide_decimal", "interval", "same_names"],
)
def test_values_that_would_lose_precision_are_refused_by_column(
    tmp_path: Path, column: str, values: pa.Array
) -> None:
    with pytest.raises(UnsupportedColumnType) as raised:
        convert(tmp_path, pa.table({"id": [1], column: values}))
    assert raised.value.details["column"] == column


def test_an_appended_column_takes_the_datasets_wider_type(tmp_path: Path) -> None:
    table = pa.table(
        {
            "n": pa.array([1], pa.int32()),
            "f": pa.array([0.5], pa.float32()),
            "x": pa.array([2], pa.int64()),
        }
    )
    request = ConvertRequest(
        options=ConvertOptions(),
        dataset_types={"n": "DECIMAL(12,2)", "f": "DOUBLE", "x": "INTEGER"},
    )
    columns, rows = convert(tmp_path, table, request)
    assert [(name, type_, source) for name, type_, _, source in columns] == [
        ("n", "DECIMAL(12,2)", "dataset"),
        ("f", "DOUBLE", "dataset"),
        ("x", "BIGINT", "inferred"),  # narrowing is the catalog's 409, not a silent cast
    ]
    assert rows == [{"n": decimal.Decimal("1.00"), "f": 0.5, "x": 2}]


def test_a_parquet_bomb_is_refused_before_it_is_read(tmp_path: Path) -> None:
    # 16 MiB in one value compresses to a few KiB; decompressed whole, a few such values
    # would take gigabytes. Refused by what the file declares, before reading a page.
    bomb = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"s": ["a" * (16 * 1024 * 1024)]}), bomb, compression="zstd")
    assert bomb.stat().st_size < 64 * 1024
    target = tmp_path / "out.parquet"
    request = ConvertRequest(options=ConvertOptions())
    with pytest.raises(DecompressedTooLarge, match="column 's' of row group 0"):
        convert_parquet(bomb, target, request)
    assert not target.exists()
    # Many small values past the whole-file cap: refused the same way.
    many = tmp_path / "many.parquet"
    pq.write_table(
        pa.table({"s": ["b" * 100] * 20_000}), many, compression="zstd", use_dictionary=False
    )
    capped = ConvertRequest(options=ConvertOptions(max_decompressed_bytes=1024 * 1024))
    with pytest.raises(DecompressedTooLarge, match="more than the limit of 1048576"):
        convert_parquet(many, target, capped)
    assert convert_parquet(many, target, request).rows == 20_000
