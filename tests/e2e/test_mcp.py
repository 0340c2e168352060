"""The MCP endpoint at /mcp, driven by the MCP SDK's own client over Streamable HTTP
against a real `lakehouse serve` (one server for the module, with a bearer token)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from litestar.testing import AsyncTestClient
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from lakehouse.app import create_app
from tests.support.http import HTTP
from tests.support.servers import LakehouseServer
from tests.support.settings import make_settings

TOKEN = "mcp-test-token-0001"
MAX_ROWS = 100
MAX_BYTES = 8192
PEOPLE_ROWS = 1000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LakehouseServer]:
    workdir = tmp_path_factory.mktemp("mcp")
    settings = make_settings("local", workdir, None)
    settings.server.auth_token = TOKEN
    settings.mcp.enabled = True
    settings.mcp.max_rows = MAX_ROWS
    settings.mcp.max_bytes = MAX_BYTES
    settings.query.pool_size = 2
    settings.query.timeout_seconds = 10
    server = LakehouseServer(settings, workdir).start()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    csv = "id,name,zip\n" + "".join(f"{i},person {i},{i % 90000:05d}\n" for i in range(PEOPLE_ROWS))
    ingested = HTTP.post(
        f"{server.url}/v1/ingest?name=people", content=csv, headers=headers, timeout=30
    )
    assert ingested.status_code in (200, 201), ingested.text
    appended = HTTP.post(
        f"{server.url}/v1/ingest?name=people&mode=append",
        content="id,name,zip\n1000,late,00001\n",
        headers=headers,
        timeout=30,
    )
    assert appended.status_code in (200, 201), appended.text
    yield server
    # The SDK's session manager stops with the app: a clean, graceful exit.
    assert server.stop() == 0, server.logs()[-2000:]


@asynccontextmanager
async def mcp_client(
    server: LakehouseServer,
    token: str = TOKEN,
    statuses: list[int] | None = None,
    mode: str = "auto",
    bodies: list[bytes] | None = None,
) -> AsyncIterator[Client]:
    """The SDK's client over Streamable HTTP; ``statuses`` collects its HTTP answers'
    codes, ``bodies`` their bodies."""

    async def record(response: httpx2.Response) -> None:
        if statuses is not None:
            statuses.append(response.status_code)
        if bodies is not None:
            bodies.append(await response.aread())

    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            event_hooks={"response": [record]},
        ) as http,
        Client(
            streamable_http_client(f"{server.url}/mcp", http_client=http),
            mode=mode,  # type: ignore[arg-type]
        ) as client,
    ):
        yield client


def sql_rows(server: LakehouseServer, sql: str) -> list[dict[str, Any]]:
    """The same SQL through /v1/sql, to compare with."""
    answer = HTTP.post(
        f"{server.url}/v1/sql",
        json={"sql": sql},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()
    return rows


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    content: dict[str, Any] = result.structured_content
    # The text is the same answer, for clients that read only text.
    assert json.loads(result.content[0].text) == content  # type: ignore[union-attr]
    return content


def tool_error(result: CallToolResult) -> dict[str, Any]:
    assert result.is_error, result.structured_content
    error: dict[str, Any] = result.structured_content["error"]
    assert json.loads(result.content[0].text) == {"error": error}  # type: ignore[union-attr]
    return error


async def test_tools_are_listed_by_their_fixed_names(server: LakehouseServer) -> None:
    async with mcp_client(server) as client:
        tools = (await client.list_tools()).tools
    assert sorted(tool.name for tool in tools) == ["describe_dataset", "list_datasets", "query"]
    assert all(tool.annotations and tool.annotations.read_only_hint for tool in tools)


async def test_list_and_describe_a_dataset(server: LakehouseServer) -> None:
    async with mcp_client(server) as client:
        listed = structured(await client.call_tool("list_datasets", {}))
        described = structured(await client.call_tool("describe_dataset", {"name": "PEOPLE"}))
    [people] = listed["datasets"]
    assert people["name"] == "people"
    assert (people["rows"], people["columns"], people["version"]) == (PEOPLE_ROWS + 1, 3, 2)

    assert described["name"] == "people"
    assert described["rows"] == PEOPLE_ROWS + 1
    columns = {c["name"]: c for c in described["columns"]}
    assert columns["id"]["type"] == "BIGINT"
    assert (columns["zip"]["type"], columns["zip"]["source"]) == ("VARCHAR", "inferred")
    assert 1 <= len(described["sample"]) <= 5
    assert set(described["sample"][0]) == {"id", "name", "zip"}
    profile = {p["column"]: p for p in described["profile"]}
    assert (profile["id"]["min"], profile["id"]["max"]) == ("0", str(PEOPLE_ROWS))
    assert profile["zip"]["min"] == "00000"  # text, leading zeros kept
    assert profile["name"]["null_percentage"] == 0
    assert profile["id"]["approx_distinct"] > PEOPLE_ROWS * 0.9
    history = described["history"]
    assert [(v["version"], v["operation"], v["rows_added"]) for v in history] == [
        (1, "append", PEOPLE_ROWS),
        (2, "append", 1),
    ]


async def test_describe_an_unknown_dataset_is_a_tool_error(server: LakehouseServer) -> None:
    async with mcp_client(server) as client:
        error = tool_error(await client.call_tool("describe_dataset", {"name": "nobody"}))
    assert error["code"] == "dataset_not_found"
    assert "nobody" in error["message"]


async def test_query_returns_the_rows_of_v1_sql(server: LakehouseServer) -> None:
    sql = "SELECT zip, count(*) AS n FROM people WHERE id < 3 GROUP BY zip ORDER BY zip"
    async with mcp_client(server) as client:
        answer = structured(await client.call_tool("query", {"sql": sql}))
    assert answer["columns"] == [{"name": "zip", "type": "string"}, {"name": "n", "type": "int64"}]
    assert (
        answer["rows"]
        == sql_rows(server, sql)
        == [
            {"zip": "00000", "n": 1},
            {"zip": "00001", "n": 1},
            {"zip": "00002", "n": 1},
        ]
    )
    assert (answer["row_count"], answer["truncated"], answer["total_rows"]) == (3, False, 3)


async def test_the_row_cap_truncates_and_says_how_many_there_are(
    server: LakehouseServer,
) -> None:
    sql = "SELECT id, zip FROM people ORDER BY id"
    async with mcp_client(server) as client:
        capped = structured(await client.call_tool("query", {"sql": sql}))
        asked = structured(await client.call_tool("query", {"sql": sql, "max_rows": 7}))
        above = structured(await client.call_tool("query", {"sql": sql, "max_rows": 10**6}))
    expected = sql_rows(server, sql)
    assert capped["rows"] == expected[:MAX_ROWS]
    assert (capped["truncated"], capped["total_rows"]) == (True, PEOPLE_ROWS + 1)
    assert capped["hint"]
    assert asked["rows"] == expected[:7]
    assert (asked["truncated"], asked["max_rows"]) == (True, 7)
    assert above["row_count"] == MAX_ROWS  # a call cannot raise the server's cap


async def test_the_byte_cap_truncates_within_the_cap(server: LakehouseServer) -> None:
    sql = "SELECT id, repeat('x', 500) AS pad FROM people ORDER BY id"
    async with mcp_client(server) as client:
        answer = structured(await client.call_tool("query", {"sql": sql}))
    rows = answer["rows"]
    assert answer["truncated"] is True
    assert 0 < len(rows) < MAX_ROWS
    # The rows go out twice (structured, and escaped in the text): both within the cap.
    assert 2 * len(json.dumps(rows, separators=(",", ":"))) <= MAX_BYTES
    expected = sql_rows(server, sql)
    assert rows == expected[: len(rows)]
    # As many rows as fit: one more would not have.
    assert 2 * len(json.dumps(expected[: len(rows) + 2], separators=(",", ":"))) > MAX_BYTES


ENVELOPE = 1024
"""The JSON-RPC envelope around a tool's answer, and the answer's small fields."""


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT " + ", ".join(f"{i} AS c{i:04d}{'n' * 195}" for i in range(2000)),
        "SELECT repeat('\"', 100000) AS quotes FROM range(100)",
        "SELECT repeat('\"', 10) AS quotes FROM range(1000)",
    ],
    ids=["2000-long-column-names", "huge-quoted-values", "many-quoted-values"],
)
async def test_a_tool_calls_http_answer_stays_within_the_byte_cap(
    server: LakehouseServer, sql: str
) -> None:
    bodies: list[bytes] = []
    async with mcp_client(server, bodies=bodies) as client:
        bodies.clear()
        answer = structured(await client.call_tool("query", {"sql": sql}))
        body = max(bodies, key=len)  # the tool call's, not the session's small ones
    assert len(body) <= MAX_BYTES + ENVELOPE, len(body)
    assert answer["truncated"] or len(answer["columns"]) < answer["columns_total"]


async def test_describe_caps_a_wide_table_and_a_long_history(server: LakehouseServer) -> None:
    header = ",".join(f"c{i:04d}{'n' * 195}" for i in range(300))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        for mode in ["create"] + ["append"] * 21:
            answer = await http.post(
                f"{server.url}/v1/ingest?name=wide&mode={mode}",
                content=header + "\n" + ",".join("1" * 300) + "\n",
            )
            assert answer.status_code in (200, 201), answer.text
    bodies: list[bytes] = []
    async with mcp_client(server, bodies=bodies) as client:
        bodies.clear()
        described = structured(await client.call_tool("describe_dataset", {"name": "wide"}))
        body = max(bodies, key=len)  # the tool call's, not the session's small ones
    assert len(body) <= MAX_BYTES + ENVELOPE, len(body)
    latest = described["version"]
    assert described["history_total"] == latest > 20
    listed_versions = [v["version"] for v in described["history"]]
    assert 0 < len(listed_versions) <= 20
    assert listed_versions == list(range(latest - len(listed_versions) + 1, latest + 1))
    assert described["columns_total"] == 300
    listed = [c["name"] for c in described["columns"]]
    assert 0 < len(listed) < 300
    assert [p["column"] for p in described["profile"]] == listed


async def test_a_large_result_is_cut_without_reading_it_all(server: LakehouseServer) -> None:
    # Three million rows: far more than the first chunk the engine sends, so the total is
    # not known, and the rest is never read; calls after it are answered (the pool has two).
    sql = "SELECT range AS n FROM range(3000000)"
    async with mcp_client(server) as client:
        for _ in range(3):
            answer = structured(await client.call_tool("query", {"sql": sql}))
            assert (answer["row_count"], answer["truncated"]) == (MAX_ROWS, True)
            assert answer["total_rows"] is None
        small = structured(await client.call_tool("query", {"sql": "SELECT 1 AS one"}))
    assert small["rows"] == [{"one": 1}]


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "sandbox_violation"),
        ("DROP VIEW people", "forbidden_statement"),
        ("SELEC 1", "invalid_sql"),
        ("SELECT * FROM nobody", "table_not_found"),
    ],
)
async def test_refusals_and_sql_errors_are_tool_errors_with_our_codes(
    server: LakehouseServer, sql: str, code: str
) -> None:
    async with mcp_client(server) as client:
        error = tool_error(await client.call_tool("query", {"sql": sql}))
        after = await client.call_tool("query", {"sql": "SELECT count(*) AS n FROM people"})
    assert error["code"] == code
    assert error["message"]
    assert str(server.workdir) not in json.dumps(error)
    assert structured(after)["rows"] == [{"n": PEOPLE_ROWS + 1}]


async def test_bad_arguments_are_tool_errors(server: LakehouseServer) -> None:
    async with mcp_client(server) as client:
        zero = tool_error(await client.call_tool("query", {"sql": "SELECT 1", "max_rows": 0}))
        missing = tool_error(await client.call_tool("describe_dataset", {}))
    assert zero["code"] == "bad_request"
    assert missing["code"] == "invalid_arguments"


async def test_the_endpoint_needs_the_token(server: LakehouseServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        for path in ("/mcp", "/mcp/", "/mcp/anything"):
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                refused = await http.post(path, json={}, headers=headers)
                assert refused.status_code == 401
                assert refused.json()["error"]["code"] == "unauthorized"
    statuses: list[int] = []
    with pytest.raises(ExceptionGroup):  # the SDK's client fails to connect
        async with mcp_client(server, token="wrong", statuses=statuses) as client:
            await client.list_tools()
    assert statuses
    assert set(statuses) == {401}
    statuses.clear()
    async with mcp_client(server, statuses=statuses) as client:
        assert (await client.list_tools()).tools
    assert statuses
    assert set(statuses) == {200}


async def test_disabled_the_endpoint_is_not_served(tmp_path: Path) -> None:
    settings = make_settings("local", tmp_path, None)
    assert settings.mcp.enabled is False  # as the other tests' servers have it
    async with AsyncTestClient(app=create_app(settings)) as client:
        answer = await client.post("/mcp", json={})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


async def test_every_tool_call_is_audited_in_the_server_log(server: LakehouseServer) -> None:
    sql = "SELECT id FROM people ORDER BY id -- audited"
    async with mcp_client(server) as client:
        structured(await client.call_tool("query", {"sql": sql}))
        tool_error(await client.call_tool("query", {"sql": "SELEC 'audited'"}))
    # A client of the handshake era (initialize, then calls) is served and audited too.
    async with mcp_client(server, mode="legacy") as client:
        structured(await client.call_tool("describe_dataset", {"name": "people"}))
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    audit = [line for line in lines if line.get("logger") == "lakehouse.mcp.audit"]
    digest = hashlib.sha256(sql.encode()).hexdigest()
    [ok] = [line for line in audit if line.get("sql_sha256") == digest]
    assert ok["tool"] == "query"
    assert (ok["outcome"], ok["rows"], ok["truncated"]) == ("ok", MAX_ROWS, True)
    assert ok["bytes"] > 0
    assert ok["duration_ms"] >= 0
    assert ok["request_id"]
    # The access line of the same HTTP request carries the same request id.
    assert any(
        line.get("path") == "/mcp" and line.get("request_id") == ok["request_id"] for line in lines
    )
    [failed] = [
        line
        for line in audit
        if line.get("sql_sha256") == hashlib.sha256(b"SELEC 'audited'").hexdigest()
    ]
    assert failed["outcome"] == "invalid_sql"
    assert "audited" not in json.dumps(audit)  # the SQL itself is never logged
    described = [line for line in audit if line["tool"] == "describe_dataset"]
    assert described[-1]["dataset"] == "people"
    assert described[-1]["request_id"]


async def test_describe_profiles_doubles_at_the_edge_of_their_range(
    server: LakehouseServer,
) -> None:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        ingested = await http.post(
            f"{server.url}/v1/ingest?name=extreme", content="x\n1e308\n-1e308\n1.5\n"
        )
    assert ingested.status_code in (200, 201), ingested.text
    async with mcp_client(server) as client:
        described = structured(await client.call_tool("describe_dataset", {"name": "extreme"}))
    [x] = described["profile"]
    assert (x["column"], x["min"], x["max"]) == ("x", "-1e+308", "1e+308")
    assert len(described["sample"]) == 3
