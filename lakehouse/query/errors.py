"""Errors of the query module, and the one place DuckDB exceptions become ours.

    InvalidQuery (400 invalid_sql)          syntax, binder, conversion errors: DuckDB's message
    ForbiddenStatement (403 forbidden_statement)  not a read statement, or more than one
    SandboxViolation (403 sandbox_violation)      a read that tried to reach outside the data
    TableNotFound (404 table_not_found)     an unknown table or dataset, named
    QueryTimeout (408 query_timeout)        ran past the time limit and was interrupted
    QueryCancelled (499-ish, never sent)    the client went away; nothing is answered
    QueryFailed (500 query_failed)          anything else DuckDB raised (a bug or storage trouble)
"""

from __future__ import annotations

import re

import duckdb

from lakehouse.errors import BadRequest, Forbidden, LakehouseError, NotFound, RequestTimeout


class InvalidQuery(BadRequest):
    """The SQL does not parse or bind; the message is DuckDB's."""

    code = "invalid_sql"


class ForbiddenStatement(Forbidden):
    """A statement the read-only SQL surface does not run; the message names its type."""

    code = "forbidden_statement"


class SandboxViolation(Forbidden):
    """A read that tried to reach a file, URL or setting outside the datasets."""

    code = "sandbox_violation"


class TableNotFound(NotFound):
    """The query names a table (dataset) that does not exist."""

    code = "table_not_found"


class QueryTimeout(RequestTimeout):
    """The query ran past its time limit and was interrupted (408, see ADR 0008)."""

    code = "query_timeout"


class QueryCancelled(LakehouseError):
    """The client disconnected; the query was interrupted. Never reaches a client."""

    status_code = 499
    code = "query_cancelled"


class QueryFailed(LakehouseError):
    """DuckDB failed for a reason that is not the query's fault."""

    code = "query_failed"


class UnsupportedFormat(BadRequest):
    """``?format=`` names no format this API produces."""

    code = "unsupported_format"


_MISSING_TABLE = re.compile(r'Table with name "?([^"\s!]+)"? does not exist')

# Errors whose message is the user's business: the SQL is wrong, not the server.
_USER_ERRORS: tuple[type[duckdb.Error], ...] = (
    duckdb.ParserException,
    duckdb.BinderException,
    duckdb.CatalogException,
    duckdb.ConversionException,
    duckdb.InvalidInputException,
    duckdb.OutOfRangeException,
    duckdb.TypeMismatchException,
    duckdb.ConstraintException,
    duckdb.NotImplementedException,
    duckdb.SyntaxException,
)


def translate(exc: BaseException) -> LakehouseError:
    """Map a DuckDB exception to the error a client sees (the caller raises it ``from exc``).

    Interrupts are not translated here: only the caller knows whether its
    timer or a disconnect caused them.
    """
    message = str(exc)
    if isinstance(exc, duckdb.CatalogException):
        found = _MISSING_TABLE.search(message)
        if found:
            return TableNotFound(
                f"no table or dataset named {found.group(1)!r}: {message}",
                details={"table": found.group(1)},
            )
    if isinstance(exc, duckdb.PermissionException):
        return SandboxViolation(message)
    if isinstance(exc, _USER_ERRORS):
        return InvalidQuery(message)
    return QueryFailed(f"query failed: {message}")
