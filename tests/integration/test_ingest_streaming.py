"""Ingest through the real `lakehouse serve`: a generated 200k-row file checked
against DuckDB reading the CSV directly, and the 503 for one ingest too many."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest

from lakehouse.config import Settings
from lakehouse.storage import ObjectStore
from scripts.gen_workers import ensure_generated
from tests.support.ingest import spool_dir
from tests.support.servers import LakehouseServer

REPO = Path(__file__).resolve().parents[2]

AGGREGATES = """
    SELECT count(*), round(sum(hourly_rate), 2), count(DISTINCT zip), min(zip),
           min(hired_on), max(last_shift_at), count(*) FILTER (WHERE is_active),
           sum(years_experience), count(DISTINCT skills)
    FROM {source}
"""
IL_ROLES = "SELECT role, count(*) FROM {source} WHERE state = 'IL' GROUP BY role ORDER BY role"


@pytest.fixture(scope="session")
def workers_200k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_generated(200_000, tmp_path_factory.mktemp("fixtures") / "workers_200k.csv", 7)


async def test_200k_rows_match_duckdb_on_the_csv(
    server: LakehouseServer, store: ObjectStore, workers_200k: Path, tmp_path: Path
) -> None:
    with workers_200k.open("rb") as handle:
        async with httpx.AsyncClient(timeout=120) as http:
            response = await http.post(
                f"{server.url}/v1/ingest?name=workers_200k",
                files={"file": ("workers_200k.csv", handle, "text/csv")},
            )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["row_count"] == 200_000
    types = {c["name"]: c["type"] for c in body["schema"]}
    assert types["zip"] == "VARCHAR"
    assert types["hired_on"] == "DATE"
    assert types["last_shift_at"] == "TIMESTAMP"
    assert types["is_active"] == "BOOLEAN"
    [key] = body["objects"]
    assert key.startswith("datasets/workers_200k/")

    parquet = tmp_path / "fetched.parquet"
    parquet.write_bytes(await store.get(key))
    assert pq.ParquetFile(io.BytesIO(parquet.read_bytes())).metadata.num_rows == 200_000
    con = duckdb.connect()
    csv_source = f"read_csv('{workers_200k}')"
    pq_source = f"read_parquet('{parquet}')"
    for query in (AGGREGATES, IL_ROLES):
        expected = con.execute(query.format(source=csv_source)).fetchall()
        assert con.execute(query.format(source=pq_source)).fetchall() == expected
    # Quoted notes with embedded newlines survived byte for byte.
    notes = "SELECT count(*) FROM {source} WHERE notes LIKE '%\n%'"
    newline_notes = con.execute(notes.format(source=pq_source)).fetchone()
    assert newline_notes is not None
    assert newline_notes[0] > 0
    assert newline_notes == con.execute(notes.format(source=csv_source)).fetchone()


@pytest.fixture
def one_slot_server(local_settings: Settings, tmp_path: Path) -> AsyncIterator[LakehouseServer]:
    local_settings.ingest.max_concurrent = 1
    proc = LakehouseServer(local_settings, tmp_path).start()
    yield proc  # type: ignore[misc]
    proc.stop()


async def test_one_ingest_too_many_is_503_with_retry_after(
    one_slot_server: LakehouseServer, local_settings: Settings
) -> None:
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"a,b\n1,2\n"
        await release.wait()
        yield b"3,4\n"

    url = f"{one_slot_server.url}/v1/ingest"
    async with httpx.AsyncClient(timeout=30) as client:
        put = await client.put(f"{one_slot_server.url}/storage/put/in/a.csv", content=b"a\n1\n")
        assert put.status_code == 200, put.text
        first = asyncio.create_task(
            client.post(f"{url}?name=first", content=slow_body(),
                        headers={"content-type": "text/csv"})
        )  # fmt: skip
        # Wait until the first upload holds its slot (its spool file exists).
        spool = spool_dir(local_settings)
        for _ in range(200):
            if spool.exists() and any(spool.iterdir()):
                break
            await asyncio.sleep(0.02)
        second = await client.post(
            f"{url}?name=second", content=b"a\n1\n", headers={"content-type": "text/csv"}
        )
        assert second.status_code == 503, second.text
        assert second.headers["retry-after"].isdigit()
        assert second.json()["error"]["code"] == "ingest_busy"
        # An object already in storage takes a slot as an upload does.
        from_bucket = await client.post(f"{url}?name=third&source=in/a.csv")
        assert from_bucket.status_code == 503, from_bucket.text
        release.set()
        done = await first
        assert done.status_code == 200, done.text
        assert done.json()["row_count"] == 2
    assert list(spool.iterdir()) == []


async def test_client_disconnect_mid_ingest_is_not_a_server_error(
    server: LakehouseServer, settings: Settings
) -> None:
    """A client that leaves mid-upload: no 500 logged, no dataset, no spool file."""
    from tests.support.storage_http import RawRequest

    request = await RawRequest.open(
        server.url,
        "POST",
        b"/v1/ingest?name=gone",
        {"Transfer-Encoding": "chunked", "Content-Type": "text/csv"},
    )
    spool = spool_dir(settings)
    try:
        await request.send_chunk(b"id,city\n" + b"1,Chicago\n" * 50_000)
        for _ in range(500):  # until the server is visibly spooling the upload
            if spool.is_dir() and any(spool.iterdir()):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the server never spooled the upload before the disconnect")
    finally:
        await request.close()
    async with httpx.AsyncClient(base_url=server.url) as http:
        for _ in range(200):
            if not (spool.is_dir() and any(spool.iterdir())):
                break
            await asyncio.sleep(0.01)
        assert not spool.is_dir() or list(spool.iterdir()) == []
        listing = (await http.get("/catalog/list")).json()
        assert listing["datasets"] == []
        ok = await http.post("/v1/ingest?name=after", content=b"a\n1\n")
        assert ok.status_code == 200  # the ingest slot was given back
    assert '"level":"error"' not in server.logs()


async def test_queries_during_reingests_never_fail(server: LakehouseServer) -> None:
    """Queries running while the dataset is re-ingested over and over all
    answer 200 with one complete version: the replaced objects outlive the
    queries that may still read them."""
    versions = {k: ("v\n" + "".join(f"{i * k}\n" for i in range(50_000))).encode() for k in (1, 2)}
    answers = [[{"n": 50_000, "s": sum(range(50_000)) * k}] for k in versions]
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        first = await http.post("/v1/ingest?name=hot", content=versions[1])
        assert first.status_code == 200, first.text
        done = asyncio.Event()
        failures: list[str] = []
        counts = [0]

        async def query_loop() -> None:
            while not done.is_set():
                response = await http.post(
                    "/v1/sql", json={"sql": "SELECT count(*) AS n, sum(v) AS s FROM hot"}
                )
                counts[0] += 1
                if response.status_code != 200 or response.json() not in answers:
                    failures.append(f"{response.status_code} {response.text[:300]}")

        queries = [asyncio.create_task(query_loop()) for _ in range(4)]
        try:
            for round_ in range(8):
                response = await http.post("/v1/ingest?name=hot", content=versions[2 - round_ % 2])
                assert response.status_code == 200, response.text
                assert response.json()["ingest"]["replaced_objects"]
        finally:
            done.set()
            await asyncio.gather(*queries)
    assert counts[0] > 8
    assert failures == []
