"""IcebergCatalog: every dataset is an Apache Iceberg table in a SQL catalog (ADR 0014).

The SQL catalog (pyiceberg's ``SqlCatalog``: the schema of Iceberg's JDBC catalog)
lives in SQLite by default and in PostgreSQL when several replicas share a bucket.
A table's metadata and data files live under ``datasets/<name>/`` in the store,
read and written by pyiceberg's FileIO with the grant storage issued.

- A version is an Iceberg snapshot; its number is the snapshot's sequence number
  (1, 2, 3 ... per table, assigned by the commit itself, so two replicas racing for
  the same table still get distinct, gap-free numbers).
- Every pyiceberg call blocks (file and database I/O): it runs in this catalog's
  own worker threads, never on the event loop.
- Reads come from an in-memory cache of each table's current version, refreshed
  when the SQL catalog's list of metadata locations changes: at once after a
  commit made here, within ``refresh_seconds`` after one made by another replica.
- A lost commit race (``CommitFailedException``) is retried against the fresh
  table, re-checking the schema, so concurrent appends all land, exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import hashlib
import itertools
import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.io import PY_IO_IMPL, FileIO, load_file_io
from pyiceberg.io.pyarrow import parquet_file_to_data_file
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table, Transaction
from pyiceberg.table.snapshots import Snapshot

from lakehouse.catalog import _fileio as fileio
from lakehouse.catalog._files import (
    MANIFEST_CACHE_SIZE,
    CachingSqlCatalog,
    Footer,
    LruCache,
    MemoTransaction,
    append_files,
    data_file_from_footer,
    live_files,
)
from lakehouse.catalog._migrate import migrate_g0_manifests
from lakehouse.catalog._types import (
    UnsupportedType,
    arrow_column_type,
    columns_of,
    iceberg_schema,
    struct_growth,
)
from lakehouse.catalog._types import iceberg_type as to_iceberg_type
from lakehouse.catalog.errors import (
    CatalogUnavailable,
    DatasetNotFound,
    InvalidRegistration,
    VersionNotFound,
)
from lakehouse.catalog.interface import (
    Column,
    ColumnTyping,
    CommitMode,
    CommitRequest,
    DatasetVersion,
    Manifest,
    RegisterRequest,
    Registration,
    TableVersion,
)
from lakehouse.catalog.rules import (
    check_commit,
    check_objects_exist,
    evolution_conflict,
    retyped_columns,
    schema_fingerprint,
    validate_dataset_name,
    validate_request,
)
from lakehouse.config import CatalogSettings
from lakehouse.errors import LakehouseError
from lakehouse.layout import DELETED_PREFIX, catalog_database, data_key, dataset_prefix
from lakehouse.storage import (
    FileIOGrant,
    ObjectStore,
    StorageAccessDenied,
    StorageUnavailable,
)

log = logging.getLogger("lakehouse.catalog")

T = TypeVar("T")
R = TypeVar("R", Registration, Registration | None)

NAMESPACE = "lakehouse"
"""The namespace every dataset's table is in: ``<catalog name>.lakehouse.<name>``."""

# Snapshot summary and table property keys of our own.
NAME_PROPERTY = "lakehouse.name"
CREATED_PROPERTY = "lakehouse.created-at"
SOURCE_FILE = "lakehouse.source-file"
SOURCE_SHA256 = "lakehouse.source-sha256"
TYPING = "lakehouse.typing"
ROLLBACK_OF = "lakehouse.rollback-of"
COMPACTION = "lakehouse.compaction"

TABLE_PROPERTIES = {
    "format-version": "2",
    # Old metadata files go with the commit that supersedes them (a bounded number kept).
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "10",
    # Lost races are retried by us (with the schema re-checked), not inside pyiceberg.
    "commit.retry.num-retries": "0",
    # Appends merge small manifests, so reading a version stays a few file reads.
    "commit.manifest-merge.enabled": "true",
    "commit.manifest.min-count-to-merge": "4",
}

COMMIT_ATTEMPTS = 30
"""Lost commit races retried before the commit fails (each after a short random wait)."""
MERGED_ROW_GROUP_ROWS = 122_880
"""Rows per row group of a compacted file (ingest's default too)."""
FILES_CACHE_SIZE = 4096
"""Snapshots whose data files are remembered (a snapshot never changes)."""


@dataclass(frozen=True)
class _Entry:
    """One dataset as the cache holds it: its table at one metadata file."""

    location: str
    table: Table
    manifest: Manifest


