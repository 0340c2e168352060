"""QueryService: sandbox, fresh views, a pooled cursor, a time limit, streamed results.

A query's life: ``ensure_fresh`` (one string comparison when nothing
changed) -> borrow a cursor -> in a worker thread: parse and check the
statement, execute, read Arrow batches and encode them -> hand back the
first chunk, and an async iterator for the rest when the result is large.
A statement with ``AT (VERSION => n)`` / ``AT (TIMESTAMP => t)`` is checked
as written, its versions looked up in the catalog, and rewritten to read
their files before it runs (``_time_travel``); any other pays one regex.

The time limit covers the whole run (waiting for a cursor, execution and
streaming): it starts before a cursor is borrowed, bounds that wait, then a
timer on the event loop calls ``cursor.interrupt()`` at the same deadline.
Cancellation of the awaiting task (the client went away) interrupts too.
Either way the cursor goes back to the pool only once the worker thread has
let go of it. Opening, probing and closing DuckDB run in worker threads too.

This module wires the parts: ``_lifecycle`` keeps the engine (database, pool,
views) over time: opened at start, rebuilt after a fatal error, probed for
/health, closed. ``_run`` is one query on one borrowed cursor, and its stream.
``result_cache`` keeps the answers of deterministic statements per catalog
version (ADR 0019): a hit answers once the views are fresh, without a cursor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb

from lakehouse.catalog import Catalog
from lakehouse.config import QuerySettings
from lakehouse.errors import LakehouseError
from lakehouse.query._lifecycle import Engine, EngineLifecycle
from lakehouse.query._run import Params, QueryResult, Run
from lakehouse.query._time_travel import mentions_at_clause
from lakehouse.query.encoders import MEDIA_TYPES, ResultFormat
from lakehouse.query.engine import (
    CursorPool,
    Database,
    remove_stale_spill_dirs,
    warn_of_test_switches,
)
from lakehouse.query.errors import QueryTimeout, StorageOutage, StorageThrottled, TableNotFound
from lakehouse.query.result_cache import CacheKey, Determinism, ResultCache, cache_key, etag
from lakehouse.query.views import CATALOG_READ, ViewRegistrar
from lakehouse.storage import DuckDBGrant

log = logging.getLogger("lakehouse.query")


class QueryService:
    """Runs read-only SQL over the catalog's datasets (see the module docstring)."""

    def __init__(
        self,
        settings: QuerySettings,
        grant: Callable[[], DuckDBGrant],
        catalog: Catalog,
        spill_dir: Path,
    ) -> None:
        """``grant``: asks storage what DuckDB may read, and how (blocking: it may read
        credentials; called in a worker thread each time a database is opened);
        ``spill_dir``: where DuckDB spills."""
        self.settings = settings
        self._issue_grant = grant
        self._catalog = catalog
        self._spill_dir = spill_dir
        self.read_roots: list[str] = []
        """The locations SQL may read, as the last grant said."""
        # One thread per cursor, plus one each for view refreshes, in-memory copies and
        # the health probe: a query never waits for a thread.
        self.executor = ThreadPoolExecutor(
            max_workers=settings.pool_size + 3, thread_name_prefix="duckdb"
        )
        self._lifecycle = EngineLifecycle(self._open_engine, self.executor)
        self.results = ResultCache(settings.result_cache_bytes)
        self._determinism: Determinism | None = None

    def __repr__(self) -> str:
        return f"QueryService(pool_size={self.settings.pool_size})"

    @property
    def pool(self) -> CursorPool:
        """The current engine's cursors."""
        return self._lifecycle.current.pool

    @property
    def views(self) -> ViewRegistrar:
        """The current engine's views."""
        return self._lifecycle.current.views

    async def start(self) -> None:
        """Remove spill files a killed process left, then open and lock the database,
        fill the pool, create the views."""
        warn_of_test_switches()
        removed = await asyncio.to_thread(remove_stale_spill_dirs, self._spill_dir)
        if removed:
            log.info("removed %d stale DuckDB spill director(ies)", removed)
        self._determinism = await asyncio.to_thread(Determinism)
        await self._lifecycle.start()
        log.info(
            "query engine ready",
            extra={"pool_size": self.settings.pool_size, "read_roots": self.read_roots},
        )

    def _open_database(
        self, grant: DuckDBGrant
    ) -> tuple[Database, list[duckdb.DuckDBPyConnection], duckdb.DuckDBPyConnection]:
        """The database, the pool's cursors and the views' cursor (blocking: a worker thread)."""
        if self.settings.pool_size < 1:
            raise ValueError("query.pool_size must be at least 1")
        database = Database(self.settings, grant, self._spill_dir)
        try:
            cursors = [database.cursor() for _ in range(self.settings.pool_size)]
            return database, cursors, database.cursor()
        except BaseException:
            database.close()
            raise

    async def _open_engine(self) -> Engine:
        """A new engine: at start, and after a fatal error (``EngineLifecycle`` decides when)."""
        loop = asyncio.get_running_loop()
        grant = await loop.run_in_executor(self.executor, self._issue_grant)
        database, cursors, admin = await loop.run_in_executor(
            self.executor, self._open_database, grant
        )
        self.read_roots = grant.read_roots
        try:
            views = ViewRegistrar(
                self._catalog, admin, grant.address, self.executor, self.settings.hot_dataset_bytes
            )
            local_root = "" if "://" in grant.root else grant.root
            engine = Engine(database, CursorPool(cursors), views, grant.address, local_root)
            await views.ensure_fresh()
        except BaseException:
            # Not self.executor: close() may be shutting it down (a cancelled rebuild).
            await asyncio.to_thread(database.close)
            raise
        return engine

    def interrupt_running(self) -> None:
        """The server is stopping: interrupt every running query now (they answer 503)
        rather than letting the graceful shutdown wait for them up to their time limit."""
        self._lifecycle.interrupt_running()

    async def close(self) -> None:
        """Close the database; queries still running are interrupted."""
        await self._lifecycle.close()
        if self._determinism is not None:
            await asyncio.to_thread(self._determinism.close)

    async def health(self) -> dict[str, Any]:
        """Pool and view state for /health (no secrets, no SQL); ``status`` comes from
        a real ``SELECT 1`` at most once per HEALTH_CACHE_SECONDS."""
        return {**await self._lifecycle.health(), "result_cache": self.results.stats()}

    def timeout_for(self, requested: float | None) -> float:
        """The time limit of a query: the configured one, or lower on request."""
        limit = self.settings.timeout_seconds
        if requested is not None and 0 < requested < limit:
            return requested
        return limit

    async def execute(
        self,
        sql: str,
        params: Params = None,
        *,
        fmt: ResultFormat = ResultFormat.JSON,
        timeout: float | None = None,  # noqa: ASYNC109 - DuckDB's interrupt enforces it
    ) -> QueryResult:
        """Run one read-only statement and start encoding its result.

        Raises ``InvalidQuery`` (400), ``ForbiddenStatement`` /
        ``SandboxViolation`` (403), ``TableNotFound`` / ``VersionNotFound`` (404),
        ``QueryTimeout`` (408), ``StorageAccessDenied`` / ``DatasetObjectMissing``
        (502), ``StorageOutage`` and the other retry-later errors (503), ``QueryFailed``
        (500). Cancelling the caller
        interrupts the query. When ``rest`` is not None the cursor stays
        borrowed until it has been iterated to the end or closed.
        """
        started = time.perf_counter()
        limit = self.timeout_for(timeout)
        deadline = asyncio.get_running_loop().time() + limit  # waiting for a cursor counts too
        engine = await self._lifecycle.ready()
        await _fresh_views(engine.views, sql, limit, deadline)
        media_type = MEDIA_TYPES[fmt]
        key = None
        if self.results.enabled:
            key = await self._cache_key(engine.views.version, sql, params, fmt)
            if key is not None and (body := self.results.get(key)) is not None:
                return QueryResult(media_type, body, None)
        run = await self._borrow(engine, limit, deadline)
        try:
            checked = False
            if mentions_at_clause(sql):
                sql, params = await self._time_travel(run, sql, params)
                checked = True
            head = await run.step(lambda: run.start(sql, params, fmt, checked=checked))
        except BaseException:
            run.release()
            raise
        if run.done:
            run.release()
            if key is not None:
                self.results.put(key, head)
            log.debug(
                "query answered",
                extra={"ms": round((time.perf_counter() - started) * 1000, 2), "format": fmt},
            )
            return QueryResult(media_type, head, None)
        return QueryResult(media_type, head, run.stream())

    async def etag(self, sql: str, params: Params, fmt: ResultFormat) -> str | None:
        """A strong validator of the answer ``sql`` would give now: it changes with the
        statement, its parameters, the format and the catalog version. None when the
        answer may change without a commit (a volatile function, external files)."""
        limit = self.settings.timeout_seconds
        deadline = asyncio.get_running_loop().time() + limit
        engine = await self._lifecycle.ready()
        await _fresh_views(engine.views, sql, limit, deadline)
        key = await self._cache_key(engine.views.version, sql, params, fmt)
        return None if key is None else etag(key)

    async def _cache_key(
        self, version: str | None, sql: str, params: Params, fmt: ResultFormat
    ) -> CacheKey | None:
        """The result cache's key for ``sql`` at ``version``; None when it is not deterministic.
        A text seen for the first time is parsed in a worker thread."""
        determinism = self._determinism
        if determinism is None or version is None:
            return None
        verdict = determinism.known(sql)
        if verdict is None:
            verdict = await asyncio.to_thread(determinism.verdict, sql)
        return cache_key(verdict, params, fmt, version)

    async def _time_travel(self, run: Run, sql: str, params: Params) -> tuple[str, Params]:
        """``sql`` (checked by the sandbox as written) with its ``AT (VERSION => n)`` /
        ``AT (TIMESTAMP => t)`` references read from those versions' files, and the
        parameters that statement takes. DuckDB work in the query's worker steps; the
        catalog is asked on the event loop."""
        travel = await run.step(lambda: run.find_time_travel(sql, params))
        if travel is None:
            return sql, params
        try:
            await run.within_deadline(travel.resolve(self._catalog))
        except TableNotFound as exc:
            raise run.views.outage_instead(exc) from exc
        except LakehouseError as exc:
            # Storage's own errors, by their stable codes.
            if exc.code not in (StorageOutage.code, StorageThrottled.code):
                raise
            # The catalog read the version's manifests from storage, and that failed.
            raise StorageOutage(
                "the versions' lists of files cannot be read from object storage now; retry later",
                details={"reason": CATALOG_READ},
            ) from exc
        return await run.step(lambda: run.rewrite_time_travel(travel))

    async def _borrow(self, engine: Engine, limit: float, deadline: float) -> Run:
        """A run on one of ``engine``'s cursors, waiting for a free one until ``deadline``."""
        loop = asyncio.get_running_loop()
        pool = engine.pool
        try:
            async with asyncio.timeout_at(deadline):
                cursor = await pool.acquire()
        except TimeoutError:
            raise _waited_too_long(pool, limit) from None
        try:
            if loop.time() >= deadline:  # a cursor came free just too late
                raise _waited_too_long(pool, limit)
            return Run(self._lifecycle, self.executor, engine, cursor, limit, deadline)
        except BaseException:
            pool.release(cursor)
            raise


async def _fresh_views(views: ViewRegistrar, sql: str, limit: float, deadline: float) -> None:
    """The views in step with the catalog, waiting for a refresh until ``deadline``: only
    creating views reads storage, so a refresh that long is stuck on storage."""
    try:
        async with asyncio.timeout_at(deadline):
            await views.ensure_fresh(sql)
    except TimeoutError:
        raise StorageOutage(
            f"the datasets could not be loaded within the query's time limit of {limit:g} s: "
            "object storage answers too slowly or not at all; retry later",
            details={"reason": "timeout", "timeout_seconds": limit},
        ) from None


def _waited_too_long(pool: CursorPool, limit: float) -> LakehouseError:
    if pool.stuck:
        # Connections held by queries stuck on object storage: an outage, not a busy server.
        return StorageOutage(
            f"no connection came free within the query's time limit of {limit:g} s: "
            f"{pool.stuck} of {pool.size} are held by queries object storage does not "
            "answer; retry later",
            details={"reason": "timeout", "timeout_seconds": limit},
        )
    return QueryTimeout(
        f"the query waited for a free connection past its time limit of {limit:g} s",
        details={"timeout_seconds": limit},
    )
