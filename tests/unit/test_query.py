"""Query units against DuckDB directly: the statement allow-list, the JSON encoders
(Arrow path == msgspec path), the locked database configuration."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from lakehouse.config import QuerySettings
from lakehouse.layout import scratch_dir
from lakehouse.query.encoders import SMALL_BATCH_ROWS, ResultFormat, make_encoder
from lakehouse.query.engine import Database
from lakehouse.query.errors import ForbiddenStatement, InvalidQuery, SandboxViolation
from lakehouse.query.sandbox import check_statement
from lakehouse.storage import DuckDBGrant

ALLOWED = [
    "SELECT 1", "select 1", "  -- a comment\n SELECT 1", "/* c */ (SELECT 1)",
    "WITH a AS (SELECT 1) SELECT * FROM a", "VALUES (1), (2)", "FROM range(3)",
    "DESCRIBE SELECT 1", "SHOW TABLES", "SUMMARIZE SELECT 1", "EXPLAIN SELECT 1",
    "EXPLAIN ANALYZE SELECT 1", "SELECT * FROM pragma_version()", "SELECT 1;",
    "PIVOT (SELECT 1 AS a, 2 AS b) ON a IN (1, 2) USING sum(b)", "FROM duckdb_tables()",
    "SELECT * FROM read_csv(['a.csv', 'b.csv'], header := true)", "SELECT 'a..b' AS dots",
    "FROM 'datasets/x.parquet'", "SELECT sum(x) OVER () FROM range(3) t(x)",
]  # fmt: skip
FORBIDDEN = {
    "PRAGMA version": "PRAGMA",
    "PRAGMA threads = 1": "SET",
    "CALL pragma_version()": "CALL",
    "SET threads = 1": "SET",
    "RESET threads": "SET",
    "COPY (SELECT 1) TO '/tmp/x.csv'": "COPY",
    "ATTACH '/tmp/x.db'": "ATTACH",
    "INSTALL httpfs": "LOAD",
    "LOAD httpfs": "LOAD",
    "CREATE TABLE t (i INTEGER)": "CREATE",
    "CREATE VIEW v AS SELECT 1": "CREATE",
    "INSERT INTO t VALUES (1)": "INSERT",
    "UPDATE t SET i = 1": "UPDATE",
    "DELETE FROM t": "DELETE",
    "DROP VIEW v": "DROP",
    "ALTER VIEW v RENAME TO w": "ALTER",
    "CHECKPOINT": "CALL",
    "BEGIN": "TRANSACTION",
    "PREPARE p AS SELECT 1": "PREPARE",
    "EXPORT DATABASE '/tmp/x'": "EXPORT",
    "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1": "CREATE",
    "EXPLAIN ANALYZE COPY (SELECT 1) TO '/tmp/x'": "COPY",
    "PIVOT (SELECT 1 AS a, 2 AS b) ON a USING sum(b)": "PIVOT",
}
# Reads that call what a read must not (ADR 0008): -> SandboxViolation naming the function.
SANDBOXED = {
    "FROM enable_logging(['QueryLog'])": "enable_logging",
    "FROM enable_logging(['HTTP'], storage := 'file', storage_path := '/tmp/x')": (
        "enable_logging"
    ),
    "SELECT message FROM duckdb_logs()": "duckdb_logs",
    "FROM duckdb_logs_parsed('QueryLog')": "duckdb_logs_parsed",
    "FROM disable_logging()": "disable_logging",
    "FROM truncate_duckdb_logs()": "truncate_duckdb_logs",
    "FROM checkpoint()": "checkpoint",
    "FROM system.main.force_checkpoint()": "force_checkpoint",
    "EXPLAIN ANALYZE FROM force_checkpoint()": "force_checkpoint",
    "FROM enable_profiling()": "enable_profiling",
    "FROM query('SELECT 1')": "query",
    "FROM query_table('t')": "query_table",
    "FROM json_execute_serialized_sql('{}')": "json_execute_serialized_sql",
    "FROM read_duckdb('/tmp/x.db')": "read_duckdb",
    "FROM duckdb_secrets(redact := false)": "duckdb_secrets",
    "FROM which_secret('s3://b/x', 's3')": "which_secret",
    "FROM duckdb_settings()": "duckdb_settings",
    "FROM duckdb_views()": "duckdb_views",
    "FROM duckdb_temporary_files()": "duckdb_temporary_files",
    "FROM range(3), (FROM duckdb_logs())": "duckdb_logs",
    "WITH l AS (FROM duckdb_logs()) SELECT * FROM l": "duckdb_logs",
    "SELECT (SELECT count(*) FROM duckdb_logs())": "duckdb_logs",
    "SELECT current_setting('allowed_directories')": "current_setting",
    "SELECT write_log('x')": "write_log",
    "SELECT setseed(0.5)": "setseed",
    "SELECT * FROM read_text('/etc/' || 'passwd')": "read_text",
    "SELECT * FROM read_text($1)": "read_text",
    "SELECT * FROM read_parquet([concat('a', 'b')])": "read_parquet",
}
CLIMBS = [
    "SELECT * FROM read_text('s3://lake/../other/secret.txt')",
    "SELECT * FROM read_text('s3://lake/datasets/%2e%2e/%2E%2E/other/secret.txt')",
    "SELECT * FROM read_text('s3://lake/datasets/%252e%252e/x')",
    "SELECT * FROM read_parquet(['s3://lake/datasets/a.parquet', 's3://lake/..'])",
    "FROM 's3://lake/../other/x.parquet'",
    "SELECT * FROM glob('/data/datasets/..\\x')",
]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


@pytest.mark.parametrize("sql", ALLOWED)
def test_read_statements_pass(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    assert check_statement(con, sql) == sql


@pytest.mark.parametrize(("sql", "kind"), FORBIDDEN.items())
def test_other_statements_are_refused_by_type(
    con: duckdb.DuckDBPyConnection, sql: str, kind: str
) -> None:
    with pytest.raises(ForbiddenStatement) as refused:
        check_statement(con, sql)
    assert refused.value.details == {"statement_type": kind}
    assert kind in refused.value.message


@pytest.mark.parametrize(("sql", "function"), SANDBOXED.items())
def test_reads_that_reach_past_the_data_are_refused(
    con: duckdb.DuckDBPyConnection, sql: str, function: str
) -> None:
    with pytest.raises(SandboxViolation) as refused:
        check_statement(con, sql)
    assert refused.value.details == {"function": function}
    assert f"{function}()" in refused.value.message


@pytest.mark.parametrize("sql", CLIMBS)
def test_paths_with_a_dot_dot_segment_are_refused(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    with pytest.raises(SandboxViolation, match=r"'\.\.' segment"):
        check_statement(con, sql)


def test_pivot_without_in_names_the_fix(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ForbiddenStatement, match="PIVOT without an IN list") as refused:
        check_statement(con, "PIVOT (SELECT 1 AS a, 2 AS b) ON a USING sum(b)")
    assert "statements" not in refused.value.message


def test_one_statement_per_request(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ForbiddenStatement, match="one statement per request; got 2"):
        check_statement(con, "SELECT 1; SELECT 2")
    with pytest.raises(InvalidQuery, match="no SQL statement"):
        check_statement(con, " ; -- nothing")
    with pytest.raises(InvalidQuery, match="syntax error"):
        check_statement(con, "SELEC 1")


def test_verdicts_are_stable_when_remembered(con: duckdb.DuckDBPyConnection) -> None:
    # Allowed texts are remembered (no re-parse); a refusal is never remembered as allowed,
    # nor does an allowed prefix make a longer text pass.
    for _ in range(3):
        assert check_statement(con, "SELECT 42") == "SELECT 42"
        with pytest.raises(ForbiddenStatement):
            check_statement(con, "SELECT 42; DROP VIEW x")
        with pytest.raises(ForbiddenStatement):
            check_statement(con, "CREATE TABLE t AS SELECT 42")


TYPES_SQL = r"""
SELECT i AS id, 'name ' || i || CASE WHEN i % 5 = 0 THEN ' "q" \ ' || chr(10) || chr(1) ELSE '' END AS s,
       i / 3 AS f, CASE WHEN i % 7 = 0 THEN 'nan'::DOUBLE WHEN i % 11 = 0 THEN 'inf'::DOUBLE END AS odd,
       DATE '2024-01-01' + i::INTEGER AS d, TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (i * 1500) MILLISECOND AS ts,
       TIME '10:00:00' + INTERVAL (i) SECOND AS t, (i * 1.25)::DECIMAL(10, 2) AS dec,
       170141183460469231731687303715884105727::HUGEINT - i AS big, i % 2 = 0 AS b,
       CASE WHEN i % 3 = 0 THEN NULL ELSE 'x' END AS maybe, ('\x00\x01')::BLOB AS bin,
       [i, i + 1] AS list, {'k': i} AS st
