"""Time travel in SQL (``FROM w AT (VERSION => n)``, ``AT (TIMESTAMP => t)``): the rewrite
run by a real QueryService (locked DuckDB, real Parquet files under tmp_path) over a small
in-memory catalog that keeps versions, and the rewrite's parts against plain DuckDB."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.catalog import (
    Column,
    DatasetNotFound,
    Manifest,
    TableVersion,
    VersionNotFound,
    validate_dataset_name,
)
from lakehouse.config import QuerySettings
from lakehouse.layout import scratch_dir
from lakehouse.query import (
    InvalidQuery,
    Params,
    QueryService,
    QueryTimeout,
    SandboxViolation,
    TableNotFound,
)
from lakehouse.query._time_travel import TimeTravel, mentions_at_clause
from lakehouse.storage import DuckDBGrant

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
WORKERS = [Column("id", "BIGINT"), Column("name", "VARCHAR")]
WORKERS_WITH_TEAM = [*WORKERS, Column("team", "VARCHAR")]


class VersionedCatalog:
    """What the query module asks of a catalog (``version``, ``list``, ``unloaded``,
    ``as_of``), over versions kept in memory; records every ``as_of`` call."""

    def __init__(self) -> None:
        self.versions: dict[str, list[tuple[dt.datetime, TableVersion]]] = {}
        self.as_of_calls: list[tuple[str, int | None, dt.datetime | None]] = []

    def add(
        self, name: str, committed_at: dt.datetime, schema: list[Column], objects: list[str]
    ) -> None:
        history = self.versions.setdefault(name.lower(), [])
        number = len(history) + 1
        history.append((committed_at, TableVersion(name, number, 1000 + number, schema, objects)))

    async def version(self) -> str:
        return str(sum(len(history) for history in self.versions.values()))

    async def unloaded(self) -> list[str]:
        return []

    async def list(self) -> list[Manifest]:
        manifests = []
        for history in self.versions.values():
            committed_at, table = history[-1]
            manifest = Manifest(
                dataset_id=table.name,
                name=table.name,
                schema_fingerprint="fp",
                schema=table.schema,
                objects=table.objects,
                row_count=0,
                created_at=history[0][0],
                updated_at=committed_at,
                version=table.version,
            )
            manifests.append(manifest)
        return sorted(manifests, key=lambda manifest: manifest.name)

    async def as_of(
        self, name: str, *, version: int | None = None, timestamp: dt.datetime | None = None
    ) -> TableVersion:
        self.as_of_calls.append((name, version, timestamp))
        validate_dataset_name(name)
        history = self.versions.get(name.lower())
        if not history:
            raise DatasetNotFound(f"no dataset named {name!r}")
        if timestamp is not None:
            assert timestamp.tzinfo is not None
            found = [table for committed_at, table in history if committed_at <= timestamp]
        else:
            wanted = version if version is not None else len(history)
            found = [table for _, table in history if table.version == wanted]
        if not found:
            raise VersionNotFound(
                f"dataset {name!r} has versions 1 to {len(history)}",
                details={"name": name, "first_version": 1, "last_version": len(history)},
            )
        return found[-1]


def write(root: Path, key: str, rows: dict[str, list[Any]]) -> str:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows), path)
    return key


def at(hours: float) -> dt.datetime:
    return NOW - dt.timedelta(hours=hours)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def catalog(data_dir: Path) -> VersionedCatalog:
    """``w``: v1 ids 1-2, v2 appends 3, v3 appends 4-5, v4 replaced by nothing (no file),
    v5 = v3's files plus a file with a new column ``team`` (ids 6). ``teams``: v1."""
    a = write(data_dir, "datasets/w/a.parquet", {"id": [1, 2], "name": ["ann", "bob"]})
    b = write(data_dir, "datasets/w/b.parquet", {"id": [3], "name": ["cy"]})
    c = write(data_dir, "datasets/w/c.parquet", {"id": [4, 5], "name": ["di", "ed"]})
    d = write(data_dir, "datasets/w/d.parquet", {"id": [6], "name": ["flo"], "team": ["red"]})
    t = write(data_dir, "datasets/teams/t.parquet", {"id": [1, 3], "team": ["red", "blue"]})
    catalog = VersionedCatalog()
    catalog.add("w", at(5), WORKERS, [a])
    catalog.add("w", at(4), WORKERS, [a, b])
    catalog.add("w", at(3), WORKERS, [a, b, c])
    catalog.add("w", at(2), WORKERS, [])
    catalog.add("w", at(0.5), WORKERS_WITH_TEAM, [a, b, c, d])
    catalog.add("teams", at(6), [Column("id", "BIGINT"), Column("team", "VARCHAR")], [t])
    return catalog


