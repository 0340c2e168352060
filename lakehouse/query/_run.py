"""One query on one borrowed cursor: its worker steps, its timer, its stream, its release.

Each step (parse, check and execute the statement, then read Arrow batches
and encode them) runs in a worker thread. A timer on the event loop calls
``cursor.interrupt()`` at the query's deadline; cancellation of the awaiting
task (the client went away) interrupts too. Either way the cursor goes back
to the pool only once the worker thread has let go of it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, TypeVar

import duckdb
import pyarrow as pa

from lakehouse.errors import LakehouseError
from lakehouse.query._lifecycle import Engine, EngineLifecycle
from lakehouse.query._time_travel import TimeTravel
from lakehouse.query.encoders import Encoder, ResultFormat, make_encoder
from lakehouse.query.errors import (
    DatasetChanged,
    EngineRestarted,
    QueryCancelled,
    QueryFailed,
    QueryTimeout,
    ShuttingDown,
    StorageOutage,
    is_fatal,
    translate,
    without_local_root,
)
from lakehouse.query.sandbox import check_statement
from lakehouse.query.views import ViewRegistrar

log = logging.getLogger("lakehouse.query")

T = TypeVar("T")
Params = Sequence[Any] | Mapping[str, Any] | None

INTERRUPT_GRACE_SECONDS = 1.0
"""How long past its deadline a query's worker may take to stop once interrupted. DuckDB
stops computing at once, but not a read object storage leaves hanging (httpfs waits out
its own timeout): then the query answers 503 at this point, and its cursor returns to
the pool when the read gives up."""

BATCH_ROWS = 10_000
"""Rows per Arrow batch read from DuckDB (and per Parquet row group of a result)."""
CHUNK_BYTES = 1024 * 1024
"""A worker step encodes batches until it has about this much to send."""


class QueryResult:
    """An answer being produced: ``head`` is ready; ``rest`` yields the remaining
    chunks (None when ``head`` is the whole body)."""

    def __init__(self, media_type: str, head: bytes, rest: AsyncIterator[bytes] | None) -> None:
        self.media_type = media_type
        self.head = head
        self.rest = rest


class Run:
    """One query on one borrowed cursor: its worker steps, its timer, its release."""

    def __init__(
        self,
        lifecycle: EngineLifecycle,
        executor: Executor,
        engine: Engine,
        cursor: duckdb.DuckDBPyConnection,
        timeout: float,
        deadline: float,
    ) -> None:
        """``lifecycle``: told of a fatal error, of a permission error (worth a probe)
        and of the cursor's return (a retired engine may close); ``executor``: the
        worker threads; ``engine``: the one ``cursor`` belongs to. ``timeout``: the
        query's time limit (for the error); ``deadline``: when it ends, in the loop's
        clock (it started before the cursor was borrowed)."""
        self._lifecycle = lifecycle
        self._executor = executor
        self._engine = engine
        self._cursor = cursor
        self._timeout = timeout
        self._deadline = deadline
        self._reason: str | None = None  # "timeout" once the timer fired
        self._in_flight: concurrent.futures.Future[Any] | None = None
        self._released = False
        self._stuck = False  # counted in the pool's ``stuck`` until given back
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
        future = self._executor.submit(work)
        self._in_flight = future
        try:
            async with asyncio.timeout_at(self._deadline + INTERRUPT_GRACE_SECONDS):
                return await asyncio.wrap_future(future, loop=self._loop)
        except TimeoutError:
            raise self._not_stopped() from None
        except asyncio.CancelledError:
            # The client went away: stop DuckDB; release once the thread lets go.
            self._cursor.interrupt()
            raise
        except duckdb.InterruptException as exc:
            raise self._interrupted() from exc
        except duckdb.Error as exc:
            if self._reason == "timeout":
                raise self._timeout_error() from exc
            root = self._engine.local_root
            if is_fatal(exc):
                self._lifecycle.engine_failed(self._engine, exc)
                restarted = EngineRestarted(
                    f"the query engine hit an internal error and was restarted; retry: {exc}"
                )
                raise without_local_root(restarted, root) from exc
            if isinstance(exc, duckdb.PermissionException):
                # Usually the query's own path; but a database whose every statement
                # fails this way is broken: a probe tells, and reopens the engine.
                self._lifecycle.check_soon()
            views = self.views
            error = views.outage_instead(translate(exc, views.names_dataset_object))
            if isinstance(error, DatasetChanged):
                error = await views.missing_instead(error, str(exc))
            raise without_local_root(error, root) from exc
        except OSError as exc:  # an interrupted Arrow stream surfaces as OSError
            if self._reason == "timeout":
                raise self._timeout_error() from exc
            failed = QueryFailed(f"query failed: {exc}")
            raise without_local_root(failed, self._engine.local_root) from exc
        finally:
            if future.done():
                self._in_flight = None

    @property
    def views(self) -> ViewRegistrar:
        """The views of the engine this run's cursor belongs to."""
        return self._engine.views

    async def within_deadline(self, work: Awaitable[T]) -> T:
        """Await ``work`` on the event loop (the catalog, say) within the query's time limit."""
        try:
            async with asyncio.timeout_at(self._deadline):
                return await work
        except TimeoutError:
            raise self._timeout_error() from None

    def _not_stopped(self) -> LakehouseError:
        """Interrupted at the deadline, yet still running past the grace."""
        if self._engine.local_root:
            return self._timeout_error()  # no object storage: a computation slow to stop
        # On object storage: stuck on a read httpfs waits out (ADR 0015).
        if not self._stuck:
            self._stuck = True
            self._engine.pool.stuck += 1
        return StorageOutage(
            f"the query did not finish within its time limit of {self._timeout:g} s "
            "because object storage does not answer; retry later",
            details={"reason": "timeout", "timeout_seconds": self._timeout},
        )

    def _interrupted(self) -> LakehouseError:
        if self._reason == "timeout":
            return self._timeout_error()
        if self._lifecycle.stopping:
            return ShuttingDown("the server is shutting down; the query was stopped")
        return QueryCancelled("the query was cancelled")

    def _timeout_error(self) -> QueryTimeout:
        return QueryTimeout(
            f"the query ran longer than its time limit of {self._timeout:g} s and was stopped",
            details={"timeout_seconds": self._timeout},
        )

    # -- worker-thread side ------------------------------------------------------

    def find_time_travel(self, sql: str, params: Params) -> TimeTravel | None:
        """Check the statement as written (ADR 0008), then find its AT references."""
        check_statement(self._cursor, sql)
        return TimeTravel.parse(self._cursor, sql, params)

    def rewrite_time_travel(self, travel: TimeTravel) -> tuple[str, Params]:
        """The statement with its AT references read from the versions' files."""
        return travel.rewrite(self._cursor, self._engine.address)

    def start(self, sql: str, params: Params, fmt: ResultFormat, *, checked: bool = False) -> bytes:
        """Execute ``sql`` and encode the first chunk; ``checked``: the sandbox has already
        passed the statement the user sent (``sql`` is its time-travel rewrite)."""
        cursor = self._cursor
        self._engine.database.raise_test_fault(sql)
        if not checked:
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

    def stream(self) -> RunStream:
        """The remaining chunks; the cursor is released however the iteration ends."""
        return RunStream(self)

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
        if self._stuck:
            self._engine.pool.stuck -= 1
        self._engine.pool.release(self._cursor)
        self._lifecycle.close_if_idle(self._engine)


class RunStream:
    """Async iterator over a run's remaining chunks. Ending, failing, ``aclose()``
    or being garbage-collected unstarted all release the cursor."""

    def __init__(self, run: Run) -> None:
        self._run = run

    def __aiter__(self) -> RunStream:
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
