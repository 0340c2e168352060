"""Query over HTTP on both storage backends: G0 queries, read-your-writes, formats,
errors, the sandbox, the time limit and the pool (in-process app, real DuckDB, real moto)."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq
import pytest
from litestar.testing import AsyncTestClient

from lakehouse.app import Services, build_services, create_app
from lakehouse.config import Settings
from lakehouse.storage import GrantsDuckDBAccess
from tests.support.query import register_table, sql
from tests.support.settings import TEST_SECRET_KEY

REPO = Path(__file__).resolve().parents[2]


class App:
    """The in-process app and the services it runs on (to look at the pool)."""

    def __init__(self, http: AsyncTestClient[Any], services: Services) -> None:
        self.http = http
        self.services = services


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[App]:
    services = build_services(settings)
    async with AsyncTestClient(app=create_app(settings, services)) as http:
        yield App(http, services)


def people(n: int, offset: int = 0) -> pa.Table:
    ids = list(range(offset, offset + n))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": pa.array([f'name "{i}", \\ {chr(0x263A)}' for i in ids], pa.string()),
            "score": pa.array([i / 4 for i in ids], pa.float64()),
            "born": pa.array([dt.date(2000, 1, 1) + dt.timedelta(days=i) for i in ids]),
            "seen": pa.array(
                [dt.datetime(2024, 1, 1, 12, 0, i % 60, 500 * (i % 3)) for i in ids],
                pa.timestamp("us"),
            ),
            "active": pa.array([i % 2 == 0 for i in ids]),
            "amount": pa.array([decimal.Decimal(i) / 100 for i in ids], pa.decimal128(10, 2)),
        }
    )


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return dict(error)


# -- G0 ------------------------------------------------------------------------


@pytest.fixture
def workers_csv(tmp_path: Path) -> Path:
    csv_path = tmp_path / "workers.csv"
    subprocess.run(
        [sys.executable, str(REPO / "scripts/gen_workers.py"), "--rows", "3000",
         "--out", str(csv_path), "--seed", "7"],
        check=True, capture_output=True,
    )  # fmt: skip
    return csv_path


async def test_g0_count_and_il_group_by_match_duckdb_on_the_csv(
    app: App, workers_csv: Path
) -> None:
    csv_path = workers_csv
    ingested = await app.http.post(
        "/v1/ingest?name=workers",
        content=csv_path.read_bytes(),
        headers={"Content-Type": "text/csv"},
    )
    assert ingested.status_code == 200, ingested.text

    count = await app.http.post("/v1/sql", json={"sql": "SELECT count(*) FROM workers"})
    assert count.status_code == 200
    assert count.content == b'[{"count_star()":3000}]'

    group_by = "SELECT role, count(*) AS n FROM {} WHERE state='IL' GROUP BY role ORDER BY role"
    response = await app.http.post("/v1/sql", json={"sql": group_by.format("workers")})
    expected = duckdb.connect().execute(group_by.format(f"read_csv('{csv_path}')")).fetchall()
    assert expected  # IL is the most common state in the generator
    assert [(r["role"], r["n"]) for r in response.json()] == expected


async def test_register_then_query_sees_it_and_the_next_version(app: App) -> None:
    missing = await sql(app.http, "SELECT * FROM people")
    error = assert_error(missing, 404, "table_not_found")
    assert "people" in error["message"]

    await register_table(app.http, "people", people(3))
    first = await sql(app.http, "SELECT id FROM people ORDER BY id")
    assert first.json() == [{"id": 0}, {"id": 1}, {"id": 2}]

    await register_table(app.http, "people", people(2, offset=10))
    second = await sql(app.http, "SELECT id FROM people ORDER BY id")
    assert second.json() == [{"id": 10}, {"id": 11}]

    # Nothing changed: the views are not refreshed again.
    refreshes = app.services.query.views.refreshes
    await sql(app.http, "SELECT 1")
    assert app.services.query.views.refreshes == refreshes

    deleted = await app.http.delete("/catalog/manifest/people")
    assert deleted.status_code == 200
    assert_error(await sql(app.http, "SELECT * FROM people"), 404, "table_not_found")


@pytest.mark.parametrize("write_empty", [True, False], ids=["empty-object", "no-object"])
async def test_an_empty_dataset_is_a_view_with_its_columns(app: App, write_empty: bool) -> None:
    await register_table(app.http, "nobody", people(1).slice(0, 0), write_empty=write_empty)
    rows = await sql(app.http, "SELECT * FROM nobody")
    assert rows.status_code == 200
    assert rows.json() == []
    described = await sql(app.http, "DESCRIBE nobody")
    assert [(r["column_name"], r["column_type"]) for r in described.json()] == [
        ("id", "BIGINT"), ("name", "VARCHAR"), ("score", "DOUBLE"), ("born", "DATE"),
        ("seen", "TIMESTAMP"), ("active", "BOOLEAN"), ("amount", "DECIMAL(10,2)"),
    ]  # fmt: skip


# -- formats --------------------------------------------------------------------


def _normalise(value: Any) -> Any:
    """Values as the JSON response has them (ISO strings, floats for decimals)."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


