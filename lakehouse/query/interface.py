"""The QueryEngine protocol: read-only SQL over the catalog's datasets."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from lakehouse.query._run import Params, QueryResult
from lakehouse.query.encoders import ResultFormat


@runtime_checkable
class QueryEngine(Protocol):
    """Runs one read-only statement at a time per caller, sandboxed and time-limited."""

    async def start(self) -> None:
        """Open and lock the database, create the views. Called once at start-up.

        Raises:
            RuntimeError: the DuckDB extension or the storage grant cannot be used.
        """

    async def close(self) -> None:
        """Interrupt running queries and close the database."""

    def interrupt_running(self) -> None:
        """The server is stopping: stop every running query now (they answer 503)."""

    async def health(self) -> dict[str, Any]:
        """State for /health (never secrets or SQL); ``status`` is ``ok`` when the
        database answers ``SELECT 1``."""

    async def etag(self, sql: str, params: Params, fmt: ResultFormat) -> str | None:
        """A strong HTTP validator of the answer ``sql`` with ``params`` in ``fmt`` would
        give now (it changes with the catalog version), or None when the statement is not
        deterministic (a volatile function such as ``random()`` / ``now()``, files read by
        path). Same errors as ``execute`` for the catalog's state; the SQL is not run."""

    async def execute(
        self,
        sql: str,
        params: Params = None,
        *,
        fmt: ResultFormat = ResultFormat.JSON,
        timeout: float | None = None,  # noqa: ASYNC109 - enforced by DuckDB's interrupt
    ) -> QueryResult:
        """Run one read-only statement and start encoding its result. When ``rest`` of
        the result is not None, iterate it to the end or ``aclose`` it.

        Raises:
            InvalidQuery: the SQL does not parse or bind (400).
            ForbiddenStatement: not a read-only statement (403).
            SandboxViolation: a file, setting or function outside the sandbox (403).
            TableNotFound: no dataset or view by that name (404).
            VersionNotFound: ``AT (VERSION => n)`` / ``AT (TIMESTAMP => t)`` names no
                retained version of the dataset; details name the range (404).
            FileNotFound: a path the query names does not exist (404).
            QueryTimeout: past its time limit, or waited that long for a connection (408).
            StorageAccessDenied, DatasetObjectMissing: S3 refused the server's credentials,
                or an object the current version references is gone (502).
            DatasetChanged, EngineRestarted, ShuttingDown, StorageOutage: retry later (503);
                StorageOutage: object storage failed past the retry budget, or did not
                answer within the time limit (ADR 0015).
            QueryCancelled: the caller was cancelled (the client went away).
            QueryFailed: DuckDB failed otherwise (500).
        """
