"""The DuckDB database: opened once, sandboxed, shared through a pool of cursors.

Set-up order matters (ADR 0005, 0006, 0008): load httpfs from the wheel's
file, run the secret DDL of storage's grant, turn external access off with
``allowed_directories`` = the grant's read roots, then lock the configuration.
Nothing after that (neither our view DDL nor a user's query) can change a
setting; view DDL is not a setting, so it keeps working.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import duckdb

from lakehouse.config import QuerySettings
from lakehouse.query.views import quote_literal as _literal
from lakehouse.storage import DuckDBGrant

log = logging.getLogger("lakehouse.query")

DUCKDB_VERSION = "1.5.5"


def httpfs_extension_path() -> Path:
    """The httpfs extension shipped in the ``duckdb-extension-httpfs`` wheel (never INSTALLed)."""
    import duckdb_extension_httpfs

    path = (
        Path(duckdb_extension_httpfs.__file__).parent
        / "extensions"
        / f"v{DUCKDB_VERSION}"
        / "httpfs.duckdb_extension"
    )
    if not path.is_file():
        raise RuntimeError(
            f"httpfs extension not found at {path}: duckdb and duckdb-extension-httpfs "
            f"must both be {DUCKDB_VERSION} (see ADR 0005)"
        )
    return path


TEST_FATAL_SQL_ENV = "LAKEHOUSE_TEST_FATAL_SQL"
"""Test-only fault switch, unset (off) in every real deployment (ADR 0008): when set
together with ``TESTING_ENV=1``, a query whose text is exactly its value fails as
DuckDB's ``FatalException`` does and leaves its database not answering, like an
invalidated one. DuckDB 1.5.5 offers no reproducible fatal error through a sandboxed
SELECT, and the self-repair must be tested on a real server."""
TESTING_ENV = "LAKEHOUSE_TESTING"
"""The second guard of ``TEST_FATAL_SQL_ENV``: one variable set by accident does not
hand every client a way to restart the engine."""


def fault_switch_sql() -> str | None:
    """The test-only fault switch's statement, when both variables turn it on."""
    if os.environ.get(TESTING_ENV) != "1":
        return None
    return os.environ.get(TEST_FATAL_SQL_ENV) or None


def warn_of_test_switches() -> None:
    """A WARNING at start when the test-only fault switch is on (or set, but ignored)."""
    if fault_switch_sql() is not None:
        log.warning(
            "the test-only fault switch is ON (%s and %s=1): a query of its exact text "
            "restarts the engine; never set these outside tests",
            TEST_FATAL_SQL_ENV,
            TESTING_ENV,
        )
    elif os.environ.get(TEST_FATAL_SQL_ENV):
        log.warning("%s is set but ignored: %s=1 is not", TEST_FATAL_SQL_ENV, TESTING_ENV)


SPILL_DIR_PREFIX = "spill-"
"""Each process's private DuckDB spill directory under the spill parent starts with this."""


