"""Which statements the result cache may keep (DuckDB's parser and function list decide),
and the key texts share (ADR 0019)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lakehouse.query.result_cache import Determinism


@pytest.fixture(scope="module")
def determinism() -> Iterator[Determinism]:
    judge = Determinism()
    yield judge
    judge.close()


def test_the_volatile_set_comes_from_duckdb(determinism: Determinism) -> None:
    # VOLATILE and CONSISTENT_WITHIN_QUERY functions, and a macro over one (pg_sleep).
    for name in ("random", "now", "gen_random_uuid", "nextval", "current_date", "pg_sleep"):
        assert name in determinism.volatile, name
    for name in ("abs", "sum", "upper", "error"):
        assert name not in determinism.volatile, name


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT random()",
        "SELECT * FROM t ORDER BY random()",
        "SELECT nextval('s')",
        "SELECT CURRENT_TIMESTAMP",
        "SELECT x FROM t WHERE d < current_date",
        "SELECT today()",
        "SELECT pg_sleep(0)",
        "SELECT * FROM t USING SAMPLE 10%",
        "SELECT * FROM t AT (TIMESTAMP => now() - INTERVAL 1 HOUR)",
        "SELECT * FROM read_parquet('datasets/t/x.parquet')",
        "SELECT * FROM 'datasets/t/x.parquet'",
        "SELECT * FROM duckdb_functions()",
        "EXPLAIN ANALYZE SELECT 1",
        "SELEC 1",
        "WITH r AS (SELECT uuid() AS u) SELECT * FROM r",
    ],
)
def test_what_is_never_cached(determinism: Determinism, sql: str) -> None:
    assert not determinism.verdict(sql).deterministic


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM t",
        "SELECT state, avg(rate) FROM t WHERE state = ? GROUP BY state",
        "SELECT * FROM t AT (VERSION => 3)",
        "SELECT * FROM t USING SAMPLE 10% (bernoulli, 42)",
        "SELECT i FROM range(10) r(i)",
        "DESCRIBE t",
        "SELECT json_group_object(k, v) FROM t",
    ],
)
def test_what_is_cached(determinism: Determinism, sql: str) -> None:
    assert determinism.verdict(sql).deterministic


def test_texts_differing_in_layout_only_share_a_digest(determinism: Determinism) -> None:
    digest = determinism.verdict("SELECT a, count(*) FROM t GROUP BY a").digest
    same = "select  a,\n COUNT(*) -- per a\n from t group by a"
    assert determinism.verdict(same).digest == digest
    assert determinism.verdict("SELECT A, count(*) FROM t GROUP BY a").digest != digest
    assert determinism.verdict("SELECT a, count(*) FROM t GROUP BY a LIMIT 1").digest != digest
    assert determinism.verdict("SELECT 'x  y'").digest != determinism.verdict("SELECT 'x y'").digest
