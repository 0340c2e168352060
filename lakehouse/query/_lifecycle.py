"""The query engine over time: opened at start, rebuilt after a fatal error, closed; its health.

An engine is one DuckDB database with its pool of cursors and its views. A
fatal DuckDB error breaks it for good: a new one is opened in the background
(queries wait for it) and the broken one is retired, then closed once no query
holds one of its cursors. ``/health`` runs a real ``SELECT 1``, cached for a
moment. Opening, probing and closing DuckDB run in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Executor
from typing import Any

import duckdb

from lakehouse.query.engine import CursorPool, Database
from lakehouse.query.errors import QueryFailed
from lakehouse.query.views import ViewRegistrar

log = logging.getLogger("lakehouse.query")

HEALTH_CACHE_SECONDS = 1.0
"""/health runs ``SELECT 1`` at most this often; callers in between get the last answer."""
HEALTH_PROBE_TIMEOUT = 5.0


class Engine:
    """One database with its pool and views. A fatal DuckDB error breaks it for good;
    the lifecycle then opens a new one and retires this one (closed once idle)."""

    def __init__(
        self,
        database: Database,
        pool: CursorPool,
        views: ViewRegistrar,
        address: Callable[[str], str],
        local_root: str = "",
    ) -> None:
        """``address``: how this database addresses a storage key (the grant's ``address``);
        ``local_root``: the directory keys live under on the local backend ("" on S3),
        cut from error messages."""
        self.database = database
        self.pool = pool
        self.views = views
        self.address = address
        self.local_root = local_root
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


class EngineLifecycle:
    """The engine queries use now, its rebuild after a fatal error, the retired
    engines not closed yet, the cached health probe, and the shutdown of them all."""

    def __init__(self, open_engine: Callable[[], Awaitable[Engine]], executor: Executor) -> None:
        """``open_engine``: opens a new engine, at start and after a fatal error;
        ``executor``: the query threads (the probe runs there), shut down by ``close``."""
        self._open_engine = open_engine
        self._executor = executor
        self._engine: Engine | None = None
        self._retired: list[Engine] = []
        self._rebuild_task: asyncio.Task[None] | None = None
        self._health: tuple[float, str] = (0.0, "starting")
        self._health_lock = asyncio.Lock()
        self.restarts = 0
        self.stopping = False  # an interrupted query then answers "shutting down"
        self._background: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Open the first engine."""
        self._engine = await self._open_engine()

    @property
    def current(self) -> Engine:
        """The engine queries use now (it may be broken: see ``ready``)."""
        if self._engine is None:
            raise QueryFailed("the query service is not started")
        return self._engine

    async def ready(self) -> Engine:
        """The current engine, once it works: a broken one is being rebuilt, so wait
        for that (or start it again, when the last attempt failed)."""
        engine = self.current
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
        return self.current

    def engine_failed(self, engine: Engine, exc: BaseException) -> None:
        """DuckDB invalidated ``engine``'s database: open a new one in the background
        (queries wait for it) and retire the old one."""
        if engine.broken or engine is not self._engine:
            return
        engine.broken = True
        log.error("the query engine failed; opening a new one: %s", exc)
        self._health = (0.0, "restarting")
        self._rebuild_task = asyncio.get_running_loop().create_task(self._rebuild(engine))

    async def _rebuild(self, old: Engine) -> None:
        fresh = await self._open_engine()
        self._engine = fresh
        self.restarts += 1
        old.retired = True
        old.pool.interrupt_all()
        self._retired.append(old)
        self.close_if_idle(old)
        self._retired = [e for e in self._retired if not e.closed]
        log.info("query engine reopened", extra={"restarts": self.restarts})

    def close_if_idle(self, engine: Engine) -> None:
        """Close a retired engine, in a worker thread, once no query holds one of its cursors."""
        if engine.idle_and_retired and engine.claim_close():
            self._in_background(asyncio.to_thread(engine.close))

    def check_soon(self) -> None:
        """Run the health probe in the background (at most once per cache period)."""
        engine = self._engine
        if engine is not None and not engine.broken:
            self._in_background(self._probe(engine))

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        # Kept referenced until done (the loop holds tasks weakly); ``close`` awaits them.
        task = asyncio.get_running_loop().create_task(work)
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
            "hot": engine.views.hot_status(),
            "restarts": self.restarts,
        }

    async def _probe(self, engine: Engine) -> str:
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
                    loop.run_in_executor(self._executor, engine.database.healthy),
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

    def interrupt_running(self) -> None:
        """The server is stopping: interrupt every query running on any engine."""
        self.stopping = True
        for engine in [e for e in [self._engine, *self._retired] if e is not None]:
            engine.pool.interrupt_all()

    async def close(self) -> None:
        """Close every engine; queries still running are interrupted."""
        engines = [e for e in [self._engine, *self._retired] if e is not None]
        self.interrupt_running()
        if self._rebuild_task is not None and not self._rebuild_task.done():
            self._rebuild_task.cancel()
        # Waiting for interrupted workers, probing and closing DuckDB are blocking:
        # not on the event loop.
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        closing = [engine for engine in engines if engine.claim_close()]
        await asyncio.to_thread(_close_all, closing)
        # Retired engines being closed in the background, and health probes.
        await asyncio.gather(*self._background, return_exceptions=True)
        self._engine = None
        self._retired = []


def _close_all(engines: list[Engine]) -> None:
    for engine in engines:
        engine.close()