async def test_every_format_returns_the_same_rows(app: App) -> None:
    table = people(25_000)  # more than one batch
    await register_table(app.http, "people", table)
    query = "SELECT * FROM people ORDER BY id"
    as_json = (await sql(app.http, query)).json()
    assert len(as_json) == 25_000
    expected = [{k: _normalise(v) for k, v in row.items()} for row in table.to_pylist()]
    assert as_json == expected

    ndjson = await sql(app.http, query, format="ndjson")
    assert ndjson.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line) for line in ndjson.text.splitlines()] == expected

    by_accept = await app.http.post(
        "/sql", json={"sql": query}, headers={"Accept": "application/x-ndjson"}
    )
    assert by_accept.content == ndjson.content

    as_csv = await sql(app.http, query, format="csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    reader = csv.DictReader(io.StringIO(as_csv.text))
    csv_rows = list(reader)
    assert len(csv_rows) == 25_000
    assert [int(r["id"]) for r in csv_rows] == table.column("id").to_pylist()
    assert [r["name"] for r in csv_rows] == table.column("name").to_pylist()
    assert [float(r["score"]) for r in csv_rows] == table.column("score").to_pylist()

    arrow = await sql(app.http, query, format="arrow")
    assert arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    assert pa_ipc.open_stream(arrow.content).read_all().to_pylist() == table.to_pylist()

    parquet = await app.http.post(
        "/sql", json={"sql": query}, headers={"Accept": "application/vnd.apache.parquet"}
    )
    assert pq.read_table(io.BytesIO(parquet.content)).to_pylist() == table.to_pylist()

    unknown = await sql(app.http, query, format="xml")
    assert_error(unknown, 400, "unsupported_format")


async def test_json_encoding_follows_the_spec(app: App) -> None:
    response = await app.http.post(
        "/sql",
        json={
            "sql": "SELECT 170141183460469231731687303715884105727::HUGEINT AS big, "
            "12345678901234567.89::DECIMAL(38,2) AS dec, DATE '2024-02-29' AS d, "
            "TIMESTAMP '2024-02-29 13:14:15.25' AS ts, 'nan'::DOUBLE AS nan, "
            "'inf'::DOUBLE AS inf, '\\x00\\xFF'::BLOB AS bin, NULL AS nothing, "
            "[1, 2] AS list, $1 AS param",
            "params": ["ok"],
        },
    )
    assert response.status_code == 200, response.text
    # Exact text: json.loads would round the big numbers.
    assert response.content == (
        b'[{"big":170141183460469231731687303715884105727,"dec":12345678901234567.89,'
        b'"d":"2024-02-29","ts":"2024-02-29T13:14:15.250000","nan":null,"inf":null,'
        b'"bin":"AP8=","nothing":null,"list":[1,2],"param":"ok"}]'
    )


# -- errors ----------------------------------------------------------------------


async def test_bad_requests_are_400_with_duckdbs_message(app: App) -> None:
    syntax = assert_error(await sql(app.http, "SELEC 1"), 400, "invalid_sql")
    assert "syntax error" in syntax["message"]
    binder = assert_error(await sql(app.http, "SELECT nope FROM range(1)"), 400, "invalid_sql")
    assert "nope" in binder["message"]
    assert_error(await app.http.post("/sql", content=b"{not json"), 400, "bad_request")
    assert_error(await app.http.post("/sql", json={"query": "SELECT 1"}), 400, "bad_request")
    assert_error(await sql(app.http, "   "), 400, "invalid_sql")


# -- sandbox ---------------------------------------------------------------------


async def test_the_sandbox_refuses_and_touches_nothing(
    app: App, settings: Settings, tmp_path: Path
) -> None:
    await register_table(app.http, "people", people(3))
    target = tmp_path / "x.csv"
    database = tmp_path / "x.db"
    data = Path(settings.storage.data_dir)
    (data / "_tmp" / "ingest").mkdir(parents=True, exist_ok=True)
    (data / "_tmp" / "ingest" / "upload.csv").write_text("in,flight\n1,2\n")
    if settings.storage.backend == "s3":
        root = f"s3://{settings.storage.s3.bucket}/"
        # A second bucket the credentials can read: '..' must not reach it.
        other = f"t-other-{settings.storage.s3.bucket[2:12]}"
        endpoint = settings.storage.s3.endpoint_url
        async with httpx.AsyncClient(base_url=endpoint) as moto:
            assert (await moto.put(f"/{other}")).status_code == 200
            assert (await moto.put(f"/{other}/secret.txt", content=b"TOPSECRET")).status_code == 200
        climbs = [f"{root}../{other}/secret.txt", f"{root}datasets/../../{other}/secret.txt",
                  f"{root}datasets/%2e%2e/%2E%2E/{other}/secret.txt"]  # fmt: skip
    else:
        root = _duckdb_root(app)
        climbs = [f"{root}datasets/../_catalog/x", f"{root}datasets/%2e%2e/x"]
    logs = data / "datasets" / "people"
    refused = {
        "SELECT * FROM read_csv('/etc/passwd')": "sandbox_violation",
        "SELECT * FROM read_text('/etc/passwd')": "sandbox_violation",
        "SELECT * FROM glob('/*')": "sandbox_violation",
        f"SELECT * FROM read_csv('{settings.storage.data_dir}/../secrets.toml')": (
            "sandbox_violation"
        ),
        "SELECT * FROM read_parquet('s3://another-bucket/x.parquet')": "sandbox_violation",
        "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')": "sandbox_violation",
        f"COPY (SELECT 1) TO '{target}'": "forbidden_statement",
        f"ATTACH '{database}'": "forbidden_statement",
        "INSTALL httpfs": "forbidden_statement",
        "LOAD 'httpfs'": "forbidden_statement",
        "SET enable_external_access = true": "forbidden_statement",
        "RESET lock_configuration": "forbidden_statement",
        "PRAGMA version": "forbidden_statement",
        "PRAGMA threads = 1": "forbidden_statement",
        "CALL pragma_version()": "forbidden_statement",
        "CREATE TABLE t (i INTEGER)": "forbidden_statement",
        "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')": "forbidden_statement",
        "INSERT INTO people SELECT * FROM people": "forbidden_statement",
        "DROP VIEW people": "forbidden_statement",
        "SELECT 1; DROP VIEW people": "forbidden_statement",
        "SELECT 1; SELECT 2": "forbidden_statement",
        f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{target}'": "forbidden_statement",
        "EXPORT DATABASE '/tmp'": "forbidden_statement",
        "DETACH memory": "forbidden_statement",
        "USE system": "forbidden_statement",
        # State changes, other clients' SQL, server paths (ADR 0008 allow-list).
        "FROM enable_logging(['QueryLog'])": "sandbox_violation",
        "SELECT message FROM duckdb_logs()": "sandbox_violation",
        f"FROM enable_logging(['QueryLog'], storage := 'file', storage_path := '{logs}')": (
            "sandbox_violation"
        ),
        "FROM enable_logging(['HTTP'])": "sandbox_violation",
        "FROM disable_logging()": "sandbox_violation",
        "FROM truncate_duckdb_logs()": "sandbox_violation",
        "FROM checkpoint()": "sandbox_violation",
        "FROM force_checkpoint()": "sandbox_violation",
        "FROM system.main.force_checkpoint()": "sandbox_violation",
        "EXPLAIN ANALYZE FROM force_checkpoint()": "sandbox_violation",
        "FROM query('SELECT 1')": "sandbox_violation",
        "FROM duckdb_settings()": "sandbox_violation",
        "FROM duckdb_views()": "sandbox_violation",
        "FROM duckdb_temporary_files()": "sandbox_violation",
        "SELECT current_setting('allowed_directories')": "sandbox_violation",
        "SELECT write_log('x')": "sandbox_violation",
        "SELECT * FROM read_text('/etc/' || 'passwd')": "sandbox_violation",
        # Only datasets/ is readable: not spool files in flight, not the catalog.
        f"SELECT content FROM read_text('{root}_tmp/ingest/*')": "sandbox_violation",
        f"SELECT * FROM read_text('{data}/_tmp/ingest/upload.csv')": "sandbox_violation",
        f"SELECT * FROM glob('{root}_catalog/*')": "sandbox_violation",
        "PIVOT people ON name USING count(*)": "forbidden_statement",
        **{f"SELECT * FROM read_text('{path}')": "sandbox_violation" for path in climbs},
        **{f"FROM '{path}'": "sandbox_violation" for path in climbs},
    }
    for query, code in refused.items():
        response = await sql(app.http, query)
        error = assert_error(response, 403, code)
        if code == "forbidden_statement":
            assert error["details"], query
    named = assert_error(await sql(app.http, "DROP VIEW people"), 403, "forbidden_statement")
    assert named["details"] == {"statement_type": "DROP"}
    assert "DROP" in named["message"]
    assert not target.exists()
    assert not database.exists()
    if settings.storage.backend == "local":  # no log file written into the data
        written = {p.suffix for p in logs.rglob("*") if p.is_file()}
        assert written <= {".parquet", ".json", ".avro"}  # data, Iceberg metadata
    pivot = assert_error(
        await sql(app.http, "PIVOT people ON name USING count(*)"), 403, "forbidden_statement"
    )
    assert "IN list" in pivot["message"]
    # The dataset is still there.
    assert (await sql(app.http, "SELECT count(*) AS n FROM people")).json() == [{"n": 3}]

    # Secrets never come back, whatever is asked.
    probes = [
        "SELECT getenv('AWS_SECRET_ACCESS_KEY')",
        "SELECT * FROM duckdb_secrets()",
        "SELECT * FROM duckdb_secrets(redact=false)",
        "SELECT * FROM which_secret('s3://x/y', 's3')",
        "SELECT * FROM duckdb_settings()",
        "SELECT current_setting('s3_secret_access_key')",
        "SELECT * FROM duckdb_extensions()",
    ]
    for query in probes:
        response = await sql(app.http, query)
        assert response.status_code in (200, 400, 403), (query, response.text)
        assert TEST_SECRET_KEY not in response.text, query
        assert "TOPSECRET" not in response.text, query
    health = await app.http.get("/health")
    assert TEST_SECRET_KEY not in health.text

    # Read statements other than SELECT do run.
    reads = ["DESCRIBE people", "SHOW TABLES", "SUMMARIZE people", "EXPLAIN SELECT 1",
             "VALUES (1)", "WITH a AS (SELECT 1 AS x) SELECT * FROM a", "FROM people",
             "PIVOT people ON active IN (true, false) USING count(*)", "FROM duckdb_tables()",
             f"SELECT count(*) AS n FROM glob('{root}datasets/people/*')"]  # fmt: skip
    for query in reads:
        assert (await sql(app.http, query)).status_code == 200, query


# -- time limit and pool -------------------------------------------------------------

SLOW = "SELECT count(*) FROM range(1000000000) a, range(1000000) b WHERE a.range + b.range = -1"


async def test_a_slow_query_stops_at_the_time_limit_and_the_pool_recovers(
    app: App,
) -> None:
    pool = app.services.query.pool
    response = await app.http.post("/sql?timeout=0.3", json={"sql": SLOW})
    error = assert_error(response, 408, "query_timeout")
    assert error["details"] == {"timeout_seconds": 0.3}
    assert pool.idle == pool.size
    # Every cursor still works (each is borrowed once at least).
    for _ in range(pool.size * 2):
        assert (await sql(app.http, "SELECT 42 AS x")).json() == [{"x": 42}]
    assert pool.idle == pool.size
    # ?timeout= can only lower the configured limit.
    assert app.services.query.timeout_for(10_000) == app.services.query.settings.timeout_seconds
    zero = await app.http.post("/sql?timeout=0", json={"sql": "SELECT 1"})
    assert_error(zero, 400, "bad_request")


# -- missing files --------------------------------------------------


@pytest.fixture
async def parquet_app(settings: Settings) -> AsyncIterator[App]:
    """The app with no in-memory copies: its views always read the Parquet objects."""
    settings.query.hot_dataset_bytes = 0
    services = build_services(settings)
    async with AsyncTestClient(app=create_app(settings, services)) as http:
        yield App(http, services)


async def test_missing_files_are_404_and_a_dataset_object_gone_from_storage_is_502(
    parquet_app: App, settings: Settings
) -> None:
    app = parquet_app
    root = _duckdb_root(app)
    missing = assert_error(
        await sql(app.http, f"SELECT * FROM read_parquet('{root}datasets/nope.parquet')"),
        404,
        "file_not_found",
    )
    assert "nope.parquet" in missing["message"]
    # Neither where the server keeps its files nor the address of its object storage.
    endpoint = settings.storage.s3.endpoint_url.split("://")[-1]
    data_dir = str(Path(settings.storage.data_dir).resolve())  # noqa: ASYNC240 - not I/O
    assert data_dir not in str(missing)
    assert not endpoint or endpoint not in str(missing)
    manifest = await register_table(app.http, "people", people(5))
    [key] = manifest["objects"]
    assert (await sql(app.http, "SELECT count(*) AS n FROM people")).json() == [{"n": 5}]
    # Deleted under the view, behind the catalog's back: the current version still
    # references it. (Had a new version retired it, the answer would be 503
    # dataset_changed: the query read the version that was current when it started.)
    assert (await app.http.delete(f"/storage/delete/{key}")).status_code in (200, 204)
    # (not count(*): with cached Parquet footers it needs no read at all)
    response = await sql(app.http, "SELECT max(name) AS m FROM people")
    if app.services.buckets.info().backend == "s3":
        # DuckDB's external file cache still holds the object it read: no 503 to see.
        assert response.json() == [{"m": 'name "4", \\ \u263a'}]
        return
    # Damaged data, said so: not "retry" (it would fail again), not "no such table".
    error = assert_error(response, 502, "dataset_object_missing")
    assert error["details"] == {"dataset": "people", "key": key}  # the key, never a path
    assert "retry-after" not in response.headers


def _duckdb_root(app: App) -> str:
    """Where the app's store keeps its keys, as DuckDB addresses them."""
    store = app.services.store
    assert isinstance(store, GrantsDuckDBAccess)
    return store.duckdb_grant([]).root


async def test_spill_directories_of_a_killed_process_are_removed_at_start_up(
    settings: Settings,
) -> None:
    """A SIGKILLed server leaves its private spill directory (files DuckDB wrote while a
    query ran past its memory limit); the next start removes it before opening DuckDB."""
    spill_parent = Path(settings.storage.data_dir) / "_tmp" / "duckdb"
    stale = spill_parent / "spill-killed0"
    stale.mkdir(parents=True)
    (stale / "duckdb_temp_storage-0.tmp").write_bytes(b"\0" * 4096)
    other = spill_parent / "not-a-spill-dir"
    other.mkdir()
    services = build_services(settings)
    async with AsyncTestClient(app=create_app(settings, services)) as http:
        assert not stale.exists()
        assert other.exists()  # only what the query module names its own
        [ours] = [p for p in spill_parent.iterdir() if p.name.startswith("spill-")]
        response = await sql(http, "SELECT 1 AS one")
        assert response.json() == [{"one": 1}]
    assert not ours.exists()  # and its own goes at a clean stop
