"""Two `lakehouse serve` replicas on one bucket (the moto S3 server) and one
PostgreSQL catalog: concurrent appends to both land every row exactly once, and
a commit on one replica is visible to queries on the other within a second, even to
a query the other has just answered from its result cache."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import pytest

from lakehouse.config import Settings
from tests.support.http import HTTP
from tests.support.postgres import PostgresServer
from tests.support.servers import LakehouseServer, MotoServer
from tests.support.settings import make_settings

pytestmark = pytest.mark.slow(seconds=230)

APPENDS_PER_REPLICA = 200
CLIENTS_PER_REPLICA = 2  # each replica admits 2 ingests at once ([ingest] max_concurrent)


def replica_settings(base: Settings, tmp_path: Path, name: str) -> Settings:
    """``base``'s bucket and catalog, with a data (scratch) directory of its own."""
    settings = msgspec.convert(msgspec.to_builtins(base), Settings)
    settings.storage.data_dir = str(tmp_path / name / "data")
    settings.storage.s3.create_bucket = name == "a"
    return settings


def append(url: str, replica: str, seq: int) -> int:
    """One 1-row append; 503 (busy) is retried, as a client should. Returns the version."""
    body = f"replica,seq\n{replica},{seq}\n".encode()
    for _ in range(2000):
        response = HTTP.post(
            f"{url}/v1/ingest?name=events&mode=append",
            content=body,
            headers={"Content-Type": "text/csv"},
            timeout=120,
        )
        if response.status_code != 503:
            assert response.status_code == 200, response.text
            return int(response.json()["version"])
        time.sleep(0.05)
    raise AssertionError("the replica stayed busy")


def count(url: str, sql: str) -> list[dict[str, int]]:
    response = HTTP.post(f"{url}/v1/sql", json={"sql": sql}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_two_replicas_append_concurrently_and_see_each_other(
    moto: MotoServer, postgres: PostgresServer, tmp_path: Path
) -> None:
    base = make_settings("s3", tmp_path, moto)
    database = postgres.create_database("lake_replicas")
    base.catalog.uri = postgres.url(database=database)
    # Bounded history keeps each commit's metadata small (ADR 0014).
    base.catalog.keep_versions = 20
    base.catalog.keep_days = 0
    secrets = Path(base.secrets.file)
    secrets.write_text(secrets.read_text() + f'[catalog]\npassword = "{postgres.password}"\n')
    base.logging.level = "info"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = LakehouseServer(replica_settings(base, tmp_path, "a"), tmp_path / "a").start()
    b = LakehouseServer(replica_settings(base, tmp_path, "b"), tmp_path / "b").start()
    try:
        jobs = [
            job for i in range(APPENDS_PER_REPLICA) for job in ((a.url, "A", i), (b.url, "B", i))
        ]
        started = time.monotonic()
        with ThreadPoolExecutor(2 * CLIENTS_PER_REPLICA) as pool:
            versions = list(pool.map(lambda job: append(*job), jobs))
        took = time.monotonic() - started
        print(f"{len(jobs)} appends on two replicas: {took:.1f} s")
        # Every commit got its own version number.
        assert len(set(versions)) == len(jobs)

        total = 2 * APPENDS_PER_REPLICA
        exact = (
            "SELECT count(*) AS n, count(DISTINCT replica || ':' || seq) AS distinct_rows "
            "FROM events"
        )
        for server in (a, b):
            deadline = time.monotonic() + 5
            while count(server.url, exact) != [{"n": total, "distinct_rows": total}]:
                assert time.monotonic() < deadline, count(server.url, exact)
                time.sleep(0.1)
        # No secret of the catalog database in either log.
        for server in (a, b):
            assert postgres.password not in server.logs()

        # B's answer is in its result cache (the second ask is a hit) ...
        hits = HTTP.get(f"{b.url}/health").json()["query"]["result_cache"]["hits"]
        for _ in range(2):
            assert count(b.url, "SELECT count(*) AS n FROM events") == [{"n": total}]
        assert HTTP.get(f"{b.url}/health").json()["query"]["result_cache"]["hits"] > hits
        # ... yet a commit on A is visible on B within a second; on A at once.
        version = append(a.url, "A", 10_000)
        assert count(a.url, "SELECT count(*) AS n FROM events") == [{"n": total + 1}]
        seen = threading.Event()
        committed = time.monotonic()
        while time.monotonic() - committed < 1.0:
            if count(b.url, "SELECT count(*) AS n FROM events") == [{"n": total + 1}]:
                seen.set()
                break
            time.sleep(0.02)
        assert seen.is_set(), "replica B did not see A's commit within 1 s"
        history = HTTP.get(f"{b.url}/v1/datasets/events/history").json()["versions"]
        assert history[-1]["version"] >= version
    finally:
        a.stop()
        b.stop()
