"""``POST /v1/ingest?dry_run=true``: the proposed schema, how each column was typed (risky
ones flagged) and sample rows, with nothing written; the commit then takes ``types=``."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from lakehouse.config import Settings
from lakehouse.storage import ObjectStore
from tests.support.ingest import assert_nothing_left, read_dataset

Client = AsyncTestClient  # type: ignore[type-arg]

CSV = b"id,zip,amount,code,note\n1,01234,9.50,7,hello\n2,60601,12,x1,\n3,10001,7.25,8,2024-01-01\n"


async def post(client: Client, query: str, data: bytes = CSV):  # type: ignore[no-untyped-def]
    return await client.post(
        f"/v1/ingest?{query}", files={"file": ("people.csv", data, "text/csv")}
    )


async def test_dry_run_proposes_and_writes_nothing(
    client: Client, store: ObjectStore, settings: Settings
) -> None:
    response = await post(client, "name=people&dry_run=true")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["dry_run"] is True
    assert body["rows"] == 3
    columns = {c["name"]: c for c in body["columns"]}
    assert [c["name"] for c in body["columns"]] == ["id", "zip", "amount", "code", "note"]
    assert columns["id"] == {
        "name": "id", "type": "BIGINT", "source": "inferred", "reason": None, "risk": None
    }  # fmt: skip
    assert columns["zip"]["type"] == "VARCHAR"
    assert columns["zip"]["risk"] == "leading_zeros"
    assert "01234" in columns["zip"]["reason"]
    assert columns["amount"]["type"] == "DOUBLE"
    assert columns["code"]["risk"] == "mixed"
    assert columns["note"]["risk"] == "mixed"
    # The rows as the table would hold them: the zip keeps its zero, the amount is a number.
    assert body["sample"][0] == [1, "01234", 9.5, "7", "hello"]
    assert body["sample"][1][4] is None
    assert len(body["sample"]) == 3
    await assert_nothing_left(client, store, settings)
    assert (await client.get("/v1/datasets/people")).status_code == 404


async def test_dry_run_with_overrides_then_commit(client: Client, store: ObjectStore) -> None:
    preview = await post(client, "name=people&dry_run=true&types=id:double")
    assert preview.status_code == 200, preview.text
    id_column = preview.json()["columns"][0]
    assert (id_column["type"], id_column["source"], id_column["risk"]) == (
        "DOUBLE",
        "override",
        None,
    )
    assert preview.json()["sample"][0][0] == 1.0

    committed = await post(client, "name=people&types=id:double")
    assert committed.status_code == 200, committed.text
    assert committed.json()["schema"][0] == {"name": "id", "type": "DOUBLE"}
    table = await read_dataset(store, committed.json())
    assert table.column("id").to_pylist() == [1.0, 2.0, 3.0]


async def test_dry_run_of_bad_input_is_a_400(client: Client) -> None:
    ragged = await post(client, "name=people&dry_run=true", b"a,b\n1,2,3\n")
    assert ragged.status_code == 400
    assert ragged.json()["error"]["code"] == "ragged_rows"
    unknown_column = await post(client, "name=people&dry_run=true&types=nope:int")
    assert unknown_column.status_code == 400
    not_a_flag = await post(client, "name=people&dry_run=maybe")
    assert not_a_flag.status_code == 400


async def test_dry_run_refuses_what_the_commit_refuses(client: Client) -> None:
    assert (await post(client, "name=people")).status_code in (200, 201)
    other_schema = b"id,city\n1,Oslo\n"
    retyped = b"id,zip,amount,code,note\nx,01234,9.50,7,hello\n"
    for query, data in [
        ("name=people&mode=create", CSV),
        ("name=people", other_schema),  # the default mode replaces only the same schema
        ("name=people&mode=append", retyped),  # id would become VARCHAR
    ]:
        committed = await post(client, query, data)
        dry_run = await post(client, query + "&dry_run=true", data)
        assert committed.status_code == 409, (query, committed.text)
        assert (dry_run.status_code, dry_run.json()) == (409, committed.json()), query
    fine = await post(client, "name=people&mode=append&dry_run=true", CSV)
    assert fine.status_code == 200, fine.text
