"""QueryService: sandbox, fresh views, a pooled cursor, a time limit, streamed results.

A query's life: ``ensure_fresh`` (one string comparison when nothing
changed) -> borrow a cursor -> in a worker thread: parse and check the
statement, execute, read Arrow batches and encode them -> hand back the
first chunk, and an async iterator for the rest when the result is large.

The time limit covers the whole run (waiting for a cursor, execution and
streaming): it starts before a cursor is borrowed, bounds that wait, then a
timer on the event loop calls ``cursor.interrupt()`` at the same deadline.
Cancellation of the awaiting task (the client went away) interrupts too.
Either way the cursor goes back to the pool only once the worker thread has
let go of it. Opening, probing and closing DuckDB run in worker threads too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from lakehouse.catalog import Catalog
from lakehouse.config import QuerySettings
from lakehouse.errors import LakehouseError
from lakehouse.query.encoders import MEDIA_TYPES, Encoder, ResultFormat, make_encoder
from lakehouse.query.engine import CursorPool, Database
from lakehouse.query.errors import (
    EngineRestarted,
    QueryCancelled,
    QueryFailed,
    QueryTimeout,
    ShuttingDown,
    is_fatal,
    translate,
)
from lakehouse.query.sandbox import check_statement
from lakehouse.query.views import ViewRegistrar
from lakehouse.storage import DuckDBGrant

log = logging.getLogger("lakehouse.query")

T = TypeVar("T")
Params = Sequence[Any] | Mapping[str, Any] | None

BATCH_ROWS = 10_000
"""Rows per Arrow batch read from DuckDB (and per Parquet row group of a result)."""
CHUNK_BYTES = 1024 * 1024
"""A worker step encodes batches until it has about this much to send."""
HEALTH_CACHE_SECONDS = 1.0
"""/health runs ``SELECT 1`` at most this often; callers in between get the last answer."""
HEALTH_PROBE_TIMEOUT = 5.0


class _Engine:
    """One database with its pool and views. A fatal DuckDB error breaks it for good;
    the service then opens a new one and retires this one (closed once idle)."""

    def __init__(self, database: Database, pool: CursorPool, views: ViewRegistrar) -> None:
        self.database = database
        self.pool = pool
        self.views = views
        self.broken = False
        self.retired = False
        self.closed = False

    @property
    def idle_and_retired(self) -> bool:
        """Retired, and no query holds one of its cursors: time to close it."""
        return self.retired and self.pool.idle == self.pool.size

    def claim_close(self) -> bool:
        """On the event loop: whether the caller is the one to run ``close`` now.
        A broken engine is never closed (see ``close``)."""
        if self.closed or self.broken:
            return False
        self.closed = True
        return True

    def close(self) -> None:
        """Close the cursors and the database (blocking: a worker thread), after
        ``claim_close``. A database that no longer answers is left open: closing
        connections of a broken database can make DuckDB abort the process, and it
        holds no lock, only memory, until exit."""
        if not self.broken and not self.database.healthy():
            self.broken = True
        if self.broken:
            return
        self.pool.close()
        try:
            self.database.close()
        except duckdb.Error:  # an invalidated database may refuse to close cleanly
            log.debug("closing a database failed", exc_info=True)


def _close_all(engines: list[_Engine]) -> None:
    for engine in engines:
        engine.close()


class QueryResult:
    """An answer being produced: ``head`` is ready; ``rest`` yields the remaining
    chunks (None when ``head`` is the whole body)."""

    def __init__(self, media_type: str, head: bytes, rest: AsyncIterator[bytes] | None) -> None:
        self.media_type = media_type
        self.head = head
        self.rest = rest


class _Run:
    """One query on one borrowed cursor: its worker steps, its timer, its release."""

    def __init__(
        self,
        service: QueryService,
        engine: _Engine,
        cursor: duckdb.DuckDBPyConnection,
        timeout: float,
        deadline: float,
    ) -> None:
        """``timeout``: the query's time limit (for the error); ``deadline``: when it
        ends, in the loop's clock (it started before the cursor was borrowed)."""
        self._service = service
        self._engine = engine
        self._cursor = cursor
        self._timeout = timeout
        self._reason: str | None = None  # "timeout" once the timer fired
        self._in_flight: concurrent.futures.Future[Any] | None = None
        self._released = False
        self._reader: pa.RecordBatchReader | None = None
        self._encoder: Encoder | None = None
        self.done = False
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._timer = loop.call_at(deadline, self._on_timeout)

    def _on_timeout(self) -> None:
        self._reason = "timeout"
        self._cursor.interrupt()

    async def step(self, work: Callable[[], T]) -> T:
        """Run ``work`` in the query executor; translate what DuckDB raises."""
        if self._reason == "timeout":
            raise self._timeout_error()
        # The thread's own future is what ``release`` watches: cancelling the awaiting
        # task cancels only the asyncio wrapper (the thread runs on until interrupted).
        # Cheaper than run_in_executor + shield, which built two more futures per step.
        future = self._service.executor.submit(work)
        self._in_flight = future
        try:
            return await asyncio.wrap_future(future, loop=self._loop)
        except asyncio.CancelledError:
            # The client went away: stop DuckDB; release once the thread lets go.
            self._cursor.interrupt()
            raise
        except duckdb.InterruptException as exc:
            raise self._interrupted() from exc
        except duckdb.Error as exc:
            if self._reason == "timeout":
                raise self._timeout_error() from exc
            if is_fatal(exc):
                self._service.engine_failed(self._engine, exc)
                raise EngineRestarted(
                    f"the query engine hit an internal error and was restarted; retry: {exc}"
                ) from exc
            if isinstance(exc, duckdb.PermissionException):
                # Usually the query's own path; but a database whose every statement
                # fails this way is broken: a probe tells, and reopens the engine.
                self._service.check_soon()
            raise translate(exc, self._engine.views.names_dataset_object) from exc
        except OSError as exc:  # an interrupted Arrow stream surfaces as OSError
            if self._reason == "timeout":
                raise self._timeout_error() from exc
            raise QueryFailed(f"query failed: {exc}") from exc
        finally:
            if future.done():
                self._in_flight = None

    def _interrupted(self) -> LakehouseError:
        if self._reason == "timeout":
            return self._timeout_error()
        if self._service.stopping:
            return ShuttingDown("the server is shutting down; the query was stopped")
        return QueryCancelled("the query was cancelled")

    def _timeout_error(self) -> QueryTimeout:
        return QueryTimeout(
            f"the query ran longer than its time limit of {self._timeout:g} s and was stopped",
            details={"timeout_seconds": self._timeout},
        )

    # -- worker-thread side ------------------------------------------------------

    def start(self, sql: str, params: Params, fmt: ResultFormat) -> bytes:
        cursor = self._cursor
        check_statement(cursor, sql)
        cursor.execute(sql, params if params else None)
        self._reader = cursor.to_arrow_reader(BATCH_ROWS)
        self._encoder = make_encoder(fmt, self._reader.schema)
        return self.produce()

    def produce(self) -> bytes:
        assert self._reader is not None
        assert self._encoder is not None
        out: list[bytes] = []
        size = 0
        while size < CHUNK_BYTES:
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                out.append(self._encoder.finish())
                self.done = True
                break
            chunk = self._encoder.encode(batch)
            out.append(chunk)
            size += len(chunk)
        return b"".join(out)

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # -- event-loop side -----------------------------------------------------------

    def stream(self) -> _RunStream:
        """The remaining chunks; the cursor is released however the iteration ends."""
        return _RunStream(self)

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> None:
        """Give the cursor back, now or when the in-flight worker step finishes."""
        if self._released:
            return
        self._released = True
        self._timer.cancel()
        future = self._in_flight
        if future is not None and not future.done():
            self._cursor.interrupt()
            # The callback runs in the worker thread: hop back to the loop (the pool
            # is an asyncio.Queue).
            future.add_done_callback(lambda _: self._give_back_threadsafe())
        else:
            self._give_back()

    def _give_back_threadsafe(self) -> None:
        # RuntimeError: the loop is closed, and the pool with it.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._give_back)

    def _give_back(self) -> None:
        try:
            self._close_reader()
        except Exception:  # closing a dead reader must not lose the cursor
            log.debug("closing a result reader failed", exc_info=True)
        self._engine.pool.release(self._cursor)
        self._service.close_if_idle(self._engine)


