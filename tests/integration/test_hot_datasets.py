"""Hot datasets (ADR 0017): queries read an in-memory copy of a dataset's current
version within ``[query] hot_dataset_bytes``, never a stale one, and /health says which."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from lakehouse.app import create_app
from lakehouse.config import Settings
from tests.support.query import sql


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


async def ingest(http: AsyncTestClient[Any], name: str, csv: str, mode: str = "create") -> None:
    response = await http.post(
        f"/v1/ingest?name={name}&mode={mode}",
        content=csv.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code in (200, 201), response.text


async def hot(http: AsyncTestClient[Any]) -> dict[str, Any]:
    response = await http.get("/health")
    assert response.status_code == 200
    return dict(response.json()["query"]["hot"])


async def until_hot(http: AsyncTestClient[Any], name: str) -> dict[str, Any]:
    """/health's copies once ``name`` is among them (polled: copies are made in the background)."""
    for _ in range(1000):
        status = await hot(http)
        if name in status["datasets"]:
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} was not copied into memory: {status}")


async def rows(http: AsyncTestClient[Any], query: str) -> Any:
    response = await sql(http, query)
    assert response.status_code == 200, response.text
    return response.json()


ROWS = "id,zip\n1,01234\n2,60601\n"
MORE = "id,zip\n3,10001\n"
TOTAL = "SELECT count(*) AS n, min(zip) AS z FROM people"


async def test_a_dataset_is_read_from_memory_and_a_new_version_at_once(
    http: AsyncTestClient[Any],
) -> None:
    await ingest(http, "people", ROWS)
    assert await rows(http, TOTAL) == [{"n": 2, "z": "01234"}]
    status = await until_hot(http, "people")
    assert 0 < status["bytes"] <= status["budget_bytes"]
    assert await rows(http, TOTAL) == [{"n": 2, "z": "01234"}]  # from the copy, leading zero kept
    # An append between two identical queries: the next one sees it, copy or not.
    await ingest(http, "people", MORE, mode="append")
    assert await rows(http, TOTAL) == [{"n": 3, "z": "01234"}]
    await until_hot(http, "people")
    assert await rows(http, "SELECT id FROM people ORDER BY id") == [
        {"id": 1},
        {"id": 2},
        {"id": 3},
    ]
    # Time travel still reads the old version's files.
    older = await rows(http, "SELECT count(*) AS n FROM people AT (VERSION => 1)")
    assert older == [{"n": 2}]


@pytest.mark.parametrize("budget", [0, 100])
async def test_no_copy_past_the_budget_and_queries_still_answer(
    settings: Settings, budget: int
) -> None:
    settings.query.hot_dataset_bytes = budget
    async with AsyncTestClient(app=create_app(settings)) as http:
        await ingest(http, "people", ROWS)
        await ingest(http, "other", MORE)
        assert await rows(http, TOTAL) == [{"n": 2, "z": "01234"}]
        # The copier runs right after the views' refresh: give it the time it takes to
        # try, and a further refresh after which it has certainly finished.
        await ingest(http, "third", MORE)
        assert await rows(http, "SELECT count(*) AS n FROM third") == [{"n": 1}]
        for _ in range(20):
            status = await hot(http)
            assert status["datasets"] == []
            assert status["bytes"] == 0
            await asyncio.sleep(0.01)
        assert status["budget_bytes"] == budget
