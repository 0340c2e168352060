"""Queries under S3 faults: a real `lakehouse serve` on S3 (moto) behind the fault proxy.

An outage never looks like missing data: beyond the retry budget a query answers 503
``storage_unavailable`` with Retry-After (never 404, 500 or a hang past its time limit);
a short fault is absorbed by DuckDB's retries; and once the fault clears the same query
answers again, without a restart. One server for the module; each test ingests a dataset
of its own (DuckDB caches what it has read, so a fresh dataset is what reaches S3).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from lakehouse.layout import catalog_database
from lakehouse.query._run import INTERRUPT_GRACE_SECONDS
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.http import HTTP
from tests.support.servers import LakehouseServer, MotoServer
from tests.support.settings import make_settings

MAX_ATTEMPTS = 3
"""Attempts per S3 request in these tests (the first included): a fault on two is absorbed."""
READ_TIMEOUT = 2.0
"""Seconds DuckDB waits for a stalled read, per attempt."""

ROWS = b"id,city\n1,Chicago\n2,Peoria\n3,Urbana\n"
GETS = frozenset({"GET"})


@pytest.fixture(scope="module")
def server(
    proxy: FaultProxy, moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LakehouseServer]:
    tmp_path = tmp_path_factory.mktemp("s3-query-faults")
    settings = make_settings("s3", tmp_path, moto)
    settings.storage.s3.endpoint_url = proxy.endpoint_url
    settings.storage.s3.max_attempts = MAX_ATTEMPTS
    settings.storage.s3.read_timeout_seconds = READ_TIMEOUT
    settings.storage.s3.connect_timeout_seconds = 1.0
    settings.query.timeout_seconds = 10
    settings.logging.level = "info"
    server = LakehouseServer(settings, Path(tmp_path)).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_fault_left(proxy: FaultProxy) -> Iterator[None]:
    proxy.clear()
    yield
    proxy.clear()


def ingest(server: LakehouseServer, mode: str = "create", name: str = "") -> str:
    name = name or f"t_{uuid.uuid4().hex[:10]}"
    response = HTTP.post(
        f"{server.url}/v1/ingest",
        params={"name": name, "mode": mode},
        content=ROWS,
        headers={"Content-Type": "text/csv"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return name


def query(server: LakehouseServer, sql: str, timeout: float | None = None) -> httpx.Response:
    params = {"timeout": timeout} if timeout is not None else None
    return HTTP.post(f"{server.url}/v1/sql", json={"sql": sql}, params=params, timeout=60)


def assert_outage(response: httpx.Response) -> dict[str, Any]:
    """503 storage_unavailable (storage_throttled when S3 throttled) with Retry-After: the
    client is told to come back; S3's address (the proxy's and moto's loopback ports) stays
    in the logs."""
    assert response.status_code == 503, response.text
    assert "127.0.0.1" not in response.text
    assert int(response.headers["retry-after"]) > 0
    error: dict[str, Any] = response.json()["error"]
    # Throttling has the code the storage API and ingest give it; every other outage one code.
    throttled = error.get("details", {}).get("reason") == "throttled"
    assert error["code"] == ("storage_throttled" if throttled else "storage_unavailable"), error
    return error


def count(server: LakehouseServer, name: str) -> int:
    response = query(server, f"SELECT count(*) AS n FROM {name}")
    assert response.status_code == 200, response.text
    return int(response.json()[0]["n"])


def test_slowdown_answers_503_not_404_and_the_query_works_once_it_clears(
    server: LakehouseServer, proxy: FaultProxy
) -> None:
    """The reported bug: S3 throttling made a dataset ingested a moment earlier look absent."""
    name = ingest(server)
    injected = proxy.injected
    with proxy.faulty(Fault.error(503, "SlowDown")):
        first = assert_outage(query(server, f"SELECT count(*) AS n FROM {name}"))
        assert first["details"]["reason"] == "throttled"
        # Still unavailable, not absent, on the next query.
        assert_outage(query(server, f"SELECT * FROM {name}"))
        # Each S3 request was tried the budget's number of times.
        assert proxy.injected - injected >= MAX_ATTEMPTS
    # No restart: the dataset answers as soon as S3 does.
    assert count(server, name) == 3


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault.error(500, "InternalError"), "server_error"),
        (Fault.error(429, "TooManyRequests"), "throttled"),
        (Fault.reset_response(after_bytes=4, methods=GETS), "connection"),
    ],
    ids=["internal-error", "too-many-requests", "reset-mid-body"],
)
def test_a_fault_beyond_the_budget_is_503_then_recovers(
    server: LakehouseServer, proxy: FaultProxy, fault: Fault, reason: str
) -> None:
    name = ingest(server)
    with proxy.faulty(fault):
        error = assert_outage(query(server, f"SELECT count(*) FROM {name}"))
        assert error["details"]["reason"] == reason
    assert count(server, name) == 3


def test_access_denied_is_502_then_recovers(server: LakehouseServer, proxy: FaultProxy) -> None:
    """S3 refusing the server's credentials is the server's fault, and no reason to retry."""
    name = ingest(server)
    with proxy.faulty(Fault.error(403, "AccessDenied")):
        response = query(server, f"SELECT count(*) FROM {name}")
        assert response.status_code == 502, response.text
        assert "127.0.0.1" not in response.text
        error = response.json()["error"]
        assert error["code"] == "storage_access_denied"
        assert error["details"]["reason"] == "access_denied"
    assert count(server, name) == 3


def test_access_denied_on_one_dataset_does_not_hold_back_the_others(
    server: LakehouseServer, proxy: FaultProxy
) -> None:
    """S3 refusing one dataset's files (a policy on its prefix) does not postpone the
    views of the other datasets the same refresh creates."""
    suffix = uuid.uuid4().hex[:8]
    denied = ingest(server, name=f"a_{suffix}")  # first in the refresh's (sorted) order
    other = ingest(server, name=f"b_{suffix}")
    with proxy.faulty(Fault.error(403, "AccessDenied", path_contains=f"/{denied}/")):
        assert count(server, other) == 3
        response = query(server, f"SELECT count(*) FROM {denied}")
        assert response.status_code == 502, response.text
        assert response.json()["error"]["code"] == "storage_access_denied"
    assert count(server, denied) == 3


def test_a_short_fault_is_absorbed_by_retries_within_the_budget(
    server: LakehouseServer, proxy: FaultProxy
) -> None:
    name = ingest(server)
    injected = proxy.injected
    proxy.inject(Fault.error(503, "SlowDown", times=MAX_ATTEMPTS - 1))
    assert count(server, name) == 3
    # Both faults were served, and the query still succeeded: DuckDB retried.
    assert proxy.injected - injected == MAX_ATTEMPTS - 1

    # A fault on as many requests as the budget has attempts is not absorbed (DuckDB's
    # own default, 4 attempts, would absorb it): the budget is the configured one.
    name = ingest(server)
    proxy.inject(Fault.error(503, "SlowDown", times=MAX_ATTEMPTS))
    assert_outage(query(server, f"SELECT count(*) FROM {name}"))
    assert count(server, name) == 3


def test_a_query_sees_an_ingest_acknowledged_while_a_slow_refresh_runs(
    server: LakehouseServer, proxy: FaultProxy
) -> None:
    """A view refresh that read the catalog before an ingest returned is not enough for
    a query sent after it: the query waits for one that includes the new dataset."""
    slow = ingest(server)
    with ThreadPoolExecutor(1) as pool, proxy.faulty(Fault.latency(1.5, path_contains=slow)):
        injected = proxy.injected
        first = pool.submit(query, server, f"SELECT count(*) AS n FROM {slow}")
        wait_until(lambda: proxy.injected > injected)  # the refresh reads slow's footers
        name = ingest(server)
        response = query(server, f"SELECT count(*) AS n FROM {name}")
        assert response.status_code == 200, response.text
        assert response.json() == [{"n": 3}]
        assert first.result().json() == [{"n": 3}]


def test_an_unavailable_dataset_does_not_delay_queries_on_others(
    server: LakehouseServer, proxy: FaultProxy
) -> None:
    healthy = ingest(server)
    assert count(server, healthy) == 3
    broken = ingest(server)
    with proxy.faulty(Fault.error(503, "SlowDown", path_contains=broken)):
        assert_outage(query(server, f"SELECT count(*) FROM {broken}"))
    # Retrying the broken view would stall: a query on another dataset does not wait.
    with proxy.faulty(Fault.stall(path_contains=broken)):
        response = query(server, f"SELECT count(*) AS n FROM {healthy}", timeout=2)
        assert response.status_code == 200, response.text
    # A query naming the dataset retries its view.
    assert count(server, broken) == 3


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_stalled_read_answers_503_within_the_query_time_limit(
    server: LakehouseServer, proxy: FaultProxy
) -> None:
    replaced = ingest(server)
    ingest(server, mode="replace", name=replaced)
    assert count(server, replaced) == 3  # its view reads version 2's file only
    # Reading version 1's file in the statement stalls in DuckDB (an interrupt does
    # not stop a read left hanging).
    old_version = f"SELECT * FROM {replaced} AT (VERSION => 1)"
    with proxy.faulty(Fault.stall()):
        assert_answered_503_in_time(server, old_version)
    # A dataset without a view yet: creating it stalls.
    fresh = ingest(server)
    with proxy.faulty(Fault.stall()):
        assert_answered_503_in_time(server, f"SELECT count(*) FROM {fresh}")
    assert count(server, fresh) == 3
    response = query(server, old_version)
    assert response.status_code == 200, response.text
    assert len(response.json()) == 3


def test_connections_held_by_stalled_reads_make_a_503_not_a_408(
    server: LakehouseServer, proxy: FaultProxy
) -> None:
    """Every connection stuck in a read S3 leaves hanging: a query waiting for one is
    told of the outage (503), not that the server is busy (408)."""
    name = ingest(server)
    ingest(server, mode="replace", name=name)
    assert count(server, name) == 3  # its view reads version 2's file only
    old_version = f"SELECT * FROM {name} AT (VERSION => 1)"  # version 1's file: not read yet
    pool_size = server.settings.query.pool_size
    with proxy.faulty(Fault.stall()), ThreadPoolExecutor(pool_size) as pool:
        stalled = [pool.submit(query, server, old_version, 1) for _ in range(pool_size)]
        for answer in stalled:
            assert_outage(answer.result())
        # The stalled reads still hold every connection (httpfs waits out its timeout).
        waiting = query(server, "SELECT 1 AS one", timeout=1)
        assert assert_outage(waiting)["details"]["reason"] == "timeout"
    # Once S3 answers, the connections come back.
    wait_until(lambda: query(server, "SELECT 1 AS one").status_code == 200)
    assert count(server, name) == 3


def assert_answered_503_in_time(server: LakehouseServer, sql: str, limit: float = 1.0) -> None:
    started = time.monotonic()
    error = assert_outage(query(server, sql, timeout=limit))
    elapsed = time.monotonic() - started
    assert error["details"]["reason"] == "timeout"
    # Left alone, DuckDB would wait READ_TIMEOUT per attempt, MAX_ATTEMPTS times (6 s);
    # the server answers at the limit plus INTERRUPT_GRACE_SECONDS.
    assert elapsed < limit + INTERRUPT_GRACE_SECONDS + 3, elapsed


def test_time_travel_under_a_fault_is_503_then_reads_the_version(
    server: LakehouseServer, proxy: FaultProxy
) -> None:
    name = ingest(server)
    ingest(server, mode="append", name=name)
    sql = f"SELECT count(*) AS n FROM {name} AT (VERSION => 1)"
    with proxy.faulty(Fault.error(503, "SlowDown")):
        assert_outage(query(server, sql))
    response = query(server, sql)
    assert response.status_code == 200, response.text
    assert response.json() == [{"n": 3}]
    assert count(server, name) == 6


def test_a_file_deleted_behind_the_catalog_is_not_a_missing_table(
    server: LakehouseServer, moto: MotoServer
) -> None:
    """An object the current version references, deleted from the bucket behind the
    catalog's back (not through the proxy)."""
    name = ingest(server)
    s3 = boto3.client(
        "s3",
        endpoint_url=moto.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    [manifest] = [
        m for m in HTTP.get(f"{server.url}/catalog/list").json()["datasets"] if m["name"] == name
    ]
    for key in manifest["objects"]:
        s3.delete_object(Bucket=server.settings.storage.s3.bucket, Key=key)
    # Damaged data, said so: neither "no such table" nor "retry later".
    for _ in range(2):
        response = query(server, f"SELECT count(*) FROM {name}")
        assert response.status_code == 502, response.text
        error = response.json()["error"]
        assert error["code"] == "dataset_object_missing"
        assert error["details"] == {"dataset": name}
        assert "retry-after" not in response.headers


def test_a_table_committed_elsewhere_during_an_outage_is_unavailable_not_missing(
    server: LakehouseServer, proxy: FaultProxy, moto: MotoServer, tmp_path: Path
) -> None:
    """A second replica (same bucket and catalog, S3 reached directly) commits a table
    while this server's S3 fails: this server's catalog cannot load it, and says so."""
    replica_settings = make_settings("s3", tmp_path, moto)
    replica_settings.storage.s3.bucket = server.settings.storage.s3.bucket
    replica_settings.storage.s3.create_bucket = False
    database = catalog_database(server.settings.storage.data_dir).resolve()
    replica_settings.catalog.uri = f"sqlite:///{database}"
    replica_settings.logging.level = "info"
    replica = LakehouseServer(replica_settings, tmp_path).start()
    try:
        with proxy.faulty(Fault.error(503, "SlowDown")):
            name = ingest(replica)
            # Until this server's catalog polls, it does not know the table (404); from
            # then on it knows the table exists, and cannot read it.
            response = poll_until(lambda: query(server, f"SELECT * FROM {name}"), 404)
            error = assert_outage(response)
            assert error["details"] == {"dataset": name, "reason": "catalog_read"}
        response = poll_until(lambda: query(server, f"SELECT count(*) AS n FROM {name}"), 503)
        assert response.status_code == 200, response.text
        assert response.json() == [{"n": 3}]
    finally:
        replica.stop()


def poll_until(ask: Callable[[], httpx.Response], while_status: int) -> httpx.Response:
    """``ask()`` again while it answers ``while_status`` (for up to 10 s)."""
    deadline = time.monotonic() + 10
    response = ask()
    while response.status_code == while_status and time.monotonic() < deadline:
        time.sleep(0.1)
        response = ask()
    return response
