"""One DuckDB view per dataset, refreshed when the catalog's version changes (ADR 0007).

``ensure_fresh`` is called before every query. When the catalog version is
the one of the last refresh it returns after one string comparison; when
it differs, one task lists the catalog and re-creates the views, and every
concurrent caller waits (within its own time limit) for a refresh that read the
catalog after the caller arrived, so a query sees every commit acknowledged before it.

Creating a view reads its files' Parquet footers. When object storage fails
then (ADR 0015), the dataset is *unavailable*, not absent: it has no view, a
query naming it answers 503 ``storage_unavailable`` (never 404), and the view
is tried again by the next query that names it (one attempt at a time, shared by
the queries waiting), so the first such query after storage recovers answers.
Queries on other datasets never wait for that retry.

Within ``hot_bytes``, a dataset's view is then pointed at an in-memory copy of
its current version, made in the background (``hot``, ADR 0017).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import NamedTuple

import duckdb

from lakehouse.catalog import Catalog, Column, Manifest
from lakehouse.errors import LakehouseError
from lakehouse.query import hot
from lakehouse.query.errors import (
    ACCESS_DENIED,
    DatasetObjectMissing,
    QueryFailed,
    StorageAccessDenied,
    TableNotFound,
    is_missing_object,
    storage_failure,
    storage_outage,
)

log = logging.getLogger("lakehouse.query")

# A column type as the catalog writes it (BIGINT, DECIMAL(38,0), TIMESTAMP WITH TIME ZONE,
# VARCHAR[], STRUCT("a b" BIGINT) ...): letters, digits, spaces, parentheses, commas,
# brackets, and struct field names in double quotes ('""' for a quote inside). Anything
# else is not spliced into our (unsandboxed) DDL.
_SAFE_TYPE = re.compile(r'[A-Za-z](?:[A-Za-z0-9_ ,()\[\]]|"(?:[^"]|"")*")*')

KNOWN_PATHS_MAX = 100_000
"""Object paths remembered from views (current and replaced ones), to tell a dataset
object deleted under a running query from a wrong path in the user's SQL."""


CATALOG_READ = "catalog_read"
"""Why a dataset that exists has no view when the catalog could not load its table."""
OBJECT_MISSING = "object_missing"
"""Why a dataset has no view when an object its current version references is gone."""
_NOT_RETRIED = frozenset({CATALOG_READ, OBJECT_MISSING})
"""Reasons a query naming the dataset does not retry its view for: they change with the
catalog (a poll loads the table; a new version replaces the missing object)."""


def quote_identifier(name: str) -> str:
    """A DuckDB identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A DuckDB string literal."""
    return "'" + value.replace("'", "''") + "'"


def view_sql(manifest: Manifest, paths: Sequence[str]) -> str:
    """``CREATE OR REPLACE VIEW`` for one dataset; ``paths``: its objects as DuckDB reads them."""
    name = quote_identifier(manifest.name)
    if paths:
        return f"CREATE OR REPLACE VIEW {name} AS {_columns(manifest)} FROM {_files(paths)}"
    # No object (nothing to read_parquet): still a view with the dataset's columns.
    return f"CREATE OR REPLACE VIEW {name} AS {empty_select(manifest.name, manifest.schema)}"


def _columns(manifest: Manifest) -> str:
    # The table's columns, in its order: files of older versions may lack columns
    # added since (NULL there, by name) or hold columns dropped since.
    return "SELECT " + ", ".join(quote_identifier(column.name) for column in manifest.schema)


def _files(paths: Sequence[str]) -> str:
    files = ", ".join(quote_literal(path) for path in paths)
    union = ", union_by_name = true" if len(paths) > 1 else ""
    return f"read_parquet([{files}]{union})"


def empty_select(dataset: str, schema: Sequence[Column]) -> str:
    """A ``SELECT`` of no rows with ``schema``'s columns and types: a dataset (or one of
    its versions) with no object. Raises ``ValueError`` for a type we do not splice."""
    columns = []
    for column in schema:
        if not _SAFE_TYPE.fullmatch(column.type):
            raise ValueError(f"unsafe column type {column.type!r} in dataset {dataset!r}")
        columns.append(f"CAST(NULL AS {column.type}) AS {quote_identifier(column.name)}")
    select = ", ".join(columns) if columns else "NULL AS empty"
    return f"SELECT {select} WHERE false"


class Source(NamedTuple):
    """A view over a dataset version's Parquet objects."""

    fingerprint: str
    view: str  # quoted
    columns: str  # SELECT ...
    paths: list[str]

    def select(self) -> str:
        return f"{self.columns} FROM {_files(self.paths)}"


