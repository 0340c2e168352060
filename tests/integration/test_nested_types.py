"""Nested columns (STRUCT, LIST, MAP, LIST of STRUCT) through the whole chain (ADR 0021):
a Parquet file holding them committed through the catalog, the dataset's schema, SQL
reaching inside them, every result format, time travel, pyiceberg's own reader and
the console's table. Runs on both storage backends through the ``settings`` fixture.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
from litestar.testing import AsyncTestClient
from markupsafe import escape

from lakehouse.config import Settings
from tests.support.iceberg import pyiceberg_catalog
from tests.support.query import parquet_bytes

Client = AsyncTestClient  # type: ignore[type-arg]

STRUCT = pa.struct([("a", pa.int64()), ("b c", pa.list_(pa.string()))])
POINT = pa.struct([("x", pa.int64()), ("select", pa.string())])
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("s", STRUCT),
        ("l", pa.list_(pa.int64())),
        ("m", pa.map_(pa.string(), pa.int64())),
        ("ls", pa.list_(POINT)),
    ]
)
# As DuckDB spells them (quotes around a name with a space and around a keyword).
TYPES = [
    {"name": "id", "type": "BIGINT"},
    {"name": "s", "type": 'STRUCT(a BIGINT, "b c" VARCHAR[])'},
    {"name": "l", "type": "BIGINT[]"},
    {"name": "m", "type": "MAP(VARCHAR, BIGINT)"},
    {"name": "ls", "type": 'STRUCT(x BIGINT, "select" VARCHAR)[]'},
]
V1 = [
    {
        "id": 1,
        "s": {"a": 10, "b c": ["x", 'say "hi"']},
        "l": [1, 2, 3],
        "m": [("k", 7), ("other", 8)],
        "ls": [{"x": 1, "select": "<b>&"}, {"x": 2, "select": None}],
    },
    {"id": 2, "s": None, "l": [], "m": None, "ls": None},
]
V2 = [{"id": 3, "s": {"a": 30, "b c": None}, "l": [9], "m": [("k", 1)], "ls": []}]


async def register(client: Client, name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    key = f"datasets/{name}/{len(rows)}-{rows[0]['id']}.parquet"
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    put = await client.put(f"/storage/put/{key}", content=parquet_bytes(table))
    assert put.status_code in (200, 201), put.text
    response = await client.post(
        "/catalog/register",
        json={"name": name, "schema": TYPES, "objects": [key], "row_count": len(rows)},
    )
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


async def query(client: Client, sql: str, fmt: str = "json") -> Any:
    response = await client.post(f"/v1/sql?format={fmt}", json={"sql": sql})
    assert response.status_code == 200, response.text
    return response


async def test_nested_columns_through_the_chain(client: Client, settings: Settings) -> None:
    await register(client, "nested", V1)
    described = (await client.get("/v1/datasets/nested")).json()
    assert [{"name": c["name"], "type": c["type"]} for c in described["columns"]] == TYPES

    inside = await query(
        client,
        "SELECT id, s.a, s['b c'][2] AS b2, l[1] AS l1, m['k'] AS mk, ls[1].\"select\" AS sel "
        "FROM nested ORDER BY id",
    )
    assert inside.json() == [
        {"id": 1, "a": 10, "b2": 'say "hi"', "l1": 1, "mk": 7, "sel": "<b>&"},
        {"id": 2, "a": None, "b2": None, "l1": None, "mk": None, "sel": None},
    ]
    unnested = await query(client, "SELECT id, unnest(l) AS v FROM nested ORDER BY id, v")
    assert unnested.json() == [{"id": 1, "v": 1}, {"id": 1, "v": 2}, {"id": 1, "v": 3}]

    # Every result format of SELECT *.
    every = "SELECT * FROM nested ORDER BY id"
    first = {
        "id": 1,
        "s": {"a": 10, "b c": ["x", 'say "hi"']},
        "l": [1, 2, 3],
        "m": {"k": 7, "other": 8},
        "ls": [{"x": 1, "select": "<b>&"}, {"x": 2, "select": None}],
    }
    second = {"id": 2, "s": None, "l": [], "m": None, "ls": None}
    assert (await query(client, every)).json() == [first, second]
    ndjson = (await query(client, every, "ndjson")).text.splitlines()
    assert [json.loads(line) for line in ndjson] == [first, second]
    lines = list(csv.DictReader(io.StringIO((await query(client, every, "csv")).text)))
    assert {k: json.loads(v) for k, v in lines[0].items()} == first
    assert lines[1] == {"id": "2", "s": "", "l": "[]", "m": "", "ls": ""}
    arrow = pyarrow.ipc.open_stream((await query(client, every, "arrow")).content).read_all()
    parquet = pq.read_table(io.BytesIO((await query(client, every, "parquet")).content))
    for table in (arrow, parquet):
        assert table.to_pylist() == V1

    # JSON object keys are text: integer keys become text, other keys stay pairs.
    keys = await query(client, "SELECT map([1], ['x']) AS i, map([1.5], ['y']) AS d")
    assert keys.json() == [{"i": {"1": "x"}, "d": [[1.5, "y"]]}]

    # A second version; the first stays readable by version.
    await register(client, "nested", V2)
    current = (await query(client, "SELECT id, s.a, m['k'] AS k FROM nested")).json()
    assert current == [{"id": 3, "a": 30, "k": 1}]
    old = await query(client, "SELECT id, l FROM nested AT (VERSION => 1) ORDER BY id")
    assert old.json() == [{"id": 1, "l": [1, 2, 3]}, {"id": 2, "l": []}]

    # pyiceberg's own reader, with nothing of the app.
    table = pyiceberg_catalog(settings).load_table(("lakehouse", "nested"))
    assert table.scan().to_arrow().to_pylist() == V2
    first_snapshot = min(table.snapshots(), key=lambda s: s.sequence_number or 0)
    # pyiceberg reads a NULL list of structs as [] (apache/iceberg-python#3833, open);
    # DuckDB above reads the same file's NULL as NULL.
    as_pyiceberg_reads = [{**row, "ls": row["ls"] or []} for row in V1]
    first_version = table.scan(snapshot_id=first_snapshot.snapshot_id).to_arrow()
    assert first_version.to_pylist() == as_pyiceberg_reads


async def test_console_table_shows_nested_values_as_escaped_json(client: Client) -> None:
    await register(client, "nested", V1)
    response = await client.post(
        "/ui/sql",
        data={"sql": "SELECT s, m, ls FROM nested ORDER BY id"},
        headers={"hx-request": "true"},
    )
    assert response.status_code == 200, response.text
    page = response.text
    assert "<b>&" not in page  # the value's markup is text, not markup
    for value in ({"a": 10, "b c": ["x", 'say "hi"']}, {"k": 7, "other": 8}):
        assert str(escape(json.dumps(value, separators=(",", ":")))) in page
    assert str(escape('[{"x":1,"select":"<b>&"},{"x":2,"select":null}]')) in page


async def test_a_nested_dataset_without_objects_still_has_its_typed_columns(
    client: Client,
) -> None:
    response = await client.post(
        "/catalog/register",
        json={"name": "no_rows", "schema": TYPES, "objects": [], "row_count": 0},
    )
    assert response.status_code == 201, response.text
    arrow = await query(client, "SELECT * FROM no_rows", "arrow")
    table = pyarrow.ipc.open_stream(arrow.content).read_all()
    assert table.num_rows == 0
    assert table.schema.field("s").type == pa.struct(
        [("a", pa.int64()), ("b c", pa.list_(pa.string()))]
    )
    assert table.schema.field("m").type == pa.map_(pa.string(), pa.int64())