@pytest.fixture
async def service(data_dir: Path, catalog: VersionedCatalog) -> AsyncIterator[QueryService]:
    grant = DuckDBGrant(root=f"{data_dir}/", read_prefixes=("datasets/",))
    service = QueryService(
        QuerySettings(pool_size=2),
        lambda: grant,
        catalog,  # type: ignore[arg-type]  # only what the query module calls
        scratch_dir(data_dir, "duckdb"),
    )
    await service.start()
    yield service
    await service.close()


async def rows(service: QueryService, sql: str, params: Params = None) -> list[dict[str, Any]]:
    result = await service.execute(sql, params)
    assert result.rest is None
    return list(json.loads(result.head))


async def ids(service: QueryService, sql: str, params: Params = None) -> list[int]:
    return [row["id"] for row in await rows(service, sql, params)]


# -- what a query reads ----------------------------------------------------------------


async def test_a_version_reads_that_versions_files(service: QueryService) -> None:
    assert await ids(service, "SELECT id FROM w AT (VERSION => 1) ORDER BY id") == [1, 2]
    assert await ids(service, "SELECT id FROM w AT (version=>3) ORDER BY id") == [1, 2, 3, 4, 5]
    # Without AT: the current version's view, as before.
    assert await ids(service, "SELECT id FROM w ORDER BY id") == [1, 2, 3, 4, 5, 6]


async def test_rows_added_between_two_versions(service: QueryService) -> None:
    sql = "SELECT * FROM w AT (VERSION => 3) EXCEPT SELECT * FROM w AT (VERSION => 2) ORDER BY id"
    assert await rows(service, sql) == [{"id": 4, "name": "di"}, {"id": 5, "name": "ed"}]
    sql = "SELECT id FROM w AT (VERSION => 2) UNION ALL SELECT id FROM w AT (VERSION => 1)"
    assert sorted(await ids(service, sql)) == [1, 1, 2, 2, 3]


async def test_aliases_and_the_dataset_name_still_bind_columns(service: QueryService) -> None:
    sql = """SELECT w.id, old.name AS old_name FROM w AT (VERSION => 3)
             LEFT JOIN w AS old AT (VERSION => 1) ON w.id = old.id ORDER BY w.id"""
    got = await rows(service, sql)
    assert [(row["id"], row["old_name"]) for row in got] == [
        (1, "ann"), (2, "bob"), (3, None), (4, None), (5, None),
    ]  # fmt: skip
    # (A column qualified with the schema, main.w.id, no longer binds: w is an alias now.)
    sql = "SELECT w.id FROM main.w AT (VERSION => 2) WHERE w.id > 2"
    assert await ids(service, sql) == [3]
    sql = "SELECT x.i AS id FROM w AS x(i, n) AT (VERSION => 1) ORDER BY x.i"
    assert await ids(service, sql) == [1, 2]


async def test_time_travel_in_ctes_subqueries_and_joins(service: QueryService) -> None:
    sql = """WITH old AS (SELECT * FROM w AT (VERSION => 1))
             SELECT id FROM w WHERE id NOT IN (SELECT id FROM old)
               AND id IN (SELECT id FROM w AT (VERSION => 3)) ORDER BY id"""
    assert await ids(service, sql) == [3, 4, 5]
    sql = """SELECT w.id, teams.team FROM (SELECT * FROM w AT (VERSION => 2)) AS w
             JOIN teams AT (VERSION => 1) USING (id) ORDER BY w.id"""
    assert await rows(service, sql) == [{"id": 1, "team": "red"}, {"id": 3, "team": "blue"}]


