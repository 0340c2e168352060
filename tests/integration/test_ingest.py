"""Ingest through the app in-process: dialects, values read back from the stored
Parquet, bad input (4xx, nothing left behind), re-ingest and schema conflicts.
(Inference and conversion without a backend: tests/unit/test_ingest.py.)

App tests run on both storage backends through the ``settings`` fixture.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pytest
from litestar.testing import AsyncTestClient, TestClient

from lakehouse.config import Settings
from lakehouse.storage import ObjectStore
from tests.support.ingest import assert_nothing_left, read_dataset, spool_dir

Client = AsyncTestClient  # type: ignore[type-arg]


async def ingest(
    client: Client, name: str, data: bytes, *, multipart: bool = True, query: str = ""
) -> Any:
    url = f"/v1/ingest?name={name}{query}"
    if multipart:
        return await client.post(url, files={"file": ("data.csv", data, "text/csv")})
    return await client.post(url, content=data, headers={"content-type": "text/csv"})


DIALECTS = {
    "comma": b'id,name,note\n1,"Smith, J","say ""hi""\nbye"\n2,Lee,\n',
    "semicolon_crlf_bom": (
        b'\xef\xbb\xbfid;name;note\r\n1;"Smith, J";"say ""hi""\r\nbye"\r\n2;Lee;\r\n'
    ),
    "tab": b'id\tname\tnote\n1\tSmith, J\t"say ""hi""\nbye"\n2\tLee\t\n',
    "pipe": b'id|name|note\n1|"Smith, J"|"say ""hi""\nbye"\n2|Lee|\n',
}


@pytest.mark.parametrize("dialect", list(DIALECTS))
async def test_dialects(client: Client, store: ObjectStore, dialect: str) -> None:
    response = await ingest(client, f"d_{dialect}", DIALECTS[dialect], multipart=dialect != "tab")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["row_count"] == 2
    assert [c["name"] for c in body["schema"]] == ["id", "name", "note"]
    table = await read_dataset(store, body)
    newline = "\r\n" if "crlf" in dialect else "\n"
    assert table.to_pylist() == [
        {"id": 1, "name": "Smith, J", "note": f'say "hi"{newline}bye'},
        {"id": 2, "name": "Lee", "note": None},  # an unquoted empty field is NULL
    ]
    assert body["objects"][0].startswith(f"datasets/d_{dialect}/")


async def test_types_and_values_survive(client: Client, store: ObjectStore) -> None:
    data = (
        "worker_id,zip,rate,active,hired_on,last_shift_at,big,Größe,select,,id\n"
        "1,01234,12.5,true,2024-01-31,2024-02-01 08:00:00,123456789012345678901234567890,x,s,e,9\n"
        "2,60601,,false,,,,,,,\n"
    ).encode()
    response = await ingest(client, "typed", data, multipart=False)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["schema"] == [
        {"name": "worker_id", "type": "BIGINT"},
        {"name": "zip", "type": "VARCHAR"},
        {"name": "rate", "type": "DOUBLE"},
        {"name": "active", "type": "BOOLEAN"},
        {"name": "hired_on", "type": "DATE"},
        {"name": "last_shift_at", "type": "TIMESTAMP"},
        {"name": "big", "type": "DECIMAL(38,0)"},
        {"name": "Größe", "type": "VARCHAR"},
        {"name": "select", "type": "VARCHAR"},
        {"name": "column_10", "type": "VARCHAR"},
        {"name": "id", "type": "BIGINT"},
    ]
    assert [d["name"] for d in body["ingest"]["defaulted"]] == ["zip"]
    rows = (await read_dataset(store, body)).to_pylist()
    assert rows[0] == {
        "worker_id": 1,
        "zip": "01234",
        "rate": 12.5,
        "active": True,
        "hired_on": dt.date(2024, 1, 31),
        "last_shift_at": dt.datetime(2024, 2, 1, 8, 0),
        "big": decimal.Decimal("123456789012345678901234567890"),
        "Größe": "x",
        "select": "s",
        "column_10": "e",
        "id": 9,
    }
    # Unquoted empty fields: null in typed and in VARCHAR columns alike.
    assert rows[1]["rate"] is None
    assert rows[1]["hired_on"] is None
    assert rows[1]["big"] is None
    assert rows[1]["zip"] == "60601"
    assert rows[1]["Größe"] is None


def _na_at_row_5000() -> bytes:
    lines = ["n,label"] + [f"{i},r{i}" for i in range(1, 7000)]
    lines[5000] = "N/A,r5000"
    return ("\n".join(lines) + "\n").encode()


async def test_na_in_sample_defaults_to_string(client: Client, store: ObjectStore) -> None:
    response = await ingest(client, "na_sample", _na_at_row_5000())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["schema"][0] == {"name": "n", "type": "VARCHAR"}
    [defaulted] = body["ingest"]["defaulted"]
    assert defaulted["name"] == "n"
    assert "N/A" in defaulted["reason"]
    column = (await read_dataset(store, body)).column("n").to_pylist()
    assert column[4999] == "N/A"
    assert column[0] == "1"
    assert len(column) == 6999


async def test_value_past_the_sample_widens_the_column(
    settings: Settings, store: ObjectStore
) -> None:
    settings.ingest.sample_rows = 1000
    from lakehouse.app import create_app

    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await ingest(client, "na_late", _na_at_row_5000())
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["schema"][0] == {"name": "n", "type": "VARCHAR"}
        [widened] = body["ingest"]["widened"]
        assert widened["name"] == "n"
        assert widened["inferred"] == "BIGINT"
        assert "N/A" in widened["reason"]
        column = (await read_dataset(store, body)).column("n").to_pylist()
        assert column[4999] == "N/A"
        assert column[6998] == "6999"
        await assert_nothing_left(client, store, settings, datasets=1)


async def test_header_only_gives_an_empty_dataset(client: Client, store: ObjectStore) -> None:
    response = await ingest(client, "empty_ds", b"a,b,c\r\n")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["row_count"] == 0
    table = await read_dataset(store, body)
    assert table.num_rows == 0
    assert table.column_names == ["a", "b", "c"]
    # Without a newline after the header, and a last row without one.
    for i, (data, rows) in enumerate(((b"a,b,c", 0), (b"a\n1", 1), (b'a,b\n1,"x"', 1))):
        response = await ingest(client, f"no_newline_{i}", data)
        assert response.status_code == 200, (data, response.text)
        assert response.json()["row_count"] == rows


def test_chunked_raw_body_without_content_type_is_ingested(settings: Settings) -> None:
    """No Content-Type and no Content-Length, but a chunked body: still a CSV."""
    from lakehouse.app import create_app

    # The sync client, because the async one cannot stream a request body in-process.
    with TestClient(app=create_app(settings)) as client:
        # An iterator has no length: httpx sends it chunked, without Content-Length.
        response = client.post("/v1/ingest?name=chunked", content=iter([b"a,b\n", b"1,2\n"]))
        assert response.status_code == 200, response.text
        assert response.json()["row_count"] == 1
        empty = client.post("/v1/ingest?name=chunked_empty", content=iter([]))
        assert empty.status_code == 400, empty.text
        assert empty.json()["error"]["code"] == "empty_csv"


async def test_type_override(client: Client, store: ObjectStore) -> None:
    response = await ingest(  # written as a user would: a space after the comma
        client, "over", b"zip,n\n01234,1\n60601,2\n", query="&types=zip:int,%20n:string"
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["schema"] == [{"name": "zip", "type": "BIGINT"}, {"name": "n", "type": "VARCHAR"}]
    assert (await read_dataset(store, body)).to_pylist() == [
        {"zip": 1234, "n": "1"}, {"zip": 60601, "n": "2"},
    ]  # fmt: skip
    bad = await ingest(client, "over2", b"zip\nabc\n", query="&types=zip:int")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_type_override"


async def test_reingest_replaces_data_and_conflict_leaves_no_orphan(
    client: Client, store: ObjectStore, settings: Settings
) -> None:
    first = (await ingest(client, "people", b"id,name\n1,a\n")).json()
    second_response = await client.post(
        "/ingest?name=people", content=b"id,name\n2,b\n3,c\n", headers={"content-type": "text/csv"}
    )
    assert second_response.status_code == 200, second_response.text
    second = second_response.json()
    assert second["dataset_id"] == first["dataset_id"]
    assert (first["version"], second["version"]) == (1, 2)
    assert second["ingest"]["replaced_objects"] == first["objects"]
    # The replaced file stays: version 1 still reads it (time travel).
    keys = sorted(k.key for k in await store.list("datasets/people/") if "/data/" in k.key)
    assert keys == sorted(first["objects"] + second["objects"])
    assert (await read_dataset(store, second)).column("id").to_pylist() == [2, 3]
    now = await client.post("/v1/sql", json={"sql": "SELECT id FROM people ORDER BY id"})
    assert now.json() == [{"id": 2}, {"id": 3}]
    then = await client.post("/v1/sql", json={"sql": "SELECT id FROM people AT (VERSION => 1)"})
    assert then.json() == [{"id": 1}]

    conflict = await ingest(client, "people", b"id,name,extra\n4,d,x\n")
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["error"]["code"] == "schema_conflict"
    data_keys = sorted(k.key for k in await store.list("datasets/") if "/data/" in k.key)
    assert data_keys == keys
    manifest = (await client.get("/catalog/manifest/people")).json()
    assert manifest["objects"] == second["objects"]
    assert manifest["row_count"] == 2
    assert manifest["version"] == 2


BAD_INPUTS: dict[str, tuple[str, dict[str, Any], int, str]] = {
    # case: (query, request kwargs, status, error code)
    "empty_body": ("?name=x", {"content": b"", "headers": {"content-type": "text/csv"}}, 400,
                   "empty_csv"),
    "empty_file": ("?name=x", {"files": {"file": ("x.csv", b"")}}, 400, "empty_csv"),
    "no_header": ("?name=x", {"files": {"file": ("x.csv", b"\n1,2\n")}}, 400, "empty_csv"),
    "blank_header": ("?name=x", {"files": {"file": ("x.csv", b",,\n1,2,3\n")}}, 400,
                     "empty_csv"),
    "ragged": ("?name=x", {"files": {"file": ("x.csv", b"a,b\n1,2\n3,4,5\n")}}, 400,
               "ragged_rows"),
    "unclosed_quote": ("?name=x", {"files": {"file": ("x.csv", b'a,b\n1,"open\n2,3\n')}},
                       400, "invalid_csv"),
    "duplicate_override": ("?name=x&types=a:int,A:string",
                           {"files": {"file": ("x.csv", b"a\n1\n")}}, 400,
                           "invalid_type_override"),
    "not_utf8": ("?name=x", {"files": {"file": ("x.csv", b"a,b\n1,caf\xe9\n")}}, 400,
                 "not_utf8"),
    "missing_name": ("", {"files": {"file": ("x.csv", b"a\n1\n")}}, 400, "missing_name"),
    "invalid_name": ("?name=1-bad", {"files": {"file": ("x.csv", b"a\n1\n")}}, 400,
                     "invalid_dataset_name"),
    "no_file_field": ("?name=x", {"files": {"other": ("x.csv", b"a\n1\n")}}, 400,
                      "missing_file"),
    "no_body": ("?name=x", {}, 400, "missing_file"),
    "xml_body": ("?name=x", {"content": b"<a/>", "headers": {"content-type": "application/xml"}},
                 415, "unsupported_upload"),
    "too_large": ("?name=x", {"content": b"a\n" + b"1\n" * 600,
                              "headers": {"content-type": "text/csv"}}, 413, "upload_too_large"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INPUTS))
async def test_bad_input_is_a_4xx_and_leaves_nothing(
    settings: Settings, store: ObjectStore, case: str
) -> None:
    from lakehouse.app import create_app

    settings.ingest.max_upload_bytes = 1000
    query, kwargs, status, code = BAD_INPUTS[case]
    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await client.post(f"/v1/ingest{query}", **kwargs)
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
        if case == "ragged":
            assert response.json()["error"]["details"]["line"] == 3
        if case == "unclosed_quote":  # the line of the record the quote opens in
            assert response.json()["error"]["details"]["line"] == 2
        await assert_nothing_left(client, store, settings)


async def test_ragged_row_past_the_sample_names_its_line(
    local_settings: Settings,
) -> None:
    from lakehouse.app import create_app

    local_settings.ingest.sample_rows = 10
    rows = ["a,b\n"] + ['1,"x\ny"\n'] * 3000 + ["3,4,5\n"]
    async with AsyncTestClient(app=create_app(local_settings)) as client:
        response = await ingest(client, "late", "".join(rows).encode())
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "ragged_rows"
        assert error["details"]["line"] == 6002
        assert error["details"]["row"] == 3002
        assert list(spool_dir(local_settings).iterdir()) == []


async def test_leading_zero_past_the_sample_widens_to_text(
    client: Client, store: ObjectStore
) -> None:
    """A number with a leading zero past the sample keeps its digits: the
    column becomes VARCHAR (reported as widened), as inference would have done."""
    lines = ["zip,amount,n"] + [f"{60601 + i},{i}.5,{i}" for i in range(10_050)]
    lines += ["00123,007.25,10050"]
    response = await ingest(client, "zips", ("\n".join(lines) + "\n").encode())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["schema"] == [
        {"name": "zip", "type": "VARCHAR"},
        {"name": "amount", "type": "VARCHAR"},
        {"name": "n", "type": "BIGINT"},
    ]
    widened = {w["name"]: w for w in body["ingest"]["widened"]}
    assert sorted(widened) == ["amount", "zip"]
    assert widened["zip"]["inferred"] == "BIGINT"
    assert "00123" in widened["zip"]["reason"]
    assert widened["amount"]["inferred"] == "DOUBLE"
    rows = (await read_dataset(store, body)).to_pylist()
    assert rows[-1] == {"zip": "00123", "amount": "007.25", "n": 10050}
    assert rows[0] == {"zip": "60601", "amount": "0.5", "n": 0}
    assert len(rows) == 10_051


async def test_hexadecimal_past_the_sample_widens_to_text(
    client: Client, store: ObjectStore
) -> None:
    """Arrow's integer cast would read 0x1F as 31: the column becomes text instead."""
    lines = ["code", *(str(i) for i in range(10_050)), "0x1F"]
    response = await ingest(client, "hex", ("\n".join(lines) + "\n").encode())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["schema"] == [{"name": "code", "type": "VARCHAR"}]
    assert "0x1F" in body["ingest"]["widened"][0]["reason"]
    rows = (await read_dataset(store, body)).to_pylist()
    assert rows[-1] == {"code": "0x1F"}