FROM range(200) r(i)
"""  # noqa: E501


def _encode(con: duckdb.DuckDBPyConnection, fmt: ResultFormat, batch_rows: int) -> bytes:
    cursor = con.cursor()
    cursor.execute(TYPES_SQL)
    reader = cursor.to_arrow_reader(batch_rows)
    encoder = make_encoder(fmt, reader.schema)
    return b"".join([encoder.encode(batch) for batch in reader] + [encoder.finish()])


def test_arrow_and_msgspec_json_paths_agree(con: duckdb.DuckDBPyConnection) -> None:
    big_batches = json.loads(_encode(con, ResultFormat.JSON, 200))  # the Arrow kernels
    small_batches = json.loads(_encode(con, ResultFormat.JSON, SMALL_BATCH_ROWS - 1))  # msgspec
    assert len(big_batches) == 200
    assert big_batches == small_batches
    row = big_batches[15]
    assert row["s"] == 'name 15 "q" \\ \n\x01'
    assert row["ts"] == "2024-01-01T00:00:22.500000"
    assert big_batches[2]["ts"] == "2024-01-01T00:00:03"
    assert row["t"] == "10:00:15"
    assert row["bin"] == "AAE="
    assert big_batches[7]["odd"] is None
    assert big_batches[11]["odd"] is None
    assert big_batches[1]["big"] == 170141183460469231731687303715884105726
    ndjson = [json.loads(line) for line in _encode(con, ResultFormat.NDJSON, 64).splitlines()]
    assert ndjson == big_batches


def test_empty_results_are_valid_in_every_format(con: duckdb.DuckDBPyConnection) -> None:
    cursor = con.cursor()
    for fmt in ResultFormat:
        cursor.execute("SELECT 1 AS x WHERE false")
        reader = cursor.to_arrow_reader(10)
        encoder = make_encoder(fmt, reader.schema)
        body = b"".join([encoder.encode(b) for b in reader] + [encoder.finish()])
        if fmt is ResultFormat.JSON:
            assert body == b"[]"
        elif fmt is ResultFormat.NDJSON:
            assert body == b""
        elif fmt is ResultFormat.CSV:
            assert body.strip() == b'"x"'
        else:
            assert body  # a schema-only stream / a file with no row groups


def test_the_database_is_locked_but_views_can_be_made(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "datasets").mkdir(parents=True)
    pa_table = pa.table({"i": [1, 2, 3]})
    import pyarrow.parquet as pq

    pq.write_table(pa_table, root / "datasets" / "a.parquet")
    (tmp_path / "outside.csv").write_text("a\n1\n")
    grant = DuckDBGrant(root=f"{root}/", read_prefixes=("",))
    database = Database(QuerySettings(), grant, scratch_dir(root, "duckdb"))
    try:
        admin = database.cursor()
        admin.execute(f"CREATE OR REPLACE VIEW a AS FROM read_parquet('{root}/datasets/a.parquet')")
        user = database.cursor()
        assert user.execute("SELECT sum(i) FROM a").fetchall() == [(6,)]
        with pytest.raises(duckdb.PermissionException):
            user.execute(f"SELECT * FROM read_csv('{tmp_path}/outside.csv')")
        with pytest.raises(duckdb.PermissionException):
            user.execute(f"SELECT * FROM read_csv('{root}/../outside.csv')")
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            user.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            user.execute(f"SET allowed_directories = ['{tmp_path}/']")
    finally:
        database.close()


def _json_rows(con: duckdb.DuckDBPyConnection, fmt: ResultFormat, query: str) -> list[Any]:
    cursor = con.cursor()
    cursor.execute(query)
    reader = cursor.to_arrow_reader(10_000)
    encoder = make_encoder(fmt, reader.schema)
    body = b"".join([encoder.encode(batch) for batch in reader] + [encoder.finish()])
    if fmt is ResultFormat.NDJSON:
        return [json.loads(line) for line in body.splitlines()]
    return list(json.loads(body))


@pytest.mark.parametrize("rows", [1, 100])
@pytest.mark.parametrize("fmt", [ResultFormat.JSON, ResultFormat.NDJSON])
def test_infinite_dates_and_floats_encode_the_same_at_any_row_count(
    con: duckdb.DuckDBPyConnection, rows: int, fmt: ResultFormat
) -> None:
    query = f"""SELECT 'infinity'::DATE AS d, '-infinity'::DATE AS nd,
        'infinity'::TIMESTAMP AS ts, '-infinity'::TIMESTAMPTZ AS tz,
        'infinity'::TIMESTAMP_MS AS ms, DATE '2024-02-29' AS ok, 0.1::FLOAT AS f,
        1e20::DOUBLE AS g, ['infinity'::DATE] AS nested FROM range({rows})"""
    result = _json_rows(con, fmt, query)
    assert len(result) == rows
    assert result[-1] == {
        "d": "infinity", "nd": "-infinity", "ts": "infinity", "tz": "-infinity",
        "ms": "infinity", "ok": "2024-02-29", "f": 0.1, "g": 1e20, "nested": None,
    }  # fmt: skip


def test_float_text_does_not_depend_on_the_row_count(con: duckdb.DuckDBPyConnection) -> None:
    query = "SELECT 0.1::FLOAT AS f, 1e20::DOUBLE AS g, 1.5::DOUBLE AS h FROM range({})"
    cursor = con.cursor()
    bodies = []
    for rows in (1, 100):
        cursor.execute(query.format(rows))
        reader = cursor.to_arrow_reader(10_000)
        encoder = make_encoder(ResultFormat.NDJSON, reader.schema)
        bodies.append(b"".join([encoder.encode(b) for b in reader]).splitlines()[0])
    assert bodies[0] == bodies[1] == b'{"f":0.1,"g":1e+20,"h":1.5}'


async def test_a_manifest_whose_objects_have_no_path_is_skipped(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    import asyncio
    import datetime as dt
    from concurrent.futures import ThreadPoolExecutor

    from lakehouse.catalog import Column, Manifest
    from lakehouse.query.views import ViewRegistrar
    from lakehouse.storage.errors import InvalidKey

    def duckdb_path(key: str) -> str:
        if "bad" in key:
            raise InvalidKey(f"object key {key!r} resolves outside the storage root")
        return str(tmp_path / "f.parquet")

    now = dt.datetime.now(dt.UTC)

    def manifest(name: str, key: str) -> Manifest:
        schema = [Column(name="i", type="BIGINT")]
        return Manifest(name, name, "fp", schema, [key], 1, now, now)

    class FakeCatalog:  # only what ViewRegistrar calls
        async def version(self) -> str:
            return "v1"

        async def list(self) -> list[Manifest]:
            return [manifest("broken", "datasets/bad/x.parquet"), manifest("fine", "datasets/f.p")]

        async def unloaded(self) -> list[str]:
            return []

    import pyarrow.parquet as pq

    pq.write_table(pa.table({"i": [1]}), tmp_path / "f.parquet")
    con = duckdb.connect()
    with ThreadPoolExecutor(1) as executor:
        registrar = ViewRegistrar(FakeCatalog(), con, duckdb_path, executor)  # type: ignore[arg-type]
        await asyncio.wait_for(registrar.ensure_fresh(), 10)
    assert registrar.version == "v1"
    views = {row[0] for row in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    assert "fine" in views
    assert "broken" not in views
    assert any("broken" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


def _grant_and_spill(data_dir: Path) -> tuple[DuckDBGrant, Path]:
    """What the app hands the database for a local store under ``data_dir``."""
    return DuckDBGrant(root=f"{data_dir}/", read_prefixes=("datasets/",)), scratch_dir(
        data_dir, "duckdb"
    )


def _memory_limit(con: duckdb.DuckDBPyConnection) -> str:
    setting = con.execute("SELECT current_setting('memory_limit')").fetchone()
    assert setting is not None
    return str(setting[0])


def test_memory_limit_setting_and_its_default(tmp_path: Path) -> None:
    from lakehouse.query.engine import default_memory_limit

    grant, spill = _grant_and_spill(tmp_path / "data")
    database = Database(QuerySettings(memory_limit="300MB"), grant, spill)
    try:
        assert _memory_limit(database.connection) == "286.1 MiB"  # 300 * 10**6 bytes
    finally:
        database.close()
    # Empty: half the RAM, as DuckDB reads default_memory_limit() (not its own 80%).
    limit_mb = int(default_memory_limit().removesuffix("MB"))
    total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    assert limit_mb == pytest.approx(total_mb / 2, rel=0.01)
    expected = _memory_limit(duckdb.connect(config={"memory_limit": default_memory_limit()}))
    assert expected != _memory_limit(duckdb.connect())
    database = Database(QuerySettings(), grant, spill)
    try:
        assert _memory_limit(database.connection) == expected
    finally:
        database.close()


def test_spill_directory(tmp_path: Path) -> None:
    database = Database(QuerySettings(), *_grant_and_spill(tmp_path / "data"))
    try:
        admin = database.cursor()
        temp = admin.execute("SELECT current_setting('temp_directory')").fetchone()
        assert temp is not None
        assert Path(temp[0]).is_relative_to((tmp_path / "data" / "_tmp" / "duckdb").resolve())
        spill = admin.execute("SELECT current_setting('max_temp_directory_size')").fetchone()
        assert spill is not None
        assert spill[0].startswith("9.3")  # 10GB = 9.3 GiB
    finally:
        database.close()
    assert not Path(temp[0]).exists()


def test_busy_errors_send_their_class_retry_after_unless_given_one() -> None:
    from lakehouse.ingest.errors import IngestBusy
    from lakehouse.query.errors import DatasetChanged, EngineRestarted, ShuttingDown
    from lakehouse.storage.errors import StorageBusy

    sent = {
        cls: cls("busy", details={"x": 1}).headers["Retry-After"]
        for cls in (DatasetChanged, EngineRestarted, ShuttingDown, StorageBusy, IngestBusy)
    }
    assert sent == {
        DatasetChanged: "1", EngineRestarted: "1", ShuttingDown: "5", StorageBusy: "5",
        IngestBusy: "5",
    }  # fmt: skip
    assert DatasetChanged("busy", retry_after_seconds=7).headers == {"Retry-After": "7"}
