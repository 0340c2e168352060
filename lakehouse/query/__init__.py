"""Query: a DuckDB pool behind a sandboxed, read-only SQL API."""

from lakehouse.query._run import QueryResult
from lakehouse.query.encoders import ResultFormat
from lakehouse.query.errors import (
    ForbiddenStatement,
    InvalidQuery,
    QueryCancelled,
    QueryFailed,
    QueryTimeout,
    SandboxViolation,
    TableNotFound,
    UnsupportedFormat,
)
from lakehouse.query.service import QueryService

__all__ = [
    "ForbiddenStatement",
    "InvalidQuery",
    "QueryCancelled",
    "QueryFailed",
    "QueryResult",
    "QueryService",
    "QueryTimeout",
    "ResultFormat",
    "SandboxViolation",
    "TableNotFound",
    "UnsupportedFormat",
]
