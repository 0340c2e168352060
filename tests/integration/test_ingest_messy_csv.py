"""Messy CSV through the app in-process, read back with SQL: empty values
(PostgreSQL's CSV rule), quotes the parser must judge, fields larger than the
reader's block. (Dialects and typing: test_ingest.py.)

The storage backend plays no part here, so these run on the local one only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from lakehouse.app import create_app
from lakehouse.config import MiB, Settings
from tests.support.ingest import spool_dir

Client = AsyncTestClient  # type: ignore[type-arg]


@pytest.fixture
async def client(local_settings: Settings) -> AsyncIterator[Client]:
    local_settings.ingest.max_field_bytes = 2 * MiB  # small, so the tests stay small
    async with AsyncTestClient(app=create_app(local_settings)) as test_client:
        yield test_client


async def ingest(client: Client, name: str, data: bytes) -> Any:
    return await client.post(
        f"/v1/ingest?name={name}", content=data, headers={"content-type": "text/csv"}
    )


async def sql(client: Client, query: str) -> list[dict[str, Any]]:
    response = await client.post("/v1/sql", json={"sql": query})
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


async def test_unquoted_empty_is_null_and_quoted_empty_is_empty_text(client: Client) -> None:
    data = (
        b"n,amount,day,flag,name\n"
        b"1,1.5,2024-01-31,true,Ann\n"
        b",,,,\n"  # unquoted empties: NULL in every column
        b'"","","","",""\n'  # quoted empties: '' in text, NULL where '' is no value
        b'2,2.5,2024-02-01,false,""\n'
    )
    response = await ingest(client, "empties", data)
    assert response.status_code == 200, response.text
    assert [c["type"] for c in response.json()["schema"]] == [
        "BIGINT", "DOUBLE", "DATE", "BOOLEAN", "VARCHAR",
    ]  # fmt: skip
    [counts] = await sql(
        client,
        "SELECT count(*) FILTER (WHERE n IS NULL) AS n, count(*) FILTER (WHERE amount IS NULL)"
        " AS amount, count(*) FILTER (WHERE day IS NULL) AS day, count(*) FILTER (WHERE flag"
        " IS NULL) AS flag, count(*) FILTER (WHERE name IS NULL) AS name_null,"
        " count(*) FILTER (WHERE name = '') AS name_empty FROM empties",
    )
    assert counts == {"n": 2, "amount": 2, "day": 2, "flag": 2, "name_null": 1, "name_empty": 2}
    # A column that is all empty has nothing to infer from: text, with the same rule.
    response = await ingest(client, "blank", b'a,b\n1,\n2,""\n')
    assert response.status_code == 200, response.text
    rows = await sql(client, "SELECT a, b IS NULL AS null_b, b = '' AS empty_b FROM blank")
    assert rows == [
        {"a": 1, "null_b": True, "empty_b": None},
        {"a": 2, "null_b": False, "empty_b": True},
    ]


@pytest.mark.parametrize(
    ("data", "line"),
    [
        # An even count of quotes (one literal, one opening), yet a quote never closes:
        # counting them cannot tell, the parser can.
        (b'item,note\n5" screen,ok\n7,"never closed\n8,x\n', 3),
        # ... also when the open quote is in the last column of a single-column file.
        (b'note\nO"Brien\n"open\nmore\n', 3),
        # ... and when the open field is not the last of its row.
        (b'a,b,c\n1,2,3\n"x\ny",2,3\n4,"open,5\n6,7,8\n', 5),
    ],
    ids=["last_column", "single_column", "middle_column"],
)
async def test_a_quote_never_closed_is_a_400_naming_its_line(
    client: Client, local_settings: Settings, data: bytes, line: int
) -> None:
    response = await ingest(client, "unclosed", data)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_csv"
    assert error["details"]["line"] == line
    assert "never closed" in error["message"]
    assert (await client.get("/catalog/list")).json()["datasets"] == []
    assert list(spool_dir(local_settings).iterdir()) == []
    # Closed, the same file ingests, its literal quotes kept as values.
    fixed = data.replace(b'"open', b'"open"').replace(b'"never closed', b'"closed"')
    response = await ingest(client, "closed", fixed)
    assert response.status_code == 200, response.text
    rows = await sql(client, "SELECT * FROM closed")
    assert {'5" screen', 'O"Brien', "open", "closed", "x\ny"} & {
        value for row in rows for value in row.values()
    }
    assert len(rows) == response.json()["row_count"] > 0


def _big_field(size: int) -> str:
    """Quoted text of ``size`` characters holding commas, doubled quotes and newlines."""
    chunk = 'a, "quoted" b\nc;'
    return (chunk * (size // len(chunk) + 1))[:size]


def _csv_with(value: str, lead_rows: int = 0) -> bytes:
    """Row 1 spans two lines, then ``lead_rows`` short rows, then ``value``."""
    lead = "".join(f"{i},filler,0\n" for i in range(10, 10 + lead_rows))
    quoted = '"' + value.replace('"', '""') + '"'
    return f'id,text,n\n1,"two\nlines",5\n{lead}2,{quoted},6\n3,short,7\n'.encode()


async def test_a_field_larger_than_the_reader_block_is_ingested(client: Client) -> None:
    # 1.9 MiB starting 0.6 MiB into the file: it spans three of the reader's 1 MiB blocks.
    value = _big_field(1946 * 1024)
    response = await ingest(client, "big_field", _csv_with(value, lead_rows=50_000))
    assert response.status_code == 200, response.text
    assert response.json()["row_count"] == 50_003
    rows = await sql(client, "SELECT id, text, n FROM big_field WHERE id < 10 ORDER BY id")
    assert [(r["id"], r["n"]) for r in rows] == [(1, 5), (2, 6), (3, 7)]
    assert rows[1]["text"] == value
    assert rows[2]["text"] == "short"


async def test_a_row_beyond_max_field_bytes_is_a_400_naming_its_line(
    client: Client, local_settings: Settings
) -> None:
    # Just over the limit: the reader would take it (it fits two of the largest blocks),
    # the limit does not.
    response = await ingest(client, "huge_field", _csv_with(_big_field(2 * MiB + 1)))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "field_too_large"
    assert error["details"]["line"] == 4  # the record starts there; line 2 spans two lines
    assert error["details"]["max_field_bytes"] == 2 * MiB
    assert "max_field_bytes" in error["message"]
    assert (await client.get("/catalog/list")).json()["datasets"] == []
    assert list(spool_dir(local_settings).iterdir()) == []


async def test_a_quote_opened_early_in_a_large_file_is_a_400_naming_its_line(
    client: Client,
) -> None:
    # Beyond two of the largest blocks after the open quote the reader finds no
    # row end. The literal quote on line 2 makes the count of quotes even.
    data = b'a,b\n1,x"\n2,"open\n' + b"3,y\n" * (MiB + 10)
    response = await ingest(client, "early_open", data)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_csv"
    assert error["details"]["line"] == 3
