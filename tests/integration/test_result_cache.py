"""The result cache and GET /v1/sql (ADR 0019), on the in-process app with real DuckDB:
an answer is reused only while the catalog stays at the same version, never for a
volatile statement, per format and parameters, within its memory budget; GET answers
carry an ETag and revalidate with 304."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from lakehouse.app import create_app
from lakehouse.config import Settings

COUNT = "SELECT count(*) AS n, sum(v) AS total FROM t"


@pytest.fixture
async def http(local_settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    # One backend: the cache sits above storage, and the catalog version is the same on both.
    async with AsyncTestClient(app=create_app(local_settings)) as client:
        yield client


def with_budget(settings: Settings, budget: int) -> AsyncTestClient[Any]:
    settings.query.result_cache_bytes = budget
    return AsyncTestClient(app=create_app(settings))


async def cache_stats(http: AsyncTestClient[Any]) -> dict[str, Any]:
    response = await http.get("/health")
    return dict(response.json()["query"]["result_cache"])


async def ingest(http: AsyncTestClient[Any], mode: str, values: range) -> int:
    body = "v\n" + "".join(f"{v}\n" for v in values)
    response = await http.post(
        f"/v1/ingest?name=t&mode={mode}", content=body, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    return int(response.json()["version"])


async def rows(http: AsyncTestClient[Any], sql: str, params: Any = None) -> Any:
    response = await http.post("/v1/sql", json={"sql": sql, "params": params})
    assert response.status_code == 200, response.text
    return response.json()


async def twice(http: AsyncTestClient[Any], sql: str) -> Any:
    """The answer to ``sql``, asked twice: the second one must come from the cache."""
    first = await rows(http, sql)
    hits = (await cache_stats(http))["hits"]
    assert await rows(http, sql) == first
    assert (await cache_stats(http))["hits"] == hits + 1
    return first


async def test_every_kind_of_commit_between_two_identical_queries_shows_its_rows(
    http: AsyncTestClient[Any],
) -> None:
    await ingest(http, "create", range(3))
    assert await twice(http, COUNT) == [{"n": 3, "total": 3}]
    await ingest(http, "append", range(10, 12))
    assert await twice(http, COUNT) == [{"n": 5, "total": 24}]
    await ingest(http, "replace", range(100, 101))
    assert await twice(http, COUNT) == [{"n": 1, "total": 100}]
    rollback = await http.post("/v1/datasets/t/rollback?version=2")
    assert rollback.status_code == 200, rollback.text
    assert await twice(http, COUNT) == [{"n": 5, "total": 24}]
    assert (await http.delete("/v1/datasets/t")).status_code == 200
    gone = await http.post("/v1/sql", json={"sql": COUNT})
    assert gone.status_code == 404, gone.text
    await ingest(http, "create", range(7, 8))
    assert await twice(http, COUNT) == [{"n": 1, "total": 7}]


VOLATILE = [
    "SELECT random() AS x",
    "SELECT now() AS x",
    "SELECT gen_random_uuid() AS x",
    "SELECT current_timestamp AS x",  # a keyword DuckDB binds as get_current_timestamp()
    "SELECT uuid() AS x FROM range(1)",
]


async def test_a_volatile_query_is_never_cached(http: AsyncTestClient[Any]) -> None:
    for sql in VOLATILE:
        before = await cache_stats(http)
        answers = [(await rows(http, sql))[0]["x"] for _ in range(3)]
        assert len(set(answers)) == 3, (sql, answers)  # each one ran
        after = await cache_stats(http)
        assert (after["hits"], after["entries"]) == (before["hits"], before["entries"]), sql


async def test_the_key_holds_the_format_and_the_parameters(http: AsyncTestClient[Any]) -> None:
    sql = "SELECT ? AS v, 'x' AS s"
    assert await rows(http, sql, [1]) == [{"v": 1, "s": "x"}]
    assert await rows(http, sql, [2]) == [{"v": 2, "s": "x"}]
    assert await rows(http, sql, ["1"]) == [{"v": "1", "s": "x"}]
    csv = await http.post("/v1/sql?format=csv", json={"sql": sql, "params": [1]})
    assert (csv.headers["content-type"], csv.text) == (
        "text/csv; charset=utf-8",
        '"v","s"\n1,"x"\n',
    )
    ndjson = await http.post(
        "/v1/sql", json={"sql": sql, "params": [1]}, headers={"Accept": "application/x-ndjson"}
    )
    assert ndjson.text == '{"v":1,"s":"x"}\n'
    assert (await cache_stats(http))["hits"] == 0
    # Whitespace, comments and keyword case do not make another statement; a column's case does.
    assert await rows(http, "select  ?  as v, 'x' as s -- again", [2]) == [{"v": 2, "s": "x"}]
    assert (await cache_stats(http))["hits"] == 1
    assert await rows(http, "SELECT ? AS V, 'x' AS s", [2]) == [{"V": 2, "s": "x"}]
    assert (await cache_stats(http))["hits"] == 1


async def test_the_cache_stays_within_its_budget(local_settings: Settings) -> None:
    async with with_budget(local_settings, 4096) as http:  # entries of at most 512 bytes
        padding = "x" * 200
        for i in range(40):
            answer = await rows(http, f"SELECT {i} AS i, '{padding}' AS pad")
            assert answer == [{"i": i, "pad": padding}]
            stats = await cache_stats(http)
            assert stats["bytes"] <= 4096
        assert stats["evictions"] > 0
        assert 0 < stats["entries"] < 40
        # The latest answers are still there; the first ones went first.
        await rows(http, f"SELECT 39 AS i, '{padding}' AS pad")
        assert (await cache_stats(http))["hits"] == 1
        await rows(http, f"SELECT 0 AS i, '{padding}' AS pad")
        assert (await cache_stats(http))["hits"] == 1
        # An answer larger than an entry may be is served, not kept.
        entries = (await cache_stats(http))["entries"]
        assert len(await rows(http, "SELECT i FROM range(100) r(i)")) == 100
        assert (await cache_stats(http))["entries"] == entries


async def test_a_streamed_answer_bypasses_the_cache(http: AsyncTestClient[Any]) -> None:
    sql = "SELECT i, 'row ' || i AS label FROM range(200000) r(i)"  # several MiB of JSON
    for _ in range(2):
        answer = await rows(http, sql)
        assert (len(answer), answer[-1]) == (200000, {"i": 199999, "label": "row 199999"})
    stats = await cache_stats(http)
    assert (stats["entries"], stats["hits"], stats["bytes"]) == (0, 0, 0)


async def test_a_budget_of_zero_turns_the_cache_off(local_settings: Settings) -> None:
    async with with_budget(local_settings, 0) as http:
        await ingest(http, "create", range(3))
        for _ in range(3):
            assert await rows(http, COUNT) == [{"n": 3, "total": 3}]
        await ingest(http, "append", range(3, 4))
        assert await rows(http, COUNT) == [{"n": 4, "total": 6}]
        stats = await cache_stats(http)
        assert stats["enabled"] is False
        assert (stats["entries"], stats["bytes"], stats["hits"], stats["misses"]) == (0, 0, 0, 0)


# -- GET /v1/sql ------------------------------------------------------------------------


async def test_get_answers_with_an_etag_and_revalidates_with_304(
    http: AsyncTestClient[Any],
) -> None:
    await ingest(http, "create", range(3))
    first = await http.get("/v1/sql", params={"sql": COUNT})
    assert first.status_code == 200, first.text
    assert first.json() == [{"n": 3, "total": 3}]
    tag = first.headers["etag"]
    assert tag[0] == tag[-1] == '"'
    assert first.headers["cache-control"] == "private, max-age=0, must-revalidate"

    stats = await cache_stats(http)
    same = await http.get("/v1/sql", params={"sql": COUNT}, headers={"If-None-Match": tag})
    assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", tag)
    after = await cache_stats(http)  # answered before the query (or the cache) was asked
    assert (after["hits"], after["misses"]) == (stats["hits"], stats["misses"])

    await ingest(http, "append", range(10, 11))
    changed = await http.get("/v1/sql", params={"sql": COUNT}, headers={"If-None-Match": tag})
    assert changed.status_code == 200, changed.text
    assert changed.json() == [{"n": 4, "total": 13}]
    assert changed.headers["etag"] != tag
    again = await http.get(
        "/v1/sql",
        params={"sql": COUNT},
        headers={"If-None-Match": f'"x", {changed.headers["etag"]}'},
    )
    assert again.status_code == 304


async def test_get_takes_the_parameters_and_formats_of_post(http: AsyncTestClient[Any]) -> None:
    sql = "SELECT ? AS v"
    one = await http.get("/v1/sql", params={"sql": sql, "params": "[1]"})
    two = await http.get("/v1/sql", params={"sql": sql, "params": "[2]"})
    csv = await http.get("/v1/sql", params={"sql": sql, "params": "[1]", "format": "csv"})
    ndjson = await http.get(
        "/v1/sql", params={"sql": sql, "params": "[1]"}, headers={"Accept": "application/x-ndjson"}
    )
    assert (one.json(), two.json(), csv.text, ndjson.text) == (
        [{"v": 1}],
        [{"v": 2}],
        '"v"\n1\n',
        '{"v":1}\n',
    )
    tags = {r.headers["etag"] for r in (one, two, csv, ndjson)}
    assert len(tags) == 4
    named = await http.get("/v1/sql", params={"sql": "SELECT $n AS v", "params": '{"n": 5}'})
    assert named.json() == [{"v": 5}]
    for bad in ("[1", "5", '"x"'):
        response = await http.get("/v1/sql", params={"sql": sql, "params": bad})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "bad_request"
    forbidden = await http.get("/v1/sql", params={"sql": "CREATE TABLE x (i INT)"})
    assert forbidden.status_code == 403
    assert "etag" not in forbidden.headers


async def test_a_volatile_get_has_no_etag(http: AsyncTestClient[Any]) -> None:
    for sql in ("SELECT random() AS x", "SELECT now() AS x"):
        response = await http.get("/v1/sql", params={"sql": sql})
        assert response.status_code == 200, response.text
        assert "etag" not in response.headers
        assert response.headers["cache-control"] == "no-store"
        revalidated = await http.get("/v1/sql", params={"sql": sql}, headers={"If-None-Match": "*"})
        assert revalidated.status_code == 200