def remove_stale_spill_dirs(spill_parent: Path) -> int:
    """Remove the spill directories a killed process left (blocking: a worker thread).
    Called once at start-up, before this process opens a database, so none is in use."""
    if not spill_parent.is_dir():
        return 0
    stale = [p for p in spill_parent.iterdir() if p.name.startswith(SPILL_DIR_PREFIX)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


def default_memory_limit() -> str:
    """Half the machine's RAM (DuckDB's own default is 80%, too much next to the
    server's other work); DuckDB's default when the size is unknown."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return ""
    return f"{max(total // 2 // (1024 * 1024), 256)}MB"


class Database:
    """One in-memory DuckDB database, configured and locked."""

    def __init__(self, query: QuerySettings, grant: DuckDBGrant, spill_parent: Path) -> None:
        """``grant``: what storage lets DuckDB read, and how (ADR 0008, 0013);
        ``spill_parent``: where the private spill directory of this process goes (on the
        data's disk, not the system /tmp, often a small tmpfs)."""
        spill_parent.mkdir(parents=True, exist_ok=True)
        self._temp_dir = Path(tempfile.mkdtemp(prefix=SPILL_DIR_PREFIX, dir=spill_parent)).resolve()
        config: dict[str, str | bool | int | float | list[str]] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_persistent_secrets": False,
            "allow_community_extensions": False,
        }
        if query.threads:
            config["threads"] = query.threads
        memory_limit = query.memory_limit or default_memory_limit()
        if memory_limit:
            config["memory_limit"] = memory_limit
        self.connection = duckdb.connect(":memory:", config=config)
        con = self.connection
        con.execute(f"LOAD {_literal(str(httpfs_extension_path()))}")
        if grant.secret_sql:
            # The statement holds the secret: never log it, never put it in an error.
            try:
                con.execute(grant.secret_sql)
            except duckdb.Error as exc:
                raise RuntimeError(
                    f"could not create the DuckDB S3 secret ({type(exc).__name__})"
                ) from None
        for name, value in grant.settings:  # httpfs's retries and timeouts (ADR 0015)
            # GLOBAL: a plain SET is the session's, and queries run on other cursors.
            con.execute(f"SET GLOBAL {name} = {_setting(value)}")
        # Spill files go to a private directory; it is readable by queries
        # (DuckDB adds it to allowed_directories), so nothing else lives there.
        con.execute(f"SET temp_directory = {_literal(str(self._temp_dir))}")
        con.execute(f"SET max_temp_directory_size = {_literal(query.spill_limit)}")
        # Objects are immutable once written (keys are unique), so caching
        # Parquet footers and HTTP metadata is safe and saves a round trip per query.
        con.execute("SET parquet_metadata_cache = true")
        con.execute("SET enable_http_metadata_cache = true")
        allowed = ", ".join(_literal(root) for root in grant.read_roots)
        con.execute(f"SET allowed_directories = [{allowed}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        self._probe = con.cursor()
        self._test_fatal_sql = fault_switch_sql()
        self._invalidated = False

    def raise_test_fault(self, sql: str) -> None:
        """The test-only fault switch (``TEST_FATAL_SQL_ENV``): ``sql`` being its value
        invalidates this database, as a DuckDB fatal error would."""
        if self._test_fatal_sql is not None and sql == self._test_fatal_sql:
            self._invalidated = True
        if self._invalidated:
            raise duckdb.FatalException("database invalidated by the test-only fault switch")

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection (cursor) to the same database."""
        return self.connection.cursor()

    def healthy(self) -> bool:
        """Whether the database still answers ``SELECT 1``: a FatalException invalidates
        it for good, and a broken logger makes every statement fail.

        Runs on a cursor made at start-up: opening or closing a cursor on a broken
        database can make DuckDB abort the process."""
        try:
            self.raise_test_fault("SELECT 1")
            return self._probe.execute("SELECT 1").fetchone() == (1,)
        except duckdb.Error:
            return False

    def close(self) -> None:
        """Close the database and remove its spill directory (blocking: a worker thread)."""
        try:
            self.connection.close()
        finally:
            shutil.rmtree(self._temp_dir, ignore_errors=True)


def _setting(value: int | float | bool) -> str:
    """A setting's value as DuckDB SQL (the grant's values are numbers and booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


class CursorPool:
    """A fixed set of cursors; a query borrows one and gives it back.

    ``acquire`` waits (on the event loop, without blocking it) until one is
    free. ``size`` never changes; ``idle`` is how many are free now.
    """

    def __init__(self, cursors: Sequence[duckdb.DuckDBPyConnection]) -> None:
        """``cursors``: made by ``Database.cursor`` in a worker thread (DuckDB work
        stays off the event loop)."""
        if not cursors:
            raise ValueError("query.pool_size must be at least 1")
        self.size = len(cursors)
        self.stuck = 0
        """Cursors held by runs that outlived their time limit, stuck in a read object
        storage left hanging; they come back when httpfs gives up."""
        self._cursors = list(cursors)
        self._free: asyncio.Queue[duckdb.DuckDBPyConnection] = asyncio.Queue()
        for cursor in self._cursors:
            self._free.put_nowait(cursor)

    @property
    def idle(self) -> int:
        return self._free.qsize()

    async def acquire(self) -> duckdb.DuckDBPyConnection:
        return await self._free.get()

    def release(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self._free.put_nowait(cursor)

    def interrupt_all(self) -> None:
        """Interrupt whatever every cursor runs (``connection.interrupt()`` on the
        parent does not reach its cursors)."""
        for cursor in self._cursors:
            try:
                cursor.interrupt()
            except duckdb.Error:  # a closed or invalidated connection has nothing to stop
                log.debug("interrupting a cursor failed", exc_info=True)

    def close(self) -> None:
        """Close every cursor (blocking: a worker thread)."""
        for cursor in self._cursors:
            try:
                cursor.close()
            except duckdb.Error:
                log.debug("closing a cursor failed", exc_info=True)