async def test_explain_of_a_time_travel_query(service: QueryService) -> None:
    plan = await rows(service, "EXPLAIN SELECT id FROM w AT (VERSION => 1) WHERE id > 1")
    assert "READ_PARQUET" in plan[0]["explain_value"]


async def test_a_version_with_no_file_is_empty_with_that_versions_columns(
    service: QueryService,
) -> None:
    assert await rows(service, "SELECT * FROM w AT (VERSION => 4)") == []
    described = await rows(service, "DESCRIBE SELECT * FROM w AT (VERSION => 4)")
    assert [(d["column_name"], d["column_type"]) for d in described] == [
        ("id", "BIGINT"), ("name", "VARCHAR"),
    ]  # fmt: skip


async def test_files_written_before_a_new_column_read_null_there(service: QueryService) -> None:
    got = await rows(service, "SELECT id, team FROM w AT (VERSION => 5) ORDER BY id")
    assert [(row["id"], row["team"]) for row in got] == [
        (1, None), (2, None), (3, None), (4, None), (5, None), (6, "red"),
    ]  # fmt: skip


# -- AT (TIMESTAMP => ...) and expressions ------------------------------------------


def _sql_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


async def test_a_timestamp_reads_the_version_current_then(
    service: QueryService, catalog: VersionedCatalog
) -> None:
    # Naive timestamps are UTC.
    between_2_and_3 = _sql_time(at(3.5))
    sql = f"SELECT id FROM w AT (TIMESTAMP => TIMESTAMP '{between_2_and_3}') ORDER BY id"
    assert await ids(service, sql) == [1, 2, 3]
    assert catalog.as_of_calls[-1] == ("w", None, at(3.5))
    # A string is read as a timestamp; one with an offset as that moment.
    sql = f"SELECT id FROM w AT (TIMESTAMP => '{between_2_and_3}') ORDER BY id"
    assert await ids(service, sql) == [1, 2, 3]
    in_plus_2 = at(4.5).astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()
    sql = f"SELECT id FROM w AT (TIMESTAMP => '{in_plus_2}') ORDER BY id"
    assert await ids(service, sql) == [1, 2]
    assert catalog.as_of_calls[-1] == ("w", None, at(4.5))
    sql = f"SELECT id FROM w AT (TIMESTAMP => TIMESTAMPTZ '{in_plus_2}') ORDER BY id"
    assert await ids(service, sql) == [1, 2]


async def test_expressions_are_evaluated(service: QueryService) -> None:
    # An hour ago w was at version 4 (no file); 2.5 hours ago at version 3.
    sql = "SELECT count(*) AS n FROM w AT (TIMESTAMP => now() - INTERVAL 1 HOUR)"
    assert await rows(service, sql) == [{"n": 0}]
    sql = "SELECT count(*) AS n FROM w AT (TIMESTAMP => now() - INTERVAL '150 minutes')"
    assert await rows(service, sql) == [{"n": 5}]
    assert await ids(service, "SELECT id FROM w AT (VERSION => 1 + 1) ORDER BY id") == [1, 2, 3]


async def test_parameters_in_at_clauses(service: QueryService) -> None:
    sql = "SELECT id FROM w AT (VERSION => ?) WHERE id > ? ORDER BY id"
    assert await ids(service, sql, [3, 3]) == [4, 5]
    sql = "SELECT id FROM w AT (VERSION => $2) WHERE id > $1 ORDER BY id"
    assert await ids(service, sql, [1, 2]) == [2, 3]
    sql = "SELECT id FROM w AT (VERSION => $v) WHERE id >= $low ORDER BY id"
    assert await ids(service, sql, {"v": 1, "low": 2}) == [2]
    sql = "SELECT id FROM w AT (VERSION => $1) WHERE id > $1 ORDER BY id"
    assert await ids(service, sql, [2]) == [3]
    sql = "SELECT id FROM w AT (TIMESTAMP => $t::TIMESTAMP) ORDER BY id"
    assert await ids(service, sql, {"t": _sql_time(at(4.5))}) == [1, 2]