class IcebergCatalog:
    """The Catalog protocol over pyiceberg's SQL catalog (see the module docstring).

    Args:
        store: the object store the data files are in (existence checks, compaction).
        fileio: storage's grant for pyiceberg's FileIO (called once, in a worker thread).
        database_url: the SQL catalog's SQLAlchemy URL, password included: never logged.
        settings: the ``[catalog]`` section.
        scratch_dir: local space for compaction's merged file.
    """

    def __init__(
        self,
        store: ObjectStore,
        fileio: Callable[[], FileIOGrant],
        database_url: Callable[[], str],
        settings: CatalogSettings,
        scratch_dir: Path,
    ) -> None:
        self._store = store
        self._issue_fileio = fileio
        self._database_url = database_url
        self._settings = settings
        self._scratch_dir = scratch_dir
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="catalog")
        self._sql: SqlCatalog | None = None
        self._grant: FileIOGrant | None = None
        self._file_io: FileIO | None = None
        self._entries: dict[str, _Entry] = {}
        self._unreadable: dict[str, str] = {}  # lower-case name -> metadata location
        self._g0_unreadable: list[str] = []
        self._unloaded: set[str] = set()  # listed, but the last load failed for a passing reason
        self._version = _etag({})
        self._refresh_lock = asyncio.Lock()
        self._table_locks: dict[str, asyncio.Lock] = {}
        # Shared by the catalog's worker threads; snapshots and manifests never change.
        self._files: LruCache[int, list[DataFile]] = LruCache(FILES_CACHE_SIZE)
        self._manifest_files: LruCache[str, list[DataFile]] = LruCache(MANIFEST_CACHE_SIZE)
        self._poller: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._compacting: set[str] = set()  # tables with a compaction in flight here
        self._fresh: dict[str, _Entry] = {}  # tables as this process's commits left them

    def __repr__(self) -> str:
        return f"IcebergCatalog(name={self._settings.name!r}, datasets={len(self._entries)})"

    # -- life cycle --------------------------------------------------------------------

    async def load(self) -> None:
        await self._run(self._open)
        await self._refresh()
        self._g0_unreadable = await migrate_g0_manifests(self._store, self)
        self._poller = asyncio.get_running_loop().create_task(self._poll())
        log.info("catalog loaded", extra={"datasets": len(self._entries)})

    def _open(self) -> None:
        grant = self._issue_fileio()
        properties = {"warehouse": grant.root, PY_IO_IMPL: fileio.IMPL, **grant.properties}
        try:
            self._sql = _open_sql_catalog(self._settings.name, self._database_url(), properties)
            with contextlib.suppress(NamespaceAlreadyExistsError):
                self._sql.create_namespace_if_not_exists(NAMESPACE)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise CatalogUnavailable(
                f"cannot open the catalog database: {type(exc).__name__}"
            ) from None
        self._grant = grant
        self._file_io = load_file_io(properties, location=grant.root)

    async def close(self) -> None:
        tasks = [t for t in [self._poller, *self._background] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        if self._sql is not None:
            self._sql.engine.dispose()

    async def _poll(self) -> None:
        """Pick up commits of other replicas."""
        while True:
            await asyncio.sleep(self._settings.refresh_seconds)
            try:
                await self._refresh()
            except Exception:
                log.warning("catalog refresh failed", exc_info=True)

    # -- reads -------------------------------------------------------------------------

    async def version(self) -> str:
        return self._version

    async def unreadable(self) -> list[str]:
        # Tables the last refresh could not load for a passing reason count too (the
        # sweep must never work from a partial picture), and datasets deleted less than
        # the grace period ago.
        deleted = await self._recently_deleted()
        return sorted(set(self._unreadable) | set(self._g0_unreadable) | self._unloaded | deleted)

    async def unloaded(self) -> list[str]:
        return sorted(self._unloaded - set(self._entries))

    async def _recently_deleted(self) -> set[str]:
        """Names with a deletion marker younger than the grace period; older markers go."""
        grace = dt.timedelta(seconds=self._settings.orphan_grace_seconds)
        now = dt.datetime.now(dt.UTC)
        names = set()
        for info in await self._store.list(DELETED_PREFIX):
            if now - info.last_modified < grace:
                names.add(info.key[len(DELETED_PREFIX) :])
            else:
                await self._store.delete(info.key, missing_ok=True)
        return names

    async def get(self, name: str) -> Manifest:
        return self._entry(name).manifest

    async def history(self, name: str) -> list[DatasetVersion]:
        table = self._entry(name).table
        return [_history_entry(s) for s in _snapshots(table)]

    async def as_of(
        self, name: str, *, version: int | None = None, timestamp: dt.datetime | None = None
    ) -> TableVersion:
        entry = self._entry(name)
        snapshot = _pick_snapshot(entry, version, timestamp)
        table = entry.table
        files = await self._run(self._data_files, table, snapshot)
        schema = table.schemas().get(snapshot.schema_id or 0, table.schema())
        return TableVersion(
            name=entry.manifest.name,
            version=_version_of(snapshot),
            snapshot_id=snapshot.snapshot_id,
            schema=columns_of(schema),
            objects=[self._key(f.file_path) for f in files],
        )

    async def referenced_keys(self) -> set[str]:
        # Fresh, not the cache: another replica may have committed since the last poll.
        await self._refresh()
        entries = list(self._entries.values())
        found: set[str] = set()
        for entry in entries:
            found |= await self._run(self._table_files, entry.table)
        return found

    def _entry(self, name: str) -> _Entry:
        validate_dataset_name(name)
        entry = self._entries.get(name.lower())
        if entry is None:
            raise DatasetNotFound(f"no dataset named {name!r}", details={"name": name})
        return entry

    # -- writes ------------------------------------------------------------------------

    async def register(self, request: RegisterRequest) -> Registration:
        commit = CommitRequest(name=request.name, schema=request.schema, objects=request.objects)
        return await self._commit(commit, expected_rows=request.row_count)

    async def commit(self, request: CommitRequest) -> Registration:
        return await self._commit(request, expected_rows=None)

    async def _commit(self, request: CommitRequest, expected_rows: int | None) -> Registration:
        validate_dataset_name(request.name)
        validate_request(request, expected_rows)
        _check_types(request.schema)
        await check_objects_exist(self._store, request.objects)
        footers = await self._run(self._check_files, request, expected_rows)
        registration = await self._with_retries(
            request.name, lambda: self._commit_once(request, footers), "commit"
        )
        await self._after_commit(registration.manifest.name)
        log.info(
            "dataset committed",
            extra={
                "dataset": registration.manifest.name,
                "mode": str(request.mode),
                "version": registration.manifest.version,
                "files": len(request.objects),
                "rows": registration.manifest.row_count,
            },
        )
        return registration

    async def rollback(self, name: str, version: int) -> Registration:
        entry = self._entry(name)
        _pick_snapshot(entry, version, None)  # VersionNotFound before any work
        registration = await self._with_retries(
            name, lambda: self._rollback_once(name, version), "rollback"
        )
        await self._after_commit(registration.manifest.name)
        return registration

    async def compact(self, name: str) -> Registration | None:
        entry = self._entry(name)
        lower = name.lower()
        # No table lock while merging: appends go on meanwhile. The merged file replaces
        # exactly the files it was read from, in a commit that checks they are all still
        # current (appends since only added files), so the row count stays exact.
        table = await self._run(self._load_table, lower)
        snapshot = table.current_snapshot()
        if snapshot is None:
            return None
        files = await self._run(self._data_files, table, snapshot)
        if len(files) < 2:
            return None
        key = data_key(lower)
        merged = self._scratch_dir / f"compact-{key.rsplit('/', 1)[-1]}"
        try:
            # Not the catalog's threads: a long merge must not hold up commits and reads.
            await asyncio.to_thread(_merge_files, table, snapshot, merged)
            await self._store.put_file(key, merged)
        finally:
            await asyncio.to_thread(merged.unlink, missing_ok=True)
        try:
            registration = await self._with_retries(
                lower, lambda: self._compact_once(lower, files, key), "compaction"
            )
        except BaseException:
            # The outcome is unknown: the sweep removes the file if it was not committed.
            log.warning("compaction commit failed", extra={"dataset": name}, exc_info=True)
            raise
        if registration is None:  # another compaction took those files: nothing to do
            await self._store.delete(key, missing_ok=True)
            return None
        await self._after_commit(entry.manifest.name)
        return registration

    async def delete(self, name: str) -> Manifest:
        entry = self._entry(name)
        lower = name.lower()
        async with self._lock(lower):
            # The marker first: from now on the sweep spares the files for a grace period.
            await self._store.put(f"{DELETED_PREFIX}{lower}", entry.manifest.dataset_id.encode())
            await self._run(self._drop, lower)
        await self._refresh()
        log.info("dataset deleted", extra={"dataset": entry.manifest.name})
        return entry.manifest

    async def _with_retries(self, name: str, attempt: Callable[[], R], what: str) -> R:
        async with self._lock(name.lower()):
            for tries in range(1, COMMIT_ATTEMPTS + 1):
                try:
                    return await self._run(attempt)
                except CommitFailedException:
                    if tries == COMMIT_ATTEMPTS:
                        raise CatalogUnavailable(
                            f"the {what} of {name!r} lost {tries} races with other writers; retry",
                            details={"name": name},
                        ) from None
                    # Another replica committed first: wait a moment, then redo against it.
                    await asyncio.sleep(random.uniform(0.005, 0.05) * min(tries, 8))  # noqa: S311
        raise AssertionError("unreachable")

    async def _after_commit(self, name: str) -> None:
        """Refresh the cache at once (the writer sees its commit), expire old versions,
        and merge small files when an append left too many. Never raises: the commit
        has landed, and a failed upkeep must not make the caller think otherwise."""
        try:
            lower = name.lower()
            fresh = self._fresh.pop(lower, None)
            if fresh is not None:
                self._entries = {**self._entries, lower: fresh}
            await self._refresh()
            if lower not in self._entries:
                return
            await self._run(self._expire, self._entries[lower].table)
            entry = self._entries.get(lower)
            limit = self._settings.compact_after_files
            crowded = entry is not None and limit and len(entry.manifest.objects) >= limit
            if entry is not None and crowded and lower not in self._compacting:
                self._compacting.add(lower)
                self._spawn(self._compact_in_background(entry.manifest.name))
        except Exception:
            log.warning("upkeep after a commit failed", extra={"dataset": name}, exc_info=True)

    async def _compact_in_background(self, name: str) -> None:
        try:
            await self.compact(name)
        except Exception:
            log.warning("compaction failed", extra={"dataset": name}, exc_info=True)
        finally:
            self._compacting.discard(name.lower())

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _lock(self, lower: str) -> asyncio.Lock:
        return self._table_locks.setdefault(lower, asyncio.Lock())

    # -- cache -------------------------------------------------------------------------

    async def _refresh(self) -> None:
        """Bring the cache in line with the SQL catalog's list of tables."""
        async with self._refresh_lock:
            listing = await self._run(self._listing)
            entries = {n: e for n, e in self._entries.items() if listing.get(n) == e.location}
            unreadable = {n: loc for n, loc in self._unreadable.items() if listing.get(n) == loc}
            unloaded: set[str] = set()
            for lower, location in listing.items():
                if lower in entries or lower in unreadable:
                    continue
                try:
                    entries[lower] = await self._run(self._load_entry, lower)
                except (NoSuchTableError, CommitFailedException):
                    continue  # dropped or replaced meanwhile: the next refresh sees it
                except TableFileMissing:
                    # Deleted behind the catalog: a retry finds it no more than this did.
                    log.error(
                        "skipping unreadable table %s: a file of it is missing",
                        lower,
                        extra={"dataset": lower, "metadata": location},
                    )
                    unreadable[lower] = location
                except (StorageUnavailable, CatalogUnavailable) as exc:
                    # Transient: keep serving what we had; the next refresh tries again.
                    log.warning("cannot reload table %s: %s", lower, exc.message)
                    unloaded.add(lower)
                    if lower in self._entries:
                        entries[lower] = self._entries[lower]
                except Exception as exc:
                    log.error(
                        "skipping unreadable table %s: %s",
                        lower,
                        type(exc).__name__,
                        extra={"dataset": lower, "metadata": location},
                    )
                    unreadable[lower] = location
            self._entries = entries
            self._unreadable = unreadable
            self._unloaded = unloaded
            # Tables that failed to load count: their readers learn they exist (ADR 0015).
            missing = {n: f"unloaded:{listing[n]}" for n in unloaded if n not in entries}
            self._version = _etag(
                {n: e.location for n, e in entries.items()} | unreadable | missing
            )

    def _listing(self) -> dict[str, str]:
        """Lower-case name -> metadata location of every table (one SQL query)."""
        query = sqlalchemy.text(
            "SELECT table_name, metadata_location FROM iceberg_tables "
            "WHERE catalog_name = :catalog AND table_namespace = :namespace"
        )
        try:
            with self._catalog.engine.connect() as connection:
                rows = connection.execute(
                    query, {"catalog": self._settings.name, "namespace": NAMESPACE}
                ).all()
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise CatalogUnavailable(f"the catalog database failed: {type(exc).__name__}") from None
        return {str(name): str(location) for name, location in rows if location}

    def _load_entry(self, lower: str) -> _Entry:
        table = self._load_table(lower)
        return _Entry(table.metadata_location, table, self._manifest(table))

    def _load_table(self, lower: str) -> Table:
        try:
            return self._catalog.load_table((NAMESPACE, lower))
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise CatalogUnavailable(f"the catalog database failed: {type(exc).__name__}") from None

    def _manifest(self, table: Table) -> Manifest:
        snapshot = table.current_snapshot()
        files = self._data_files(table, snapshot) if snapshot is not None else []
        columns = columns_of(table.schema())
        properties = table.properties
        snapshots = _snapshots(table)
        if CREATED_PROPERTY in properties:
            created = dt.datetime.fromisoformat(properties[CREATED_PROPERTY])
        elif snapshots:  # a table some other engine created
            created = _committed_at(snapshots[0])
        else:
            created = dt.datetime.fromtimestamp(table.metadata.last_updated_ms / 1000, dt.UTC)
        updated = _committed_at(snapshot) if snapshot is not None else created
        return Manifest(
            dataset_id=str(table.metadata.table_uuid),
            name=properties.get(NAME_PROPERTY, table.name()[-1]),
            schema_fingerprint=schema_fingerprint(columns),
            schema=columns,
            objects=[self._key(f.file_path) for f in files],
            row_count=sum(f.record_count for f in files),
            created_at=created,
            updated_at=updated,
            version=_version_of(snapshot) if snapshot is not None else 0,
            snapshot_id=snapshot.snapshot_id if snapshot is not None else None,
            bytes=sum(f.file_size_in_bytes for f in files),
        )

    def _data_files(self, table: Table, snapshot: Snapshot) -> list[DataFile]:
        """The live data files of a snapshot (cached: a snapshot never changes, and a
        new one mostly lists manifests already read for its parent)."""
        return self._files.get_or_load(
            snapshot.snapshot_id,
            lambda: [
                data_file
                for manifest in snapshot.manifests(table.io)
                for data_file in live_files(self._manifest_files, table.io, manifest)
            ],
        )

    def _table_files(self, table: Table) -> set[str]:
        """Every key the table's retained state needs (metadata, manifests, data)."""
        metadata = table.metadata
        locations = {table.metadata_location}
        locations |= {entry.metadata_file for entry in metadata.metadata_log}
        for snapshot in metadata.snapshots:
            locations.add(snapshot.manifest_list)
            for manifest in snapshot.manifests(table.io):
                locations.add(manifest.manifest_path)
            locations |= {f.file_path for f in self._data_files(table, snapshot)}
        locations |= {s.statistics_path for s in metadata.statistics}
        return {key for location in locations if (key := self._grant_key(location))}

    # -- commits (worker threads) ------------------------------------------------------

    def _commit_once(self, request: CommitRequest, footers: dict[str, Footer]) -> Registration:
        lower = request.name.lower()
        properties = _snapshot_properties(request)
        try:
            table = self._load_table(lower)
        except NoSuchTableError:
            return self._create(request, footers, properties)
        before = self._manifest(table)
        check_commit(request.name, before, request.schema, request.mode)
        replace = request.mode in (CommitMode.AUTO, CommitMode.REPLACE)
        evolution = _evolution(before, request.schema, drop_missing=replace)
        with MemoTransaction(table) as tx:
            _evolve(tx, evolution, request.schema if replace else None)
            if replace:
                if tx.table_metadata.name_mapping() is None:  # a table made elsewhere
                    mapping = tx.table_metadata.schema().name_mapping.model_dump_json()
                    tx.set_properties({"schema.name-mapping.default": mapping})
                with tx.update_snapshot(snapshot_properties=properties).overwrite() as overwrite:
                    for data_file in self._current_files(table):
                        overwrite.delete_data_file(data_file)
                    metadata = tx.table_metadata
                    for location, footer in footers.items():
                        data_file = data_file_from_footer(metadata, location, footer)
                        overwrite.append_data_file(data_file)
            else:
                append_files(tx, footers, properties)
        after = self._remember(table)
        kept = set(after.objects)
        return Registration(
            manifest=after,
            created=False,
            replaced_objects=[key for key in before.objects if key not in kept],
        )

    def _create(
        self, request: CommitRequest, footers: dict[str, Footer], properties: dict[str, str]
    ) -> Registration:
        lower = request.name.lower()
        table_properties = {
            **TABLE_PROPERTIES,
            NAME_PROPERTY: request.name,
            CREATED_PROPERTY: dt.datetime.now(dt.UTC).isoformat(),
        }
        try:
            tx = self._catalog.create_table_transaction(
                (NAMESPACE, lower),
                schema=iceberg_schema(request.schema),
                location=self._location(dataset_prefix(lower).rstrip("/")),
                properties=table_properties,
            )
            append_files(tx, footers, properties)
            tx.commit_transaction()
        except TableAlreadyExistsError:
            # Another replica created it first: a lost race like any other.
            raise CommitFailedException(f"table {lower} was created concurrently") from None
        table = self._load_table(lower)
        return Registration(manifest=self._remember(table), created=True, replaced_objects=[])

    def _rollback_once(self, name: str, version: int) -> Registration:
        table = self._load_table(name.lower())
        target = _snapshot_by_version(table, version)
        if target is None:
            raise _version_not_found(name, table, f"version {version}")
        before = self._manifest(table)
        target_schema = columns_of(table.schemas().get(target.schema_id or 0, table.schema()))
        evolution = _evolution(before, target_schema, drop_missing=True)
        current = {f.file_path: f for f in self._current_files(table)}
        wanted = {f.file_path: f for f in self._data_files(table, target)}
        with MemoTransaction(table) as tx:
            _evolve(tx, evolution, target_schema)
            properties = {ROLLBACK_OF: str(version)}
            with tx.update_snapshot(snapshot_properties=properties).overwrite() as overwrite:
                for path, data_file in current.items():
                    if path not in wanted:
                        overwrite.delete_data_file(data_file)
                for path, data_file in wanted.items():
                    if path not in current:
                        overwrite.append_data_file(data_file)
        after = self._remember(table)
        replaced = [key for key in before.objects if key not in set(after.objects)]
        return Registration(manifest=after, created=False, replaced_objects=replaced)

    def _compact_once(self, lower: str, merged: list[DataFile], key: str) -> Registration | None:
        table = self._load_table(lower)
        current = {f.file_path for f in self._current_files(table)}
        if any(f.file_path not in current for f in merged):
            return None
        with (
            MemoTransaction(table) as tx,
            tx.update_snapshot(snapshot_properties={COMPACTION: "true"}).overwrite() as overwrite,
        ):
            for data_file in merged:
                overwrite.delete_data_file(data_file)
            overwrite.append_data_file(
                parquet_file_to_data_file(table.io, tx.table_metadata, self._location(key))
            )
        before = [self._key(f.file_path) for f in merged]
        return Registration(manifest=self._remember(table), created=False, replaced_objects=before)

    def _remember(self, table: Table) -> Manifest:
        """The manifest of a table this process just committed, kept for ``_after_commit``
        to put in the cache (saving a reload of what is already in hand)."""
        manifest = self._manifest(table)
        self._fresh[manifest.name.lower()] = _Entry(table.metadata_location, table, manifest)
        return manifest

    def _drop(self, lower: str) -> None:
        try:
            self._catalog.drop_table((NAMESPACE, lower))
        except NoSuchTableError:
            raise DatasetNotFound(f"no dataset named {lower!r}", details={"name": lower}) from None

    def _expire(self, table: Table) -> None:
        """Expire the versions past the policy: older than ``keep_days`` and not among
        the last ``keep_versions`` (the current one never). Another replica may be
        doing the same: whatever it expired first is simply skipped."""
        snapshots = _snapshots(table)
        keep = max(self._settings.keep_versions, 1)
        cutoff_ms = (time.time() - self._settings.keep_days * 86400) * 1000
        current = table.current_snapshot()
        expired = [
            s.snapshot_id
            for s in snapshots[:-keep]
            if s.timestamp_ms < cutoff_ms
            and (current is None or s.snapshot_id != current.snapshot_id)
        ]
        # In batches of a quarter of what is kept (so up to 1.25 x keep_versions stay a
        # while): each expiry is a metadata commit of its own, as dear as an append's.
        if len(expired) < max(1, keep // 4):
            return
        try:
            table.maintenance.expire_snapshots().by_ids(expired).commit()
        except (CommitFailedException, ValueError):
            return  # raced with another commit or expiry: the next commit expires them
        for snapshot_id in expired:
            self._files.pop(snapshot_id)

    def _current_files(self, table: Table) -> list[DataFile]:
        snapshot = table.current_snapshot()
        return self._data_files(table, snapshot) if snapshot is not None else []

    def _check_files(self, request: CommitRequest, expected_rows: int | None) -> dict[str, Footer]:
        """Every file is Parquet with exactly the request's columns (and, for a G0
        register, the announced row count). Returns each file's footer by location,
        in the request's order, for the commit to describe the files from."""
        io = self._io
        rows = 0
        problems = []
        footers = {}
        for key in request.objects:
            location = self._location(key)
            try:
                with io.new_input(location).open() as stream:
                    metadata = pq.read_metadata(stream)
                    footers[location] = Footer(metadata, size=stream.seek(0, os.SEEK_END))
                columns = [
                    Column(name=f.name, type=arrow_column_type(f.type))
                    for f in metadata.schema.to_arrow_schema()
                ]
            except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
                problems.append(f"{key} is not a readable Parquet file ({type(exc).__name__})")
                continue
            if columns != request.schema:
                problems.append(f"{key} has columns {_describe(columns)}, not the request's")
            rows += metadata.num_rows
        if expected_rows is not None and not problems and rows != expected_rows:
            problems.append(f"row_count is {expected_rows} but the files hold {rows} rows")
        if problems:
            raise InvalidRegistration("; ".join(problems), details={"problems": problems})
        return footers

    # -- helpers -----------------------------------------------------------------------

    @property
    def _catalog(self) -> SqlCatalog:
        if self._sql is None:
            raise CatalogUnavailable("the catalog is not loaded")
        return self._sql

    @property
    def _io(self) -> FileIO:
        if self._file_io is None:
            raise CatalogUnavailable("the catalog is not loaded")
        return self._file_io

    def _location(self, key: str) -> str:
        assert self._grant is not None
        return self._grant.location(key)

    def _grant_key(self, location: str) -> str | None:
        assert self._grant is not None
        return self._grant.key(location)

    def _key(self, location: str) -> str:
        key = self._grant_key(location)
        if key is None:
            raise CatalogUnavailable(f"a table references a file outside the store: {location}")
        return key

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        """``work`` in a catalog thread; database and file errors become ours."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work, *args)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            # Not chained: the driver's message may name the connection.
            raise CatalogUnavailable(f"the catalog database failed: {type(exc).__name__}") from None
        except OSError as exc:
            raise _file_error(exc) from exc

    # Last: inside the class body, ``list`` names this method from here on.
    async def list(self) -> list[Manifest]:
        return [self._entries[n].manifest for n in sorted(self._entries)]


class TableFileMissing(CatalogUnavailable):
    """A file of a table (its metadata, a manifest) is gone from storage: the table is
    damaged, not passing through an outage."""


def _file_error(exc: OSError) -> LakehouseError:
    """Our error for a table file's ``exc`` (pyarrow's or the OS's): its class and errno
    name, never its text, which holds a local path or a URL."""
    kind = type(exc).__name__
    if exc.errno is not None and exc.errno in errno.errorcode:
        kind = f"{kind} {errno.errorcode[exc.errno]}"
    message = f"reading or writing a table's files failed: {kind}"
    if isinstance(exc, FileNotFoundError):
        return TableFileMissing(message, details={"reason": "file_missing"})
    if "ACCESS_DENIED" in str(exc) or isinstance(exc, PermissionError):
        return StorageAccessDenied(message, details={"reason": "access_denied"})
    return StorageUnavailable(message, details={"reason": kind})


def database_url(uri: str, data_dir: str, password: Callable[[], str | None]) -> str:
    """The SQL catalog's URL: ``uri`` with the secrets provider's password, or SQLite
    under ``data_dir`` when ``uri`` is empty. Holds the password: never log it."""
    if not uri:
        path = catalog_database(data_dir).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    url = sqlalchemy.engine.make_url(uri)
    if secret := password():
        url = url.set(password=secret)
    return url.render_as_string(hide_password=False)


def _open_sql_catalog(name: str, url: str, properties: dict[str, str]) -> SqlCatalog:
    """The SQL catalog; replicas starting at once may race to create its tables."""
    for attempt in range(5):
        try:
            return CachingSqlCatalog(name, uri=url, **properties)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == 4:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def _check_types(columns: list[Column]) -> None:
    problems = []
    for column in columns:
        try:
            to_iceberg_type(column.type)
        except UnsupportedType as exc:
            problems.append(f"{column.name}: {exc}")
    if problems:
        raise InvalidRegistration("; ".join(problems), details={"problems": problems})


class _Evolution(NamedTuple):
    added: list[Column]
    dropped: list[Column]
    grown: list[tuple[tuple[str, ...], str]]
    """Struct fields to add: (path from the column's name, DuckDB type)."""


def _evolution(existing: Manifest, offered: list[Column], *, drop_missing: bool) -> _Evolution:
    """The columns to add and drop, and the struct fields to add, to take ``offered``
    files. When the files replace the rows (``drop_missing``), a column that changes its
    type is dropped and added anew; otherwise that is a ``SchemaConflict`` (Iceberg
    widens none of the types ingest writes in place), unless the change is a struct
    gaining fields after its own."""
    conflict = evolution_conflict(existing, offered, drop_missing=drop_missing)
    if conflict is not None:
        raise conflict
    current = {c.name.lower(): c for c in existing.schema}
    offered_names = {c.name.lower() for c in offered}
    retyped = retyped_columns(existing, offered)
    retyped_names = {c.name.lower() for c in retyped}
    added = [c for c in offered if c.name.lower() not in current or c.name.lower() in retyped_names]
    dropped = [current[c.name.lower()] for c in retyped] + [
        c for c in existing.schema if drop_missing and c.name.lower() not in offered_names
    ]
    grown = [
        ((c.name, *path), field_type)
        for c in offered
        if c.name.lower() in current and c.name.lower() not in retyped_names
        for path, field_type in struct_growth(current[c.name.lower()].type, c.type) or []
    ]
    return _Evolution(added, dropped, grown)


def _evolve(tx: Transaction, evolution: _Evolution, order: list[Column] | None) -> None:
    """Drop, then add columns and struct fields, in the transaction (by name: the files
    carry no ids), then put the columns in ``order`` (the files' order, when they become
    the whole table). Separate schema updates: a name dropped in one can come back, with
    a new type and field id, in the next."""
    added, dropped, grown = evolution
    if dropped:
        with tx.update_schema() as update:
            for column in dropped:
                update.delete_column(column.name)
    if added or grown:
        with tx.update_schema() as update:
            for column in added:
                update.add_column(column.name, to_iceberg_type(column.type))
            for path, field_type in grown:
                update.add_column(path, to_iceberg_type(field_type))
    names = [c.name for c in order or []]
    if names and [f.name for f in tx.table_metadata.schema().fields] != names:
        with tx.update_schema() as update:
            update.move_first(names[0])
            for previous, name in itertools.pairwise(names):
                update.move_after(name, previous)


def _snapshot_properties(request: CommitRequest) -> dict[str, str]:
    properties: dict[str, str] = {}
    if request.source is not None:
        if request.source.name:
            properties[SOURCE_FILE] = request.source.name
        if request.source.sha256:
            properties[SOURCE_SHA256] = request.source.sha256
    if request.typing:
        properties[TYPING] = msgspec.json.encode(request.typing).decode()
    return properties


def column_typing(manifest_summary: dict[str, str]) -> list[ColumnTyping]:
    """How each column of a version was typed, as its commit recorded it."""
    raw = manifest_summary.get(TYPING)
    return msgspec.json.decode(raw, type=list[ColumnTyping]) if raw else []


def _snapshots(table: Table) -> list[Snapshot]:
    return sorted(table.metadata.snapshots, key=_version_of)


def _version_of(snapshot: Snapshot) -> int:
    return snapshot.sequence_number or 0


def _committed_at(snapshot: Snapshot) -> dt.datetime:
    return dt.datetime.fromtimestamp(snapshot.timestamp_ms / 1000, dt.UTC)


def _snapshot_by_version(table: Table, version: int) -> Snapshot | None:
    return next((s for s in table.metadata.snapshots if _version_of(s) == version), None)


def _pick_snapshot(entry: _Entry, version: int | None, timestamp: dt.datetime | None) -> Snapshot:
    table = entry.table
    name = entry.manifest.name
    if version is not None:
        snapshot = _snapshot_by_version(table, version)
        if snapshot is None:
            raise _version_not_found(name, table, f"version {version}")
        return snapshot
    if timestamp is not None:
        if timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=dt.UTC)
        found = table.snapshot_as_of_timestamp(int(timestamp.timestamp() * 1000))
        snapshot = found if found is not None and found in table.metadata.snapshots else None
        if snapshot is None:
            raise _version_not_found(name, table, f"a version at {timestamp.isoformat()}")
        return snapshot
    current = table.current_snapshot()
    if current is None:
        raise _version_not_found(name, table, "a current version")
    return current


def _version_not_found(name: str, table: Table, wanted: str) -> VersionNotFound:
    snapshots = _snapshots(table)
    details: dict[str, object] = {"name": name}
    if snapshots:
        first, last = snapshots[0], snapshots[-1]
        details |= {
            "first_version": _version_of(first),
            "last_version": _version_of(last),
            "first_committed_at": _committed_at(first).isoformat(),
            "last_committed_at": _committed_at(last).isoformat(),
        }
        held = (
            f"versions {_version_of(first)} to {_version_of(last)}, committed from "
            f"{_committed_at(first).isoformat()} to {_committed_at(last).isoformat()}"
        )
    else:
        held = "no versions"
    return VersionNotFound(f"dataset {name!r} has no {wanted}; it holds {held}", details=details)


def _history_entry(snapshot: Snapshot) -> DatasetVersion:
    summary = snapshot.summary
    extra = summary.additional_properties if summary is not None else {}
    rollback = extra.get(ROLLBACK_OF)
    return DatasetVersion(
        version=_version_of(snapshot),
        snapshot_id=snapshot.snapshot_id,
        committed_at=_committed_at(snapshot),
        operation=summary.operation.value if summary is not None else "unknown",
        rows_added=int(extra.get("added-records", 0)),
        rows_removed=int(extra.get("deleted-records", 0)),
        total_rows=int(extra.get("total-records", 0)),
        source_file=extra.get(SOURCE_FILE),
        source_sha256=extra.get(SOURCE_SHA256),
        rollback_of=int(rollback) if rollback else None,
        typing=column_typing(extra),
    )


def _merge_files(table: Table, snapshot: Snapshot, target: Path) -> None:
    """Write the snapshot's rows into one Parquet file with plain Arrow types and no
    field ids (like ingest's files: the name mapping applies), in row groups of
    ``MERGED_ROW_GROUP_ROWS`` (one per scan batch would keep the small files' tiny
    row groups)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    reader = table.scan(snapshot_id=snapshot.snapshot_id).to_arrow_batch_reader()
    schema = pa.schema([pa.field(f.name, _plain(f.type)) for f in reader.schema])
    pending: list[pa.RecordBatch] = []
    rows = 0
    with pq.ParquetWriter(target, schema, compression="zstd") as writer:
        for batch in reader:
            pending.append(batch.cast(schema))
            rows += batch.num_rows
            if rows >= MERGED_ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_batches(pending), MERGED_ROW_GROUP_ROWS)
                pending, rows = [], 0
        if pending:
            writer.write_table(pa.Table.from_batches(pending), MERGED_ROW_GROUP_ROWS)


def _plain(arrow: pa.DataType) -> pa.DataType:
    return pa.string() if pa.types.is_large_string(arrow) else arrow


def _describe(columns: Iterable[Column]) -> str:
    return ", ".join(f"{c.name} {c.type}" for c in columns)


def _etag(listing: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(listing):
        digest.update(f"{name}\0{listing[name]}\n".encode())
    return digest.hexdigest()[:32]