class _RunStream:
    """Async iterator over a run's remaining chunks. Ending, failing, ``aclose()``
    or being garbage-collected unstarted all release the cursor."""

    def __init__(self, run: _Run) -> None:
        self._run = run

    def __aiter__(self) -> _RunStream:
        return self

    async def __anext__(self) -> bytes:
        run = self._run
        if run.done:
            run.release()
            raise StopAsyncIteration
        try:
            return await run.step(run.produce)
        except BaseException:
            run.release()
            raise

    async def aclose(self) -> None:
        self._run.release()

    def __del__(self) -> None:
        # A response that never started streaming (the client left first). The garbage
        # collector may run this in any thread: the release happens on the loop.
        run = self._run
        if not run.released:
            with contextlib.suppress(RuntimeError):  # the loop is closed, the pool with it
                run._loop.call_soon_threadsafe(run.release)


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
        # One thread per cursor, plus one for view refreshes and one for the health
        # probe: a query never waits for a thread.
        self.executor = ThreadPoolExecutor(
            max_workers=settings.pool_size + 2, thread_name_prefix="duckdb"
        )
        self._engine: _Engine | None = None
        self._retired: list[_Engine] = []
        self._rebuild_task: asyncio.Task[None] | None = None
        self._health: tuple[float, str] = (0.0, "starting")
        self._health_lock = asyncio.Lock()
        self.restarts = 0
        self.stopping = False
        self._background: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"QueryService(pool_size={self.settings.pool_size})"

    @property
    def engine(self) -> _Engine:
        if self._engine is None:
            raise QueryFailed("the query service is not started")
        return self._engine

    @property
    def pool(self) -> CursorPool:
        return self.engine.pool

    @property
    def views(self) -> ViewRegistrar:
        return self.engine.views

    async def start(self) -> None:
        """Open and lock the database, fill the pool, create the views."""
        self._engine = await self._open_engine()
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

    async def _open_engine(self) -> _Engine:
        loop = asyncio.get_running_loop()
        grant = await loop.run_in_executor(self.executor, self._issue_grant)
        database, cursors, admin = await loop.run_in_executor(
            self.executor, self._open_database, grant
        )
        self.read_roots = grant.read_roots
        try:
            views = ViewRegistrar(self._catalog, admin, grant.address, self.executor)
            engine = _Engine(database, CursorPool(cursors), views)
            await views.ensure_fresh()
        except BaseException:
            # Not self.executor: close() may be shutting it down (a cancelled rebuild).
            await asyncio.to_thread(database.close)
            raise
        return engine

    def engine_failed(self, engine: _Engine, exc: BaseException) -> None:
        """DuckDB invalidated ``engine``'s database: open a new one in the background
        (queries wait for it) and retire the old one."""
        if engine.broken or engine is not self._engine:
            return
        engine.broken = True
        log.error("the query engine failed; opening a new one: %s", exc)
        self._health = (0.0, "restarting")
        self._rebuild_task = asyncio.get_running_loop().create_task(self._rebuild(engine))

    async def _rebuild(self, old: _Engine) -> None:
        fresh = await self._open_engine()
        self._engine = fresh
        self.restarts += 1
        old.retired = True
        old.pool.interrupt_all()
        self._retired.append(old)
        self.close_if_idle(old)
        self._retired = [e for e in self._retired if not e.closed]
        log.info("query engine reopened", extra={"restarts": self.restarts})

    async def _current_engine(self) -> _Engine:
        engine = self.engine
        if not engine.broken:
            return engine
        task = self._rebuild_task
        if task is None or (task.done() and (task.cancelled() or task.exception())):
            # The last rebuild failed (storage down?): try again for this query.
            task = self._rebuild_task = asyncio.get_running_loop().create_task(
                self._rebuild(engine)
            )
        try:
            await asyncio.shield(task)
        except Exception as exc:
            raise QueryFailed(f"the query engine could not be reopened: {exc}") from exc
        return self.engine

    def interrupt_running(self) -> None:
        """The server is stopping: interrupt every running query now (they answer 503)
        rather than letting the graceful shutdown wait for them up to their time limit."""
        self.stopping = True
        for engine in [e for e in [self._engine, *self._retired] if e is not None]:
            engine.pool.interrupt_all()

    def close_if_idle(self, engine: _Engine) -> None:
        """Close a retired engine, in a worker thread, once no query holds one of its cursors."""
        if engine.idle_and_retired and engine.claim_close():
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(engine.close))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Close the database; queries still running are interrupted."""
        engines = [e for e in [self._engine, *self._retired] if e is not None]
        self.interrupt_running()
        if self._rebuild_task is not None and not self._rebuild_task.done():
            self._rebuild_task.cancel()
        # Waiting for interrupted workers, probing and closing DuckDB are blocking:
        # not on the event loop.
        await asyncio.to_thread(self.executor.shutdown, wait=True, cancel_futures=True)
        closing = [engine for engine in engines if engine.claim_close()]
        await asyncio.to_thread(_close_all, closing)
        # Retired engines being closed in the background, and health probes.
        await asyncio.gather(*self._background, return_exceptions=True)
        self._engine = None
        self._retired = []

    def check_soon(self) -> None:
        """Run the health probe in the background (at most once per cache period)."""
        engine = self._engine
        if engine is not None and not engine.broken:
            task = asyncio.get_running_loop().create_task(self._probe(engine))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def health(self) -> dict[str, Any]:
        """Pool and view state for /health (no secrets, no SQL); ``status`` comes from
        a real ``SELECT 1`` at most once per HEALTH_CACHE_SECONDS."""
        engine = self._engine
        if engine is None:
            return {"status": "stopped"}
        status = await self._probe(engine)
        return {
            "status": status,
            "pool_size": engine.pool.size,
            "idle_connections": engine.pool.idle,
            "views_version": engine.views.version,
            "restarts": self.restarts,
        }

    async def _probe(self, engine: _Engine) -> str:
        async with self._health_lock:
            checked_at, status = self._health
            now = time.monotonic()
            if engine.broken:
                return "restarting"
            if now - checked_at < HEALTH_CACHE_SECONDS:
                return status
            loop = asyncio.get_running_loop()
            try:
                ok = await asyncio.wait_for(
                    loop.run_in_executor(self.executor, engine.database.healthy),
                    HEALTH_PROBE_TIMEOUT,
                )
            except (TimeoutError, RuntimeError):  # too slow, or shutting down
                status = "error"
            else:
                status = "ok"
                if not ok:  # DuckDB answered with an error: the database is gone
                    self.engine_failed(engine, RuntimeError("SELECT 1 failed"))
                    status = "restarting"
            self._health = (time.monotonic(), status)
            return status

    @staticmethod
    def _waited_too_long(limit: float) -> QueryTimeout:
        return QueryTimeout(
            f"the query waited for a free connection past its time limit of {limit:g} s",
            details={"timeout_seconds": limit},
        )

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
        ``SandboxViolation`` (403), ``TableNotFound`` (404),
        ``QueryTimeout`` (408), ``QueryFailed`` (500). Cancelling the caller
        interrupts the query. When ``rest`` is not None the cursor stays
        borrowed until it has been iterated to the end or closed.
        """
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        limit = self.timeout_for(timeout)
        deadline = loop.time() + limit  # waiting for a cursor counts too
        engine = await self._current_engine()
        await engine.views.ensure_fresh()
        pool = engine.pool
        try:
            async with asyncio.timeout_at(deadline):
                cursor = await pool.acquire()
        except TimeoutError:
            raise self._waited_too_long(limit) from None
        try:
            if loop.time() >= deadline:  # a cursor came free just too late
                raise self._waited_too_long(limit)
            run = _Run(self, engine, cursor, limit, deadline)
        except BaseException:
            pool.release(cursor)
            raise
        try:
            head = await run.step(lambda: run.start(sql, params, fmt))
        except BaseException:
            run.release()
            raise
        media_type = MEDIA_TYPES[fmt]
        if run.done:
            run.release()
            log.debug(
                "query answered",
                extra={"ms": round((time.perf_counter() - started) * 1000, 2), "format": fmt},
            )
            return QueryResult(media_type, head, None)
        return QueryResult(media_type, head, run.stream())