async def test_quoted_header_name_with_a_newline(client: Client, store: ObjectStore) -> None:
    response = await ingest(client, "nl_header", b'"a\nb",c\n1,2\n3,4\n')
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["row_count"] == 2
    assert body["schema"] == [{"name": "a\nb", "type": "BIGINT"}, {"name": "c", "type": "BIGINT"}]
    assert (await read_dataset(store, body)).to_pylist() == [
        {"a\nb": 1, "c": 2}, {"a\nb": 3, "c": 4},
    ]  # fmt: skip


async def test_literal_quote_inside_an_unquoted_field_is_accepted(
    client: Client, store: ObjectStore
) -> None:
    # An odd number of quotes, yet every quoted field is closed.
    response = await ingest(client, "heights", b'h,n\n5" tall,"x, y"\n')
    assert response.status_code == 200, response.text
    rows = (await read_dataset(store, response.json())).to_pylist()
    assert rows == [{"h": '5" tall', "n": "x, y"}]


async def test_decimal_type_override(client: Client, store: ObjectStore) -> None:
    response = await ingest(
        client, "dec", b"a,b\n1,x\n2,y\n", query="&types=a:decimal(38,0),b:string"
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["schema"][0] == {"name": "a", "type": "DECIMAL(38,0)"}
    assert (await read_dataset(store, body)).column("a").to_pylist() == [
        decimal.Decimal(1), decimal.Decimal(2),
    ]  # fmt: skip