async def test_one_catalog_lookup_per_distinct_version(
    service: QueryService, catalog: VersionedCatalog
) -> None:
    sql = """SELECT count(*) AS n FROM w AS a AT (VERSION => 2), w AS b AT (VERSION => 2),
             W AT (VERSION => 1)"""
    assert await rows(service, sql) == [{"n": 3 * 3 * 2}]
    assert sorted(catalog.as_of_calls) == [("W", 1, None), ("w", 2, None)]


# -- errors ----------------------------------------------------------------------------


async def test_an_unknown_version_or_an_earlier_time_is_version_not_found(
    service: QueryService,
) -> None:
    with pytest.raises(VersionNotFound) as missing:
        await service.execute("SELECT * FROM w AT (VERSION => 9)")
    assert missing.value.code == "version_not_found"
    assert missing.value.details == {"name": "w", "first_version": 1, "last_version": 5}
    with pytest.raises(VersionNotFound):
        await service.execute("SELECT * FROM w AT (TIMESTAMP => TIMESTAMP '2001-01-01')")


async def test_an_unknown_dataset_is_table_not_found(service: QueryService) -> None:
    with pytest.raises(TableNotFound) as missing:
        await service.execute("SELECT * FROM nosuch AT (VERSION => 1)")
    assert missing.value.code == "table_not_found"
    assert missing.value.details == {"table": "nosuch"}
    with pytest.raises(TableNotFound):
        await service.execute('SELECT * FROM "not a name" AT (VERSION => 1)')


async def test_at_on_what_is_not_a_dataset_is_invalid(service: QueryService) -> None:
    sql = "WITH c AS (SELECT 1 AS id) SELECT * FROM c AT (VERSION => 1)"
    with pytest.raises(InvalidQuery, match="'c' is a common table expression"):
        await service.execute(sql)
    with pytest.raises(InvalidQuery, match="is not a dataset"):
        await service.execute("SELECT * FROM information_schema.tables AT (VERSION => 1)")
    # The CTE's scope ends with its statement: here w is the dataset.
    sql = """SELECT (WITH w AS (SELECT 1) SELECT count(*) FROM w) AS n
             FROM w AT (VERSION => 1) LIMIT 1"""
    assert await rows(service, sql) == [{"n": 1}]


@pytest.mark.parametrize(
    ("at_clause", "message"),
    [
        ("VERSION => 'two'", "takes a version number"),
        ("VERSION => 1.5", "takes a version number"),
        ("VERSION => NULL", "takes a version number"),
        ("TIMESTAMP => 5", "takes a timestamp"),
        ("TIMESTAMP => 'not a time'", "timestamp"),
        ("TIMESTAMP => CAST(NULL AS TIMESTAMP)", "is NULL"),
        ("TIMESTAMP => 'infinity'::TIMESTAMP", "is NULL"),
        ("VERSION => id", "id"),
    ],
)
async def test_at_expressions_of_the_wrong_kind_are_invalid(
    service: QueryService, at_clause: str, message: str
) -> None:
    with pytest.raises(InvalidQuery, match=message):
        await service.execute(f"SELECT * FROM w AT ({at_clause})")