class HotCopy(NamedTuple):
    """The in-memory copy a view reads."""

    fingerprint: str
    table: str
    bytes: int


class ViewRegistrar:
    """Keeps the database's views in step with the catalog."""

    def __init__(
        self,
        catalog: Catalog,
        admin: duckdb.DuckDBPyConnection,
        duckdb_path: Callable[[str], str],
        executor: Executor,
        hot_bytes: int = 0,
    ) -> None:
        """``hot_bytes``: the memory budget of in-memory copies (0: none)."""
        self._catalog = catalog
        self._admin = admin  # used only by the refresh task, never by user SQL
        self._duckdb_path = duckdb_path
        self._executor = executor
        self._refreshing: asyncio.Task[None] | None = None
        self._version: str | None = None
        self._views: dict[str, str] = {}  # lower-case name -> fingerprint of its manifest
        self._paths: OrderedDict[str, None] = OrderedDict()  # every object path of a view
        self._current: dict[str, list[str]] = {}  # lower-case name -> its view's paths
        self._keys: dict[str, str] = {}  # a current view's path -> its storage key
        # lower-case name -> why its view is missing: storage failed (503), or an object of
        # its current version is gone ("object_missing", 502); retried by the next query.
        self._unavailable: dict[str, str] = {}
        # lower-case name -> the fingerprint whose object was missing: not retried until
        # the dataset's manifest changes (a retry would only fail the same way).
        self._missing: dict[str, str] = {}
        self._tasks_started = 0  # refresh tasks started so far
        self._task_number = 0  # which of them ``_refreshing`` is
        self.refreshes = 0
        # View DDL runs in worker threads: the refresh and the copier's switch to a copy.
        self._ddl = threading.Lock()
        self._hot_budget = hot_bytes
        # lower-case name -> what its view reads, while that is Parquet objects: what the
        # copier may copy; and the copies views read.
        self._sources: dict[str, Source] = {}
        self._hot: dict[str, HotCopy] = {}
        self._not_hot: set[str] = set()  # fingerprints that do not fit, or failed to copy
        self._copier: asyncio.Future[None] | None = None
        self._copier_cursor: duckdb.DuckDBPyConnection | None = None

    def names_dataset_object(self, text: str) -> bool:
        """Whether ``text`` (an error message) names an object some view read."""
        return any(path in text for path in list(self._paths))

    def hot_status(self) -> dict[str, object]:
        """Which datasets queries read from memory, and the bytes their copies take."""
        copies = dict(self._hot)
        return {
            "datasets": sorted(copies),
            "bytes": sum(copy.bytes for copy in copies.values()),
            "budget_bytes": self._hot_budget,
        }

    @property
    def version(self) -> str | None:
        """The catalog version the views reflect."""
        return self._version

    def outage_instead(self, error: LakehouseError) -> LakehouseError:
        """``error``, unless it says a table does not exist that is only unavailable
        (its view could not be created while storage failed): then a 503."""
        if not isinstance(error, TableNotFound) or not isinstance(error.details, dict):
            return error
        name = str(error.details.get("table", "")).lower()
        reason = self._unavailable.get(name)
        if reason is None:
            return error
        if reason == OBJECT_MISSING:
            return _object_missing(name)
        if reason == ACCESS_DENIED:
            return StorageAccessDenied(
                f"dataset {name!r} cannot be read: object storage refused the server's credentials",
                details={"dataset": name, "reason": reason},
            )
        return storage_outage(
            f"dataset {name!r} cannot be read now: object storage failed ({reason}); retry later",
            {"dataset": name, "reason": reason},
        )

    async def missing_instead(self, error: LakehouseError, message: str) -> LakehouseError:
        """``error`` (an object vanished under the query: retry), unless the object is
        still part of its dataset's current version: then the data is damaged (502)."""
        if await self._catalog.version() != self._version:
            return error  # the dataset changed: a retry reads the new version
        for name, paths in self._current.items():
            for path in paths:
                if path in message:
                    return _object_missing(name, self._keys.get(path, ""))
        return error

    async def ensure_fresh(self, sql: str = "") -> None:
        """Re-create the views if the catalog changed since the last refresh, and try
        again the unavailable views ``sql`` names. Returns once the views reflect at
        least the catalog version seen on entry (a refresh that read the catalog before
        then may miss the caller's own commit, so it is not enough). Cancelling the
        caller (its time limit) does not stop the refresh: the next caller waits for it."""
        entered = self._tasks_started
        if await self._catalog.version() == self._version and not self._retry_named(sql):
            return
        while True:
            task = self._refreshing
            if task is None or task.done():
                task = self._start_refresh()
            elif self._task_number <= entered:
                # Started before this call: it may have read the catalog before the
                # caller's commit. Wait for it (one refresh at a time); unless it read
                # the version there is now (and retried what it could), start anew.
                await asyncio.shield(task)
                if await self._catalog.version() == self._version:
                    return
                continue
            await asyncio.shield(task)
            return

    def _start_refresh(self) -> asyncio.Task[None]:
        self._tasks_started += 1
        self._task_number = self._tasks_started
        task = self._refreshing = asyncio.get_running_loop().create_task(self._refresh())
        task.add_done_callback(_retrieve_exception)
        return task

    def _retry_named(self, sql: str) -> bool:
        """Whether ``sql`` names a dataset whose view storage failed to create: only such a
        query waits for the retry (a dataset damaged or unloadable from the catalog waits
        for the catalog to change; a query on healthy datasets never waits)."""
        for name, reason in list(self._unavailable.items()):
            if reason in _NOT_RETRIED:
                continue
            if re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", sql, re.IGNORECASE):
                return True
        return False

    async def _refresh(self) -> None:
        # Read before listing: a change landing meanwhile refreshes again next time.
        version = await self._catalog.version()
        manifests = await self._catalog.list()
        unloaded = await self._catalog.unloaded()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._apply, manifests, unloaded)
        self._version = version
        self.refreshes += 1
        if self._hot_budget > 0 and (self._copier is None or self._copier.done()):
            self._copier = loop.run_in_executor(self._executor, self._copy_hot)
            self._copier.add_done_callback(_retrieve_exception)

    def _apply(self, manifests: list[Manifest], unloaded: list[str]) -> None:
        with self._ddl:
            self._apply_locked(manifests, unloaded)

    def _apply_locked(self, manifests: list[Manifest], unloaded: list[str]) -> None:
        wanted: dict[str, str] = {}
        # Once storage failed (not refused: that may be one prefix's policy), the other
        # views wait for the retry.
        outage: str | None = None
        for manifest in manifests:
            key = manifest.name.lower()
            fingerprint = f"{manifest.updated_at.isoformat()}|{','.join(manifest.objects)}"
            wanted[key] = fingerprint
            if self._views.get(key) == fingerprint:
                continue
            if (
                self._unavailable.get(key) == OBJECT_MISSING
                and self._missing.get(key) == fingerprint
            ):
                wanted.pop(key)  # the same version, the same missing object: no retry
                continue
            if outage is not None:
                self._postpone(key, outage, wanted)
                continue
            try:
                keys = {self._duckdb_path(obj): obj for obj in manifest.objects}  # path -> key
                paths = list(keys)
                self._admin.execute(view_sql(manifest, paths))
            except duckdb.IOException as exc:
                failure = storage_failure(str(exc))
                if failure is None and is_missing_object(str(exc)):
                    log.error(
                        "an object of dataset %s is missing from storage: %s",
                        manifest.name,
                        exc,
                        extra={"dataset": manifest.name},
                    )
                    self._postpone(key, OBJECT_MISSING, wanted)
                    self._missing[key] = fingerprint
                    continue
                if failure is None:
                    self._broken(manifest, exc, wanted)
                    continue
                # Storage failed, not the dataset: unavailable (503), never absent (404),
                # and no stale view either; tried again on a later refresh.
                log.warning(
                    "storage failed creating the view of dataset %s; retrying later: %s",
                    manifest.name,
                    exc,
                    extra={"dataset": manifest.name},
                )
                reason = str(failure.details["reason"])
                if reason != ACCESS_DENIED:  # a refusal may be this dataset's alone: go on
                    outage = reason
                self._postpone(key, reason, wanted)
                continue
            except (duckdb.Error, ValueError, LakehouseError) as exc:
                self._broken(manifest, exc, wanted)
                continue
            self._views[key] = fingerprint
            self._drop_copy(key)  # the view no longer reads it
            if paths:
                view = quote_identifier(manifest.name)
                self._sources[key] = Source(fingerprint, view, _columns(manifest), paths)
            for stale in self._current.get(key, ()):
                self._keys.pop(stale, None)
            self._current[key] = paths
            self._keys.update(keys)
            self._unavailable.pop(key, None)
            self._missing.pop(key, None)
            for path in paths:
                self._paths[path] = None
                self._paths.move_to_end(path)
            while len(self._paths) > KNOWN_PATHS_MAX:
                self._paths.popitem(last=False)
        for key in list(self._views):
            if key not in wanted:
                self._drop(key)
        listed = {manifest.name.lower() for manifest in manifests}
        for key in list(self._unavailable):
            if key not in listed:  # deleted meanwhile, or unloaded (below)
                del self._unavailable[key]
                self._missing.pop(key, None)
        for key in unloaded:  # the catalog could not load its table from storage
            self._unavailable[key] = CATALOG_READ

    def _postpone(self, key: str, reason: str, wanted: dict[str, str]) -> None:
        """No view (not a stale one either) until a retry creates it; until then the
        dataset is unavailable (503), never absent (404)."""
        wanted.pop(key)
        self._drop(key)
        self._unavailable[key] = reason

    def _broken(self, manifest: Manifest, exc: Exception, wanted: dict[str, str]) -> None:
        # One broken dataset must not hide the others: it simply has no view.
        log.error(
            "cannot create the view of dataset %s: %s",
            manifest.name,
            exc,
            extra={"dataset": manifest.name},
        )
        key = manifest.name.lower()
        wanted.pop(key)
        self._drop(key)
        self._unavailable.pop(key, None)

    def _drop(self, key: str) -> None:
        try:
            self._admin.execute(f"DROP VIEW IF EXISTS {quote_identifier(key)}")
        except duckdb.Error as exc:
            # DuckDB's text may name a local path: the log has it, the client the class.
            log.error("cannot drop the view of dataset %s: %s", key, exc)
            raise QueryFailed(
                f"cannot drop the view of dataset {key!r}: {type(exc).__name__}"
            ) from exc
        self._views.pop(key, None)
        self._drop_copy(key)
        for path in self._current.pop(key, ()):
            self._keys.pop(path, None)

    # -- in-memory copies (worker threads) ---------------------------------------------

    def _drop_copy(self, key: str) -> None:
        """Forget ``key``'s source and drop its copy (under ``_ddl``, after its view stopped
        reading it: a query still scanning it keeps its own snapshot)."""
        self._sources.pop(key, None)
        copy = self._hot.pop(key, None)
        if copy is not None:
            hot.drop_copy(self._admin, copy.table)

    def _copy_hot(self) -> None:
        """Copy datasets into memory while the budget lasts, one at a time, and point
        their views at the copies: only if the view still reads that version then."""
        if self._copier_cursor is None:
            self._copier_cursor = self._admin.cursor()
        con = self._copier_cursor
        while True:
            with self._ddl:
                self._not_hot &= {source.fingerprint for source in self._sources.values()}
                todo = [
                    (key, source)
                    for key, source in self._sources.items()
                    if key not in self._hot and source.fingerprint not in self._not_hot
                ]
                free = self._hot_budget - sum(copy.bytes for copy in self._hot.values())
            if not todo:
                return
            key, source = todo[0]
            table = hot.table_name()
            size = self._copy(con, key, source, table, free)
            with self._ddl:
                current = self._sources.get(key)
                if current is None or current.fingerprint != source.fingerprint:
                    hot.drop_copy(con, table)  # replaced meanwhile: the next round copies it
                elif size is None:
                    self._not_hot.add(source.fingerprint)
                else:
                    self._admin.execute(
                        f"CREATE OR REPLACE VIEW {source.view} AS {source.columns} FROM {table}"
                    )
                    self._hot[key] = HotCopy(source.fingerprint, table, size)
                    log.info("dataset %s is read from memory now", key, extra={"bytes": size})

    def _copy(
        self, con: duckdb.DuckDBPyConnection, key: str, source: Source, table: str, free: int
    ) -> int | None:
        """``source`` copied into ``table``: the bytes it takes, or None (and no table)
        when it does not fit in ``free`` bytes or could not be read."""
        try:
            estimate = hot.parquet_bytes(con, source.paths)
            if estimate > free:
                return None
            size = max(hot.create_copy(con, table, source.select()), estimate)
        except duckdb.Error as exc:
            log.warning("could not copy dataset %s into memory: %s", key, exc)
            hot.drop_copy(con, table)
            return None
        if size > free:
            hot.drop_copy(con, table)
            return None
        return size


def _retrieve_exception(task: asyncio.Future[None]) -> None:
    # Every waiter may have given up (their time limits): the failure is still seen.
    if not task.cancelled() and task.exception() is not None:
        log.warning("refreshing the views failed: %s", task.exception())


def _object_missing(name: str, key: str = "") -> DatasetObjectMissing:
    """The 502 for ``name``; ``key`` names the missing object when known (the storage
    key, never the path the engine read it by)."""
    missing = f" ({key})" if key else ""
    return DatasetObjectMissing(
        f"dataset {name!r} cannot be read: an object its current version references is "
        f"missing from storage{missing}",
        details={"dataset": name, "key": key} if key else {"dataset": name},
    )
