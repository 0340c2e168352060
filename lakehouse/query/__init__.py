"""Query: a DuckDB pool behind a sandboxed, read-only SQL API."""

from lakehouse.query._run import Params, QueryResult
from lakehouse.query.column_stats import column_stats_sql
from lakehouse.query.encoders import ResultFormat, make_encoder
from lakehouse.query.errors import (
    DatasetChanged,
    EngineRestarted,
    FileNotFound,
    ForbiddenStatement,
    InvalidQuery,
    QueryCancelled,
    QueryFailed,
    QueryTimeout,
    SandboxViolation,
    ShuttingDown,
    TableNotFound,
    UnsupportedFormat,
)
from lakehouse.query.fast_path import SqlFastPath
from lakehouse.query.interface import QueryEngine
from lakehouse.query.routes import run_sql as sql_route
from lakehouse.query.routes import run_sql_get as sql_get_route
from lakehouse.query.service import QueryService

__all__ = [
    "DatasetChanged",
    "EngineRestarted",
    "FileNotFound",
    "ForbiddenStatement",
    "InvalidQuery",
    "Params",
    "QueryCancelled",
    "QueryEngine",
    "QueryFailed",
    "QueryResult",
    "QueryService",
    "QueryTimeout",
    "ResultFormat",
    "SandboxViolation",
    "ShuttingDown",
    "SqlFastPath",
    "TableNotFound",
    "UnsupportedFormat",
    "column_stats_sql",
    "make_encoder",
    "sql_get_route",
    "sql_route",
]
