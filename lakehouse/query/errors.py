"""Errors of the query module, and the one place DuckDB exceptions become ours.

InvalidQuery (400 invalid_sql)          syntax, binder, conversion errors: DuckDB's message
ForbiddenStatement (403 forbidden_statement)  not a read statement, or more than one
SandboxViolation (403 sandbox_violation)      a read that tried to reach outside the data
TableNotFound (404 table_not_found)     an unknown table or dataset, named
FileNotFound (404 file_not_found)       a path the query reads does not exist
UnsupportedFormat (400 unsupported_format)    ?format= names no format we produce
QueryTimeout (408 query_timeout)        ran (or waited for a cursor) past the time limit
DatasetChanged (503 dataset_changed)    a dataset's object vanished mid-query; Retry-After
StorageOutage (503 storage_unavailable) object storage failed (5xx, throttling, a dropped
                                        or stalled connection) past the retry budget, or
                                        a dataset could not be loaded; Retry-After
StorageAccessDenied (502 storage_access_denied)  S3 refused the server's credentials
DatasetObjectMissing (502 dataset_object_missing)  the current version's object is gone
EngineRestarted (503 engine_restarted)  DuckDB hit an internal error; a fresh engine is ready
QueryCancelled (499-ish, never sent)    the client went away; nothing is answered
QueryFailed (500 query_failed)          anything else DuckDB raised (a bug)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import duckdb

from lakehouse.errors import (
    BadRequest,
    Forbidden,
    LakehouseError,
    NotFound,
    RequestTimeout,
    ServiceBusy,
)


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


class FileNotFound(NotFound):
    """A file or object the query names does not exist (DuckDB's message)."""

    code = "file_not_found"


class DatasetChanged(ServiceBusy):
    """An object of a dataset was replaced (re-ingest) and deleted while the query
    read it; running the query again reads the new version."""

    code = "dataset_changed"
    retry_after_seconds = 1


class StorageOutage(ServiceBusy):
    """Object storage failed (5xx, throttling, a connection dropped or stalled) after
    every retry of the budget (ADR 0015), or a dataset's table could not be loaded from
    it. Nothing is wrong with the query or the data: the same query works once storage
    does. ``details.reason``: throttled, server_error, connection, timeout, or catalog_read."""

    code = "storage_unavailable"
    retry_after_seconds = 5


class StorageThrottled(StorageOutage):
    """S3 kept answering "slow down" (429/503) past the retry budget: the same code and
    Retry-After the storage API and ingest answer for throttling (ADR 0015)."""

    code = "storage_throttled"
    retry_after_seconds = 10


def storage_outage(message: str, details: dict[str, object]) -> StorageOutage:
    """The 503 for an outage with ``details["reason"]``: ``storage_throttled`` when S3
    throttled, else ``storage_unavailable``."""
    if details.get("reason") == "throttled":
        return StorageThrottled(message, details=details)
    return StorageOutage(message, details=details)


class StorageAccessDenied(LakehouseError):
    """S3 refused the server's credentials for a dataset's object (a configuration
    fault of the server, not the query's)."""

    status_code = 502
    code = "storage_access_denied"


class DatasetObjectMissing(LakehouseError):
    """An object the dataset's current version references is not in storage (deleted
    behind the catalog's back): the data is damaged, not absent, and retrying does not
    help. ``details``: dataset."""

    status_code = 502
    code = "dataset_object_missing"


class EngineRestarted(ServiceBusy):
    """DuckDB raised an internal/fatal error, which invalidates its database; the
    service opened a fresh one. Retrying is safe."""

    code = "engine_restarted"
    retry_after_seconds = 1


class ShuttingDown(ServiceBusy):
    """The server is stopping; running queries were interrupted."""

    code = "shutting_down"
    retry_after_seconds = 5


class QueryTimeout(RequestTimeout):
    """The query ran, or waited for a free cursor, past its time limit (408, see ADR 0008)."""

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


log = logging.getLogger("lakehouse.query")

_MISSING_FILE = re.compile(r'No files found that match the pattern "([^"]*)"')
_HTTP_404 = re.compile(r"\b404\b")

# httpfs's wording: "... (HTTP 503 Service Unavailable)", "Request returned HTTP 500 for ...".
_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b")
# httpfs's wording of a request that got no answer: "Timeout was reached error for HTTP
# GET to ...", "Failure when receiving data from the peer error for HTTP HEAD to ...".
_HTTP_NO_ANSWER = re.compile(r"error for HTTP [A-Z]+ to ")
_THROTTLED = frozenset({429, 503})
ACCESS_DENIED = "access_denied"
"""``details.reason`` of a 403 from object storage."""

# The scheme and host (with port) of a URL: httpfs names the endpoint it failed to reach,
# an internal address that no response shows (ADR 0015).
_URL_ORIGIN = re.compile(r"\bhttps?://[^/\s\"']+")

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


def without_local_root(error: LakehouseError, root: str) -> LakehouseError:
    """``error`` with the server's local data root cut from its message and details:
    DuckDB names files by absolute path, clients know them by key (``datasets/...``),
    and an error never shows where the server keeps its files."""
    if root:
        error.message = error.message.replace(root, "")
        if isinstance(error.details, dict):
            error.details = {
                name: value.replace(root, "") if isinstance(value, str) else value
                for name, value in error.details.items()
            }
    return error


def is_fatal(exc: BaseException) -> bool:
    """Whether DuckDB invalidated its database (every later query would fail)."""
    return isinstance(exc, duckdb.FatalException | duckdb.InternalException)


def translate(
    exc: BaseException, dataset_path: Callable[[str], bool] | None = None
) -> LakehouseError:
    """Map a DuckDB exception to the error a client sees (the caller raises it ``from exc``).

    ``dataset_path(text)`` tells whether a message names an object of a dataset
    view (now or before the last refresh): such an object missing means the dataset
    changed during the query (503, retry), not a wrong path (404). Interrupts and
    fatal errors are not translated here: only the caller knows their cause and
    handles the engine.
    """
    raw = str(exc)
    message = without_endpoint(raw)
    if isinstance(exc, duckdb.IOException):
        missing = _MISSING_FILE.search(message)
        if is_missing_object(raw):
            if dataset_path is not None and dataset_path(raw):
                log.warning("an object vanished under a query: %s", raw)
                return DatasetChanged("the dataset changed while the query ran; retry")
            details = {"path": missing.group(1)} if missing else None
            return FileNotFound(message, details=details)
        outage = storage_failure(raw)
        if outage is not None:
            log.warning("object storage failed under a query: %s", raw)
            return outage
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


def without_endpoint(message: str) -> str:
    """``message`` with every URL's scheme and host cut (the rest of its path kept)."""
    return _URL_ORIGIN.sub("", message)


def is_missing_object(message: str) -> bool:
    """Whether a DuckDB I/O message says a file or object does not exist."""
    return bool(_MISSING_FILE.search(message) or _HTTP_404.search(message))


def storage_failure(message: str) -> LakehouseError | None:
    """The error for a DuckDB I/O message that says object storage failed (after
    httpfs's retries), or None when it says something else."""
    status = _HTTP_STATUS.search(message)
    code = int(status.group(1)) if status else None
    if code == 403:
        return StorageAccessDenied(
            "object storage refused the server's credentials",
            details={"reason": ACCESS_DENIED},
        )
    if code is not None and (code in _THROTTLED or code >= 500):
        reason = "throttled" if code in _THROTTLED else "server_error"
    elif code is None and _HTTP_NO_ANSWER.search(message):
        reason = "connection"
    else:
        return None
    return storage_outage(
        f"object storage is unavailable ({reason}); retry later", {"reason": reason}
    )