async def test_a_slow_catalog_counts_against_the_time_limit(
    service: QueryService, catalog: VersionedCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def slow_as_of(name: str, **_: Any) -> TableVersion:
        await asyncio.sleep(10)
        raise AssertionError("not reached")

    monkeypatch.setattr(catalog, "as_of", slow_as_of)
    with pytest.raises(QueryTimeout):
        await service.execute("SELECT * FROM w AT (VERSION => 1)", timeout=0.2)
    assert await rows(service, "SELECT count(*) AS n FROM w") == [{"n": 6}]  # cursor back


async def test_the_alias_after_at_is_duckdbs_syntax_error(service: QueryService) -> None:
    with pytest.raises(InvalidQuery, match="syntax error"):
        await service.execute("SELECT * FROM w AT (VERSION => 1) AS old")


async def test_the_sandbox_checks_the_statement_before_the_catalog_is_asked(
    service: QueryService, catalog: VersionedCatalog
) -> None:
    with pytest.raises(SandboxViolation, match="duckdb_logs"):
        await service.execute("SELECT * FROM w AT (VERSION => 1), duckdb_logs()")
    with pytest.raises(SandboxViolation, match="duckdb_settings"):
        await service.execute(
            "SELECT * FROM w AT (VERSION => (SELECT count(*) FROM duckdb_settings()))"
        )
    assert catalog.as_of_calls == []


async def test_the_rewrite_only_reads_under_the_datasets_prefix(
    service: QueryService, catalog: VersionedCatalog
) -> None:
    catalog.add("evil", at(1), WORKERS, ["_catalog/manifests/w.parquet"])
    from lakehouse.query import QueryFailed

    with pytest.raises(QueryFailed, match="outside 'datasets/'"):
        await service.execute("SELECT * FROM evil AT (VERSION => 1)")


# -- the hot path and the rewrite's parts ---------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT count(*) FROM w", False),
        ("SELECT format('{}', 1), concat(a, b), at_least FROM w", False),
        ("SELECT repeat ('a', 2), FLAT (x) FROM w", False),
        ("SELECT ts AT TIME ZONE 'UTC' FROM w", False),
        ("SELECT * FROM w AT (VERSION => 1)", True),
        ("select * from w at(version=>1)", True),
        ("SELECT * FROM w\nAT\n  (TIMESTAMP => now())", True),
        ("SELECT 'AT (' AS s", True),  # a false positive only costs a parse
        ("AT(", True),
        ("SELECT 1 FROM w\tat (version => 1)", True),
    ],
)
def test_only_statements_that_may_hold_an_at_clause_are_parsed(sql: str, expected: bool) -> None:
    assert mentions_at_clause(sql) is expected


async def test_a_false_positive_runs_unchanged(
    service: QueryService, catalog: VersionedCatalog
) -> None:
    assert await rows(service, "SELECT 'AT (' AS s, count(*) AS n FROM w") == [
        {"s": "AT (", "n": 6}
    ]
    assert catalog.as_of_calls == []


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def test_no_at_reference_gives_no_rewrite(con: duckdb.DuckDBPyConnection) -> None:
    assert TimeTravel.parse(con, "SELECT 'AT (' AS s", None) is None


def test_a_statement_duckdb_cannot_serialize_is_invalid_with_its_message(
    con: duckdb.DuckDBPyConnection,
) -> None:
    with pytest.raises(InvalidQuery, match=r'syntax error at or near "AS"'):
        TimeTravel.parse(con, "SELECT * FROM w AT (VERSION => 1) AS old", None)


async def test_the_rewritten_statement(con: duckdb.DuckDBPyConnection, data_dir: Path) -> None:
    catalog = VersionedCatalog()
    files = [write(data_dir, "datasets/w/a.parquet", {"id": [1], "name": ["a"]})]
    catalog.add("w", at(2), WORKERS, files)
    catalog.add("w", at(1), WORKERS, [])
    sql = "SELECT w.id FROM w AT (VERSION => $1) JOIN w AS e AT (VERSION => 2) ON $2"
    travel = TimeTravel.parse(con, sql, [1, True])
    assert travel is not None
    assert [repr(point) for point in travel.points] == [
        "w AT (VERSION => 1)", "w AT (VERSION => 2)",
    ]  # fmt: skip
    await travel.resolve(catalog)  # type: ignore[arg-type]
    rewritten, params = travel.rewrite(con, lambda key: f"/root/{key}")
    assert rewritten == (
        'SELECT w.id FROM (SELECT id, "name" FROM '
        "read_parquet(main.list_value('/root/datasets/w/a.parquet'), "
        "(union_by_name = CAST('t' AS BOOLEAN)))) AS w INNER JOIN "
        '(SELECT CAST(NULL AS BIGINT) AS id, CAST(NULL AS VARCHAR) AS "name" '
        "WHERE CAST('f' AS BOOLEAN)) AS e ON ($1)"
    )
    assert params == [True]
