"""Time travel in SQL: ``FROM t AT (VERSION => 3)``, ``AT (TIMESTAMP => ...)`` (issue 12).

DuckDB parses the AT clause of a table reference, but only catalogs that keep
versions can bind it: on our datasets (views) it fails with "Catalog type does
not support time travel". So a statement with AT clauses is rewritten before it
runs, on DuckDB's own parse tree (``json_serialize_sql``), never on its text:

1. ``mentions_at_clause`` (a regex on the text): a statement without ``AT (``
   skips everything below, so queries on current versions pay nothing.
2. ``TimeTravel.parse`` (worker thread; the sandbox has checked the statement
   as written): every ``BASE_TABLE`` reference with an ``at_clause``, wherever
   it sits (joins, CTEs, subqueries, set operations). DuckDB evaluates each AT
   expression on the query's cursor (``3``, ``TIMESTAMP '...'``,
   ``now() - INTERVAL 1 HOUR``, a ``?`` / ``$1`` parameter). A naive timestamp
   is UTC.
3. ``TimeTravel.resolve`` (event loop): ``catalog.as_of`` once per distinct
   dataset and version or time. An unknown dataset is ``TableNotFound`` (as in
   ``FROM``); the catalog's ``VersionNotFound`` passes through.
4. ``TimeTravel.rewrite`` (worker thread): each reference becomes
   ``read_parquet([<that version's objects>], union_by_name = true)`` under the
   reference's alias, or the dataset's name (so ``w.col`` still binds; a column
   qualified with the schema, ``main.w.col``, does not); a version with no
   object becomes a typed empty subquery. Parameters only the
   AT expressions used are dropped and the others renumbered (DuckDB refuses a
   parameter the statement does not use); ``json_deserialize_sql`` gives the
   SQL that runs.

Sandbox (ADR 0008): the rewrite adds only ``read_parquet`` of keys the catalog
gave, under ``datasets/``, addressed by storage's DuckDB grant; the database's
``allowed_directories`` still applies when the statement runs.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import duckdb

from lakehouse.catalog import Catalog, DatasetNotFound, InvalidDatasetName, TableVersion
from lakehouse.errors import LakehouseError
from lakehouse.layout import DATASETS_PREFIX
from lakehouse.query.errors import InvalidQuery, QueryFailed, TableNotFound
from lakehouse.query.sandbox import json_nodes, split_explain
from lakehouse.query.views import empty_select, quote_identifier, quote_literal

if TYPE_CHECKING:  # _run imports this module
    from lakehouse.query._run import Params

# "AT (" in any case; the word boundary is checked by hand: a regex \b costs about three
# times as much on a statement with no candidate, which is every statement on the hot path.
_AT_OPEN = re.compile(r"[Aa][Tt]\s*\(")

# What an AT expression may evaluate to (DuckDB's typeof names).
_INTEGER_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
     "UINTEGER", "UBIGINT", "UHUGEINT"}
)  # fmt: skip
_TIMESTAMPTZ = "TIMESTAMP WITH TIME ZONE"
_NAIVE_TIME_TYPES = frozenset({"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATE"})
# A string ending in a UTC offset ('2026-11-01 10:00:00+02', '...Z') is read as a
# TIMESTAMPTZ; any other string as a TIMESTAMP in UTC (not in the session's time zone).
_OFFSET = r"\d:\d\d(:\d\d(\.\d*)?)?\s*(Z|[+-]\d\d(:?\d\d)?)$"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Qualifiers under which a dataset's view can be named: w, main.w, memory.w, memory.main.w.
_DATASET_QUALIFIERS = frozenset({("", ""), ("", "main"), ("", "memory"), ("memory", "main")})

Address = Callable[[str], str]
"""How DuckDB addresses a storage key (``DuckDBGrant.address``)."""


def mentions_at_clause(sql: str) -> bool:
    """Whether ``sql`` may hold an AT clause (the word ``AT`` then ``(``, in any case): the
    cheap test that keeps every other statement off the rewrite. A false positive
    (``'AT ('`` in a string) only costs a parse."""
    match = _AT_OPEN.search(sql)
    while match is not None:
        start = match.start()
        if start == 0 or not (sql[start - 1].isalnum() or sql[start - 1] == "_"):
            return True
        match = _AT_OPEN.search(sql, match.end())
    return False


class PointInTime:
    """What one AT clause asks of one dataset: a version, or the version current at a time."""

    __slots__ = ("dataset", "timestamp", "version")

    def __init__(
        self, dataset: str, *, version: int | None = None, timestamp: dt.datetime | None = None
    ) -> None:
        self.dataset = dataset
        """The name as the statement wrote it."""
        self.version = version
        self.timestamp = timestamp
        """Timezone-aware (UTC)."""

    @property
    def key(self) -> tuple[str, int | None, dt.datetime | None]:
        return (self.dataset.lower(), self.version, self.timestamp)

    @property
    def clause(self) -> str:
        """The AT clause, as evaluated: ``AT (VERSION => 3)``."""
        if self.timestamp is None:
            return f"AT (VERSION => {self.version})"
        return f"AT (TIMESTAMP => '{self.timestamp.isoformat()}')"

    def __repr__(self) -> str:
        return f"{self.dataset} {self.clause}"


class TimeTravel:
    """One statement's AT references: found (``parse``), resolved against the catalog
    (``resolve``), then replaced (``rewrite``). Single use: ``rewrite`` edits the tree."""

    def __init__(
        self,
        prefix: str,
        document: dict[str, Any],
        refs: list[tuple[dict[str, Any], PointInTime]],
        params: Params,
    ) -> None:
        self._prefix = prefix
        self._document = document
        self._refs = refs
        self._params = params
        self._versions: dict[tuple[str, int | None, dt.datetime | None], TableVersion] = {}

    @property
    def points(self) -> list[PointInTime]:
        """The distinct points in time the statement reads, in order of appearance."""
        distinct: dict[tuple[str, int | None, dt.datetime | None], PointInTime] = {}
        for _, point in self._refs:
            distinct.setdefault(point.key, point)
        return list(distinct.values())

    # -- worker thread ---------------------------------------------------------------

    @classmethod
    def parse(
        cls, cursor: duckdb.DuckDBPyConnection, sql: str, params: Params
    ) -> TimeTravel | None:
        """The AT references of ``sql`` (a checked read statement), their expressions
        evaluated on ``cursor``; None when it has none.

        Raises ``InvalidQuery`` (400): DuckDB cannot serialize the statement, an AT
        clause on a CTE or on something that cannot be a dataset, an AT expression that
        is not a version number / a point in time. ``duckdb.Error`` from evaluating an
        AT expression (the caller translates it)."""
        prefix, statement = split_explain(sql)
        document = _serialize(cursor, statement)
        found = list(_at_references(document))
        if not found:
            return None
        for node, ctes in found:
            _check_target(node, ctes)
        points = _evaluate(cursor, [node for node, _ in found], params)
        refs = [(node, point) for (node, _), point in zip(found, points, strict=True)]
        return cls(prefix, document, refs, params)

    def rewrite(self, cursor: duckdb.DuckDBPyConnection, address: Address) -> tuple[str, Params]:
        """The statement to run and its parameters, once ``resolve`` has run.

        Raises ``QueryFailed`` when the catalog gave a key that is not a dataset object
        or a column type we do not splice."""
        relations: dict[tuple[str, int | None, dt.datetime | None], dict[str, Any]] = {}
        for point in self.points:
            relations[point.key] = _relation(cursor, self._versions[point.key], address)
        for node, point in self._refs:
            replacement = copy.deepcopy(relations[point.key])
            replacement["alias"] = node.get("alias") or node["table_name"]
            replacement["column_name_alias"] = node.get("column_name_alias") or []
            replacement["sample"] = node.get("sample")
            node.clear()
            node.update(replacement)
        params = _bind_parameters(self._document, self._params)
        return self._prefix + _deserialize(cursor, self._document), params

    # -- event loop ------------------------------------------------------------------

    async def resolve(self, catalog: Catalog) -> None:
        """Ask the catalog for every point in time the statement reads.

        Raises ``TableNotFound`` (404) for a name no dataset has; the catalog's
        ``VersionNotFound`` (404, naming the versions that exist) and
        ``CatalogUnavailable`` (502) as they are."""
        for point in self.points:
            try:
                self._versions[point.key] = await catalog.as_of(
                    point.dataset, version=point.version, timestamp=point.timestamp
                )
            except (DatasetNotFound, InvalidDatasetName) as exc:
                raise TableNotFound(
                    f"no table or dataset named {point.dataset!r} to read {point.clause}",
                    details={"table": point.dataset},
                ) from exc


def _serialize(cursor: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
    row = cursor.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    document: dict[str, Any] = json.loads(row[0]) if row else {"error": True}
    if document.get("error"):
        message = document.get("error_message") or "the statement could not be parsed"
        raise InvalidQuery(str(message))
    return document


def _deserialize(cursor: duckdb.DuckDBPyConnection, document: dict[str, Any]) -> str:
    row = cursor.execute("SELECT json_deserialize_sql(?::JSON)", [json.dumps(document)]).fetchone()
    if not row or not row[0]:
        raise QueryFailed("the time-travel rewrite produced no statement")
    return str(row[0])


def _at_references(
    document: dict[str, Any],
) -> Iterator[tuple[dict[str, Any], frozenset[str]]]:
    """Every ``BASE_TABLE`` node with an ``at_clause``, with the (lower-case) names of
    the CTEs in scope there. Depth first, without recursion (deep SQL)."""
    stack: list[tuple[Any, frozenset[str]]] = [(document, frozenset())]
    while stack:
        item, ctes = stack.pop()
        if isinstance(item, dict):
            cte_map = item.get("cte_map")
            if isinstance(cte_map, dict) and cte_map.get("map"):
                ctes = ctes | {str(entry.get("key", "")).lower() for entry in cte_map["map"]}
            if item.get("type") == "BASE_TABLE" and item.get("at_clause"):
                yield item, ctes
            stack.extend((value, ctes) for value in reversed(item.values()))
        elif isinstance(item, list):
            stack.extend((value, ctes) for value in reversed(item))


def _check_target(node: dict[str, Any], ctes: frozenset[str]) -> None:
    name = str(node.get("table_name", ""))
    catalog = str(node.get("catalog_name") or "").lower()
    schema = str(node.get("schema_name") or "").lower()
    if not catalog and not schema and name.lower() in ctes:
        raise InvalidQuery(
            f"AT (...) reads an earlier version of a dataset; {name!r} is a common table "
            "expression (WITH) of this statement, which has no versions",
            details={"table": name},
        )
    if (catalog, schema) not in _DATASET_QUALIFIERS:
        qualified = ".".join(part for part in (catalog, schema, name) if part)
        raise InvalidQuery(
            f"AT (...) reads an earlier version of a dataset; {qualified!r} is not a dataset",
            details={"table": qualified},
        )


def _evaluate(
    cursor: duckdb.DuckDBPyConnection, nodes: list[dict[str, Any]], params: Params
) -> list[PointInTime]:
    """The point in time of each AT reference: DuckDB evaluates the expressions (with the
    parameters they use) as the select list of a statement of their own."""
    clauses = [node["at_clause"] for node in nodes]
    probe = _serialize(cursor, "SELECT 1")
    probe["statements"][0]["node"]["select_list"] = [
        copy.deepcopy(clause["expr"]) for clause in clauses
    ]
    bound = _bind_parameters(probe, params)
    values = _deserialize(cursor, probe)
    columns = ", ".join(f"c{index}" for index in range(len(clauses)))
    source = f"FROM ({values}) AS s({columns})"
    typeofs = ", ".join(f"typeof(c{index})" for index in range(len(clauses)))
    types = cursor.execute(f"SELECT {typeofs} {source}", bound or None).fetchone()
    assert types is not None
    conversions = [
        _conversion(index, str(clause["unit"]).upper(), str(kind))
        for index, (clause, kind) in enumerate(zip(clauses, types, strict=True))
    ]
    row = cursor.execute(f"SELECT {', '.join(conversions)} {source}", bound or None).fetchone()
    assert row is not None
    points = []
    for node, clause, value in zip(nodes, clauses, row, strict=True):
        name = str(node["table_name"])
        unit = str(clause["unit"]).upper()
        if value is None:
            raise InvalidQuery(
                f"AT ({unit} => ...) of {name!r} is NULL (or an infinite time)",
                details={"table": name},
            )
        if unit == "VERSION":
            points.append(PointInTime(name, version=int(value)))
        else:
            points.append(PointInTime(name, timestamp=_EPOCH + dt.timedelta(microseconds=value)))
    return points


def _conversion(index: int, unit: str, kind: str) -> str:
    """SQL turning AT expression ``c<index>`` of DuckDB type ``kind`` into a BIGINT:
    the version, or the time in microseconds since the epoch (UTC)."""
    column = f"c{index}"
    if unit == "VERSION":
        if kind in _INTEGER_TYPES:
            return f"CAST({column} AS BIGINT)"
        raise InvalidQuery(f"AT (VERSION => ...) takes a version number (an integer), not {kind}")
    if unit == "TIMESTAMP":
        if kind == _TIMESTAMPTZ:
            return f"epoch_us({column})"
        if kind in _NAIVE_TIME_TYPES:
            return f"epoch_us(CAST({column} AS TIMESTAMP))"
        if kind == "VARCHAR":
            return (
                f"CASE WHEN regexp_matches({column}, {quote_literal(_OFFSET)}) "
                f"THEN epoch_us(CAST({column} AS TIMESTAMPTZ)) "
                f"ELSE epoch_us(CAST({column} AS TIMESTAMP)) END"
            )
        raise InvalidQuery(f"AT (TIMESTAMP => ...) takes a timestamp, not {kind}")
    raise InvalidQuery(f"AT ({unit} => ...) is not supported: use VERSION or TIMESTAMP")


def _relation(
    cursor: duckdb.DuckDBPyConnection, table: TableVersion, address: Address
) -> dict[str, Any]:
    """The parse-tree node of a table reference reading ``table``'s files."""
    paths = []
    for key in table.objects:
        if not key.startswith(DATASETS_PREFIX):
            raise QueryFailed(
                f"version {table.version} of dataset {table.name!r} names an object outside "
                f"{DATASETS_PREFIX!r}: {key!r}"
            )
        try:
            paths.append(address(key))
        except LakehouseError as exc:  # an invalid key: the catalog's bug, not the query's
            raise QueryFailed(
                f"version {table.version} of dataset {table.name!r} names an invalid "
                f"object key: {exc}"
            ) from exc
    if paths:
        # The version's columns in its own order (files may order them differently).
        files = ", ".join(quote_literal(path) for path in paths)
        columns = ", ".join(quote_identifier(column.name) for column in table.schema)
        sql = f"SELECT * FROM (SELECT {columns} FROM read_parquet([{files}], union_by_name = true))"
    else:
        try:
            sql = f"SELECT * FROM ({empty_select(table.name, table.schema)})"
        except ValueError as exc:
            raise QueryFailed(str(exc)) from exc
    node: dict[str, Any] = _serialize(cursor, sql)["statements"][0]["node"]["from_table"]
    return node


def _bind_parameters(document: dict[str, Any], params: Params) -> Params:
    """The parameters ``document`` still uses, renumbered ``$1..$n`` when positional
    (DuckDB refuses parameters a statement does not use). Unchanged when they do not
    fit the statement: DuckDB's own error then names the problem."""
    if not params:
        return params
    nodes = [node for node in json_nodes(document) if node.get("class") == "PARAMETER"]
    used = {str(node.get("identifier", "")) for node in nodes}
    if isinstance(params, Mapping):
        return {name: value for name, value in params.items() if name in used}
    if not all(ident.isdigit() and 1 <= int(ident) <= len(params) for ident in used):
        return params
    order = sorted(used, key=int)
    renumbered = {old: str(new) for new, old in enumerate(order, start=1)}
    for node in nodes:
        node["identifier"] = renumbered[str(node["identifier"])]
    return [params[int(old) - 1] for old in order]
