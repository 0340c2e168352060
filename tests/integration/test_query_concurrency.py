"""Query against a real ``lakehouse serve`` (Granian): concurrency, disconnects, the pool."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from lakehouse.config import Settings
from tests.support.query import register_table
from tests.support.servers import LakehouseServer

SLOW = "SELECT count(*) FROM range(1000000000) a, range(1000000) b WHERE a.range + b.range = -1"


@pytest.fixture
async def http(server: LakehouseServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


async def pool_state(http: httpx.AsyncClient) -> tuple[int, int]:
    query = (await http.get("/health")).json()["query"]
    return query["pool_size"], query["idle_connections"]


async def wait_for_idle_pool(http: httpx.AsyncClient, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        size, idle = await pool_state(http)
        if idle == size:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"pool did not drain: {await pool_state(http)}")


async def test_200_concurrent_requests_from_16_clients(
    server: LakehouseServer, http: httpx.AsyncClient
) -> None:
    table = pa.table({"k": pa.array(range(1000), pa.int64()), "g": [i % 7 for i in range(1000)]})
    await register_table(http, "numbers", table)
    size_before, _ = await pool_state(http)

    async def one_client(client_id: int) -> list[bool]:
        results = []
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            for i in range(client_id, 200, 16):
                response = await client.post(
                    "/v1/sql",
                    json={"sql": "SELECT count(*) AS n, sum(k) AS s FROM numbers WHERE g = ?",
                          "params": [i % 7]},
                )  # fmt: skip
                expected = [k for k in range(1000) if k % 7 == i % 7]
                results.append(
                    response.status_code == 200
                    and response.json() == [{"n": len(expected), "s": sum(expected)}]
                )
        return results

    answers = [ok for batch in await asyncio.gather(*map(one_client, range(16))) for ok in batch]
    assert len(answers) == 200
    assert all(answers)
    await wait_for_idle_pool(http)
    assert (await pool_state(http))[0] == size_before


async def test_a_client_that_goes_away_cancels_its_query(
    server: LakehouseServer, http: httpx.AsyncClient
) -> None:
    size, _ = await pool_state(http)
    async with httpx.AsyncClient(base_url=server.url, timeout=0.5) as impatient:
        for _ in range(size):  # every cursor of the pool busy with a query nobody waits for
            with pytest.raises(httpx.ReadTimeout):
                await impatient.post("/sql", json={"sql": SLOW})
    # The queries were interrupted (the configured limit is 30 s) and the cursors came back.
    await wait_for_idle_pool(http)
    response = await http.post("/sql", json={"sql": "SELECT 1 AS one"})
    assert response.json() == [{"one": 1}]


async def test_large_results_stream_over_http(http: httpx.AsyncClient) -> None:
    lines = 0
    async with http.stream(
        "POST", "/sql?format=ndjson", json={"sql": "SELECT range AS i FROM range(300000)"}
    ) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line:
                lines += 1
    assert lines == 300_000
    await wait_for_idle_pool(http)


async def test_sigterm_stops_a_running_query_and_the_server_exits_cleanly(
    server: LakehouseServer, http: httpx.AsyncClient
) -> None:
    size, _ = await pool_state(http)

    async def slow() -> tuple[int, str] | None:
        try:
            response = await http.post("/sql", json={"sql": SLOW})
        except httpx.TransportError:  # the connection closed: also an acceptable end
            return None
        return response.status_code, response.json()["error"]["code"]

    query = asyncio.create_task(slow())
    deadline = time.monotonic() + 10
    while (await pool_state(http))[1] == size:  # wait until the query holds a cursor
        assert time.monotonic() < deadline, "the slow query never started"
        await asyncio.sleep(0.02)
    # The query's own limit is 30 s: only interrupting it lets the server exit within 10 s
    # (past that, stop() kills it and the code is not 0).
    code = await asyncio.to_thread(server.stop, timeout=10.0)
    assert code == 0, server.logs()[-5:]
    answer = await asyncio.wait_for(query, 5)
    assert answer in (None, (503, "shutting_down"))


async def test_waiting_for_the_only_connection_counts_against_the_time_limit(
    local_settings: Settings, tmp_path: Path
) -> None:
    local_settings.query.pool_size = 1
    server = LakehouseServer(local_settings, tmp_path).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            # The slow query holds the only cursor until its own limit (2 s) stops it.
            slow = asyncio.create_task(http.post("/sql?timeout=2", json={"sql": SLOW}))
            deadline = time.monotonic() + 10
            while (await pool_state(http))[1] == 1:
                assert time.monotonic() < deadline, "the slow query never started"
                await asyncio.sleep(0.02)
            waiting = await http.post("/sql?timeout=0.3", json={"sql": "SELECT 1 AS x"})
            assert waiting.status_code == 408, waiting.text
            error = waiting.json()["error"]
            assert error["code"] == "query_timeout"
            assert error["details"] == {"timeout_seconds": 0.3}
            assert not slow.done()  # the 408 did not wait for the cursor
            assert (await slow).status_code == 408
            assert (await http.post("/sql", json={"sql": "SELECT 1 AS x"})).json() == [{"x": 1}]
            await wait_for_idle_pool(http)
    finally:
        server.stop()
