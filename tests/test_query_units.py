"""Query units against DuckDB directly: the statement allow-list, the JSON encoders
(Arrow path == msgspec path), the locked database configuration."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from lakehouse.config import QuerySettings, StorageSettings
from lakehouse.query.encoders import SMALL_BATCH_ROWS, ResultFormat, make_encoder
from lakehouse.query.engine import Database
from lakehouse.query.errors import ForbiddenStatement, InvalidQuery
from lakehouse.query.sandbox import check_statement
from lakehouse.storage.secrets import EnvSecretsProvider

ALLOWED = [
    "SELECT 1", "select 1", "  -- a comment\n SELECT 1", "/* c */ (SELECT 1)",
    "WITH a AS (SELECT 1) SELECT * FROM a", "VALUES (1), (2)", "FROM range(3)",
    "DESCRIBE SELECT 1", "SHOW TABLES", "SUMMARIZE SELECT 1", "EXPLAIN SELECT 1",
    "EXPLAIN ANALYZE SELECT 1", "SELECT * FROM pragma_version()", "SELECT 1;",
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
}


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
    database = Database(QuerySettings(), StorageSettings(), EnvSecretsProvider({}), f"{root}/")
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
