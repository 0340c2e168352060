"""Parquet and Arrow IPC uploads through the app (ADR 0021): the schema kept as
written, the nearest lossless type where a table cannot hold one (said in the typing
report), nested columns SQL can reach into, broken and unsupported files refused with
nothing left behind, and appends across formats with the schema rules of append.
Files are made by pyarrow in the test. Runs on both storage backends through the
``settings`` fixture.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
from typing import Any

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest
from litestar.testing import AsyncTestClient

from lakehouse.config import Settings
from lakehouse.storage import ObjectStore
from tests.support.iceberg import pyiceberg_catalog
from tests.support.ingest import assert_nothing_left, read_dataset

Client = AsyncTestClient  # type: ignore[type-arg]

OCTETS = {"content-type": "application/octet-stream"}


def parquet(table: pa.Table, **options: Any) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def arrow_file(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pyarrow.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def arrow_stream(table: pa.Table, max_chunksize: int | None = None) -> bytes:
    sink = io.BytesIO()
    with pyarrow.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max_chunksize)
    return sink.getvalue()


async def ingest(client: Client, name: str, data: bytes, fmt: str, query: str = "") -> Any:
    return await client.post(
        f"/v1/ingest?name={name}&format={fmt}{query}", content=data, headers=OCTETS
    )


async def sql(client: Client, query: str) -> Any:
    response = await client.post("/v1/sql", json={"sql": query})
    assert response.status_code == 200, response.text
    return response.json()


# Every kind of column a Parquet or Arrow writer commonly produces, with the type each
# is stored as and why, when it is not its own.
WIDE = pa.table(
    {
        "id": pa.array([1, 2], pa.int64()),
        "i8": pa.array([-128, None], pa.int8()),
        "u8": pa.array([255, 0], pa.uint8()),
        "u32": pa.array([2**32 - 1, 0], pa.uint32()),
        "u64": pa.array([2**64 - 1, None], pa.uint64()),
        "f16": pa.array([1.5, None], pa.float16()),
        "label": pa.array(["a", "a"]).dictionary_encode(),
        "big_text": pa.array(["ü", None], pa.large_string()),
        "at_ms": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 6000), None], pa.timestamp("ms")),
        "at_tz": pa.array(
            [dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC), None], pa.timestamp("us", "UTC")
        ),
        "day": pa.array([dt.date(2024, 2, 29), None], pa.date32()),
        "clock": pa.array([dt.time(23, 59, 58), None], pa.time32("s")),
        "amount": pa.array([decimal.Decimal("12.34"), None], pa.decimal128(10, 2)),
        "nothing": pa.array([None, None], pa.null()),
        "blob": pa.array([b"\x00\xff", None], pa.large_binary()),
        "s": pa.array(
            [{"a": 1, "tags": ["x", "y"]}, None],
            pa.struct([("a", pa.int16()), ("tags", pa.list_(pa.string()))]),
        ),
        "m": pa.array([[("k", 7)], None], pa.map_(pa.string(), pa.int64())),
        "points": pa.array(
            [[{"x": 1, "y": 2.5}], []],
            pa.list_(pa.struct([("x", pa.int64()), ("y", pa.float64())])),
        ),
        "": pa.array([1, 2], pa.int64()),  # no name: named as a CSV header would be
        "ID": pa.array([3, 4], pa.int64()),  # "id" again, in another case
    }
)
WIDE_SCHEMA = [
    ("id", "BIGINT"),
    ("i8", "INTEGER"),
    ("u8", "INTEGER"),
    ("u32", "BIGINT"),
    ("u64", "DECIMAL(20,0)"),
    ("f16", "FLOAT"),
    ("label", "VARCHAR"),
    ("big_text", "VARCHAR"),
    ("at_ms", "TIMESTAMP"),
    ("at_tz", "TIMESTAMP WITH TIME ZONE"),
    ("day", "DATE"),
    ("clock", "TIME"),
    ("amount", "DECIMAL(10,2)"),
    ("nothing", "VARCHAR"),
    ("blob", "BLOB"),
    ("s", "STRUCT(a INTEGER, tags VARCHAR[])"),
    ("m", "MAP(VARCHAR, BIGINT)"),
    ("points", "STRUCT(x BIGINT, y DOUBLE)[]"),
    ("column_19", "BIGINT"),
    ("ID_2", "BIGINT"),
]
WIDE_ROW = {
    "id": 1,
    "i8": -128,
    "u8": 255,
    "u32": 2**32 - 1,
    "u64": decimal.Decimal(2**64 - 1),
    "f16": 1.5,
    "label": "a",
    "big_text": "ü",
    "at_ms": dt.datetime(2024, 1, 2, 3, 4, 5, 6000),
    "at_tz": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    "day": dt.date(2024, 2, 29),
    "clock": dt.time(23, 59, 58),
    "amount": decimal.Decimal("12.34"),
    "nothing": None,
    "blob": b"\x00\xff",
    "s": {"a": 1, "tags": ["x", "y"]},
    "m": [("k", 7)],
    "points": [{"x": 1, "y": 2.5}],
    "column_19": 1,
    "ID_2": 3,
}


@pytest.mark.parametrize(
    ("fmt", "encode"),
    [("parquet", parquet), ("arrow", arrow_file), ("arrow", arrow_stream)],
    ids=["parquet", "arrow_file", "arrow_stream"],
)
async def test_the_schema_is_kept_as_written(
    client: Client, store: ObjectStore, fmt: str, encode: Any
) -> None:
    response = await ingest(client, "wide", encode(WIDE), fmt)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(c["name"], c["type"]) for c in body["schema"]] == WIDE_SCHEMA
    assert body["row_count"] == 2
    assert body["ingest"]["format"] == fmt
    assert body["ingest"]["delimiter"] is None
    # What changed on the way is reported, per column.
    reasons = {d["name"]: d["reason"] for d in body["ingest"]["defaulted"]}
    assert reasons["u64"] == "uint64 stored as DECIMAL(20,0)"
    assert reasons["nothing"] == "no values, stored as VARCHAR"
    assert reasons["s"] == "int16 stored as INTEGER"
    assert "label" not in reasons  # dictionary encoding is not a type
    assert "id" not in reasons
    stored = (await read_dataset(store, body)).to_pylist()
    assert stored[0] == WIDE_ROW
    described = (await client.get("/v1/datasets/wide")).json()["columns"]
    assert {c["name"]: c["reason"] for c in described}["u32"] == "uint32 stored as BIGINT"
    # SQL reaches inside the nested columns.
    inside = await sql(
        client,
        "SELECT s.a, s.tags[2] AS tag, m['k'] AS k, points[1].y AS y, u64 FROM wide WHERE id = 1",
    )
    assert inside == [{"a": 1, "tag": "y", "k": 7, "y": 2.5, "u64": 2**64 - 1}]


async def test_a_large_parquet_file_is_regrouped_into_our_row_groups(
    client: Client, store: ObjectStore
) -> None:
    table = pa.table({"n": pa.array(range(5000), pa.int32()), "t": [str(i) for i in range(5000)]})
    response = await ingest(client, "regrouped", parquet(table, row_group_size=7), "parquet")
    assert response.status_code == 200, response.text
    body = response.json()
    (key,) = body["objects"]
    metadata = pq.read_metadata(io.BytesIO(await store.get(key)))
    assert metadata.num_rows == 5000
    assert metadata.num_row_groups == 1  # not 715 groups of 7 rows
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    total = await sql(client, "SELECT sum(n) AS s, count(*) AS c FROM regrouped")
    assert total == [{"s": sum(range(5000)), "c": 5000}]


async def test_an_arrow_stream_of_many_small_batches(client: Client) -> None:
    table = pa.table({"n": pa.array(range(1000), pa.int64())})
    response = await ingest(client, "batches", arrow_stream(table, max_chunksize=3), "arrow")
    assert response.status_code == 200, response.text
    assert await sql(client, "SELECT count(*) AS c, max(n) AS m FROM batches") == [
        {"c": 1000, "m": 999}
    ]


def _broken() -> dict[str, tuple[str, bytes, str]]:
    small = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    good_parquet = parquet(small)
    good_file = arrow_file(small)
    corrupt_footer = bytearray(good_parquet)
    corrupt_footer[-12:-4] = b"\xff" * 8  # the footer's length and the end of its bytes
    return {
        "truncated_parquet": ("parquet", good_parquet[: len(good_parquet) // 2], "invalid_parquet"),
        "parquet_footer_only_magic": (
            "parquet",
            b"PAR1" + b"\x00" * 10 + b"PAR1",
            "invalid_parquet",
        ),
        "corrupt_footer": ("parquet", bytes(corrupt_footer), "invalid_parquet"),
        "csv_as_parquet": ("parquet", b"a,b\n1,x\n", "format_mismatch"),
        "truncated_arrow_file": ("arrow", good_file[: len(good_file) - 40], "invalid_arrow"),
        "truncated_arrow_stream": ("arrow", arrow_stream(small)[:150], "invalid_arrow"),
        "parquet_as_arrow": ("arrow", good_parquet, "format_mismatch"),
    }


BROKEN = _broken()


async def test_broken_files_are_400_and_leave_nothing(
    client: Client, store: ObjectStore, settings: Settings
) -> None:
    for case, (fmt, data, code) in BROKEN.items():
        response = await ingest(client, "broken", data, fmt)
        assert response.status_code == 400, (case, response.text)
        assert response.json()["error"]["code"] == code, case
        assert settings.storage.data_dir not in response.text  # no local path in the answer
    await assert_nothing_left(client, store, settings)


UNSUPPORTED = {
    "union": pa.UnionArray.from_dense(
        pa.array([0, 1], pa.int8()),
        pa.array([0, 0], pa.int32()),
        [pa.array([1]), pa.array(["x"])],
        ["i", "s"],
    ),
    "duration": pa.array([1, 2], pa.duration("s")),
    "nanos": pa.array([1, 2_000], pa.timestamp("ns")),  # 1 ns is not a whole microsecond
}


async def test_a_column_a_table_cannot_hold_is_400_naming_it(
    client: Client, store: ObjectStore, settings: Settings
) -> None:
    for kind, values in UNSUPPORTED.items():
        table = pa.table({"id": [1, 2], f"odd_{kind}": values})
        response = await ingest(client, "odd", arrow_stream(table), "arrow")
        assert response.status_code == 400, (kind, response.text)
        error = response.json()["error"]
        assert error["code"] == "unsupported_column_type"
        assert error["details"]["column"] == f"odd_{kind}"
        assert f"odd_{kind}" in error["message"]
    # ?types= is for the text formats: a typed file keeps its types.
    data = parquet(pa.table({"id": [1]}))
    response = await ingest(client, "typed", data, "parquet", "&types=id:VARCHAR")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_type_override"
    assert "text formats" in error["message"]
    await assert_nothing_left(client, store, settings)


async def test_nanosecond_timestamps_of_whole_microseconds_are_kept(client: Client) -> None:
    table = pa.table({"happened": pa.array([1_000, 2_000_000], pa.timestamp("ns"))})
    response = await ingest(client, "nanos", arrow_file(table), "arrow")
    assert response.status_code == 200, response.text
    assert response.json()["schema"] == [{"name": "happened", "type": "TIMESTAMP"}]
    rows = await sql(client, "SELECT epoch_us(happened) AS us FROM nanos ORDER BY 1")
    assert rows == [{"us": 1}, {"us": 2_000}]


async def test_a_file_with_a_schema_and_no_rows_is_an_empty_table(client: Client) -> None:
    empty = pa.table(
        {"id": pa.array([], pa.int64()), "s": pa.array([], pa.struct([("a", pa.int32())]))}
    )
    response = await ingest(client, "empty", parquet(empty), "parquet")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["row_count"] == 0
    assert body["schema"] == [
        {"name": "id", "type": "BIGINT"},
        {"name": "s", "type": "STRUCT(a INTEGER)"},
    ]
    assert await sql(client, "SELECT count(*) AS c FROM empty") == [{"c": 0}]


async def test_append_parquet_to_a_dataset_loaded_from_csv(
    client: Client, store: ObjectStore
) -> None:
    csv = await client.post(
        "/v1/ingest?name=mixed",
        content=b"id,name\n1,a\n2,b\n",
        headers={"content-type": "text/csv"},
    )
    assert csv.status_code == 200, csv.text

    # An int32 id goes into the BIGINT column; an extra column is added.
    more = pa.table({"id": pa.array([3], pa.int32()), "name": ["c"], "score": [0.5]})
    response = await ingest(client, "mixed", parquet(more), "parquet", "&mode=append")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["schema"] == [
        {"name": "id", "type": "BIGINT"},
        {"name": "name", "type": "VARCHAR"},
        {"name": "score", "type": "DOUBLE"},
    ]
    described = (await client.get("/v1/datasets/mixed")).json()["columns"]
    assert {c["name"]: c["source"] for c in described}["id"] == "dataset"
    rows = await sql(client, "SELECT id, name, score FROM mixed ORDER BY id")
    assert rows == [
        {"id": 1, "name": "a", "score": None},
        {"id": 2, "name": "b", "score": None},
        {"id": 3, "name": "c", "score": 0.5},
    ]

    # A column that changes its type is a 409 with both schemas; nothing is added.
    conflict = pa.table({"id": [4], "name": pa.array([4], pa.int64()), "score": [1.0]})
    refused = await ingest(client, "mixed", parquet(conflict), "parquet", "&mode=append")
    assert refused.status_code == 409, refused.text
    details = refused.json()["error"]["details"]
    assert {"name": "name", "type": "VARCHAR"} in details["existing"]["schema"]
    assert {"name": "name", "type": "BIGINT"} in details["offered"]["schema"]
    assert await sql(client, "SELECT count(*) AS c FROM mixed") == [{"c": 3}]
    keys = [
        info.key for info in await store.list("datasets/mixed/") if "/metadata/" not in info.key
    ]
    assert len(keys) == 2


POINT = pa.struct([("x", pa.int64())])
GROWN = pa.struct([("x", pa.int64()), ("label", pa.string())])


async def test_append_an_arrow_stream_to_a_parquet_dataset_whose_struct_gains_a_field(
    client: Client, settings: Settings
) -> None:
    first = pa.table(
        {"id": [1], "p": pa.array([{"x": 1}], POINT), "ps": pa.array([[{"x": 1}]], pa.list_(POINT))}
    )
    created = await ingest(client, "shapes", parquet(first), "parquet")
    assert created.status_code == 200, created.text

    second = pa.table(
        {
            "id": [2],
            "p": pa.array([{"x": 2, "label": "two"}], GROWN),
            "ps": pa.array([[{"x": 2, "label": "b"}]], pa.list_(GROWN)),
        }
    )
    appended = await ingest(client, "shapes", arrow_stream(second), "arrow", "&mode=append")
    assert appended.status_code == 200, appended.text
    assert appended.json()["schema"][1:] == [
        {"name": "p", "type": 'STRUCT(x BIGINT, "label" VARCHAR)'},
        {"name": "ps", "type": 'STRUCT(x BIGINT, "label" VARCHAR)[]'},
    ]
    rows = await sql(
        client, "SELECT id, p.label AS label, ps[1].label AS first FROM shapes ORDER BY id"
    )
    assert rows == [
        {"id": 1, "label": None, "first": None},
        {"id": 2, "label": "two", "first": "b"},
    ]
    # Another Iceberg reader sees the grown structs, NULL in the first version's rows.
    table = pyiceberg_catalog(settings).load_table(("lakehouse", "shapes"))
    assert sorted(table.scan().to_arrow().to_pylist(), key=lambda row: row["id"]) == [
        {"id": 1, "p": {"x": 1, "label": None}, "ps": [{"x": 1, "label": None}]},
        {"id": 2, "p": {"x": 2, "label": "two"}, "ps": [{"x": 2, "label": "b"}]},
    ]
    # Version 1 is still read with its own columns.
    old = await sql(client, "SELECT id, p FROM shapes AT (VERSION => 1)")
    assert old == [{"id": 1, "p": {"x": 1}}]

    # A field that changes its type is not an evolution: 409, nothing committed.
    retyped = pa.table(
        {
            "id": [3],
            "p": pa.array(
                [{"x": "three", "label": "x"}],
                pa.struct([("x", pa.string()), ("label", pa.string())]),
            ),
            "ps": pa.array([[]], pa.list_(GROWN)),
        }
    )
    refused = await ingest(client, "shapes", arrow_stream(retyped), "arrow", "&mode=append")
    assert refused.status_code == 409, refused.text
    assert (
        'p: STRUCT(x BIGINT, "label" VARCHAR) -> STRUCT(x VARCHAR, "label" VARCHAR)'
        in (refused.json()["error"]["message"])
    )
    assert await sql(client, "SELECT count(*) AS c FROM shapes") == [{"c": 2}]
