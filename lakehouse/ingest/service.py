"""The ingest service: spool, infer, convert, store, register.

Two-phase publish: the Parquet file is written locally, stored under a new
key ``datasets/<name>/<uuid>.parquet``, then registered; a failed register
deletes that object, so a failed ingest leaves nothing behind. A re-ingest
with the same schema replaces the data: the objects the previous manifest
referenced are deleted ``retire_after_seconds`` after the new one is
registered, so a query that started on the old manifest can still read them
(ADR 0010).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterable
from pathlib import Path
from typing import Literal

import msgspec

from lakehouse.catalog import (
    DATASETS_PREFIX,
    Catalog,
    Column,
    Manifest,
    RegisterRequest,
    validate_dataset_name,
)
from lakehouse.config import IngestSettings
from lakehouse.ingest.convert import ConvertOptions, WidenedColumn, convert_csv
from lakehouse.ingest.errors import EmptyCSV, IngestBusy, MissingDatasetName, UploadTooLarge
from lakehouse.ingest.schema import InferredColumn, infer_layout, parse_type_overrides
from lakehouse.ingest.spool import Spooled, spool_multipart, spool_raw
from lakehouse.limits import ConcurrencyLimit, capped
from lakehouse.storage import TMP_PREFIX as STORAGE_TMP_PREFIX
from lakehouse.storage import ObjectStore

log = logging.getLogger("lakehouse.ingest")

# Spool files are in the storage's reserved temp-name family: listings skip
# them and no object key can name one.
TMP_PREFIX = f"{STORAGE_TMP_PREFIX}ingest-"


class DefaultedColumn(msgspec.Struct):
    name: str
    reason: str


class IngestStats(msgspec.Struct):
    """What one ingest did, returned next to the manifest."""

    bytes_read: int
    rows: int
    seconds: float
    delimiter: str
    schema: list[Column]
    defaulted: list[DefaultedColumn]
    widened: list[WidenedColumn]
    overridden: list[str]
    created: bool
    replaced_objects: list[str]


class IngestResult(msgspec.Struct):
    manifest: Manifest
    stats: IngestStats


class Upload(msgspec.Struct):
    """The request body as the routes hand it over (no Litestar types here)."""

    kind: Literal["raw", "multipart"]
    chunks: AsyncIterable[bytes]
    boundary: str = ""
    content_length: int | None = None


def validate_name(name: str | None) -> str:
    """The dataset name, or MissingDatasetName / InvalidDatasetName (400)."""
    if name is None or name == "":
        raise MissingDatasetName("the query parameter 'name' is required, e.g. ?name=workers")
    return validate_dataset_name(name)


class IngestService:
    """CSV uploads in, registered Parquet datasets out."""

    def __init__(
        self,
        store: ObjectStore,
        catalog: Catalog,
        settings: IngestSettings,
        spool_dir: Path,
        retire_after_seconds: float = 0.0,
    ) -> None:
        """``retire_after_seconds``: how long objects a re-ingest replaced are
        kept before they are deleted; the query time limit plus a margin, so
        no query that started on the old manifest is left without its files
        (0 deletes them at once)."""
        self.store = store
        self.catalog = catalog
        self.settings = settings
        self.spool_dir = Path(spool_dir)
        self.convert_options = ConvertOptions(
            row_group_rows=settings.row_group_rows, compression=settings.compression
        )
        self.limit = ConcurrencyLimit(
            settings.max_concurrent,
            lambda: IngestBusy(
                f"{settings.max_concurrent} ingests are already running; retry shortly"
            ),
        )
        self.retire_after_seconds = retire_after_seconds
        self._retiring: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Remove spool files a crashed run left behind.

        Called once at start-up, before any request is served, so no ingest
        of this process can own them.
        """

        def clean() -> int:
            if not self.spool_dir.is_dir():
                return 0
            stale = [p for p in self.spool_dir.iterdir() if p.name.startswith(TMP_PREFIX)]
            for path in stale:
                path.unlink(missing_ok=True)
            return len(stale)

        removed = await asyncio.to_thread(clean)
        if removed:
            log.info("removed %d stale spool file(s)", removed, extra={"dir": str(self.spool_dir)})

    async def close(self) -> None:
        """Drop the pending deletes of replaced objects.

        Those objects are no longer referenced; the orphan sweep at the next
        start-up (or ``POST /admin/gc``) removes them once past its grace period.
        """
        tasks = list(self._retiring)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def ingest(
        self, name: str | None, upload: Upload, types: str | None = None
    ) -> IngestResult:
        """Ingest one upload as dataset ``name``.

        Raises the ingest errors (400/413/415/503), the catalog's
        SchemaConflict (409) and InvalidDatasetName (400); nothing is left
        in storage, the catalog or the spool directory after any of them.
        """
        name = validate_name(name)
        overrides = parse_type_overrides(types)
        max_bytes = self.settings.max_upload_bytes
        if upload.content_length is not None and upload.content_length > max_bytes:
            raise self._too_large()
        async with self.limit.slot():
            started = time.perf_counter()
            await asyncio.to_thread(self.spool_dir.mkdir, parents=True, exist_ok=True)
            token = uuid.uuid4().hex
            csv_path = self.spool_dir / f"{TMP_PREFIX}{token}.csv"
            parquet_path = self.spool_dir / f"{TMP_PREFIX}{token}.parquet"
            try:
                body = capped(upload.chunks, max_bytes, self._too_large)
                if upload.kind == "multipart":
                    spooled = await spool_multipart(body, upload.boundary, csv_path)
                else:
                    spooled = await spool_raw(body, csv_path)
                if spooled.size == 0:
                    raise EmptyCSV("the upload is empty")
                phases = {"spool": time.perf_counter() - started}
                return await self._publish(
                    name, csv_path, parquet_path, spooled, overrides, started, phases
                )
            finally:
                await asyncio.to_thread(_remove, csv_path, parquet_path)

    async def _publish(
        self,
        name: str,
        csv_path: Path,
        parquet_path: Path,
        spooled: Spooled,
        overrides: dict[str, str],
        started: float,
        phases: dict[str, float],
    ) -> IngestResult:
        """``phases``: seconds per step, logged with the result (spool already in)."""
        mark = time.perf_counter()

        def lap(phase: str) -> None:
            nonlocal mark
            now = time.perf_counter()
            phases[phase], mark = now - mark, now

        layout = await asyncio.to_thread(
            infer_layout, csv_path, self.settings.sample_rows, overrides
        )
        lap("infer")
        converted = await asyncio.to_thread(
            convert_csv, csv_path, layout, parquet_path, self.convert_options, spooled.quotes
        )
        lap("convert")
        schema = [Column(name=c.name, type=c.type) for c in layout.columns]
        key = f"{DATASETS_PREFIX}{name}/{uuid.uuid4().hex}.parquet"
        await self.store.put_file(key, parquet_path)
        lap("store")
        try:
            registration = await self.catalog.register(
                RegisterRequest(name=name, schema=schema, objects=[key], row_count=converted.rows)
            )
        except BaseException:
            await self.store.delete(key, missing_ok=True)
            raise
        lap("register")
        if registration.replaced_objects:
            if self.retire_after_seconds > 0:
                task = asyncio.create_task(self._retire(registration.replaced_objects))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)
            else:
                await self._delete_replaced(registration.replaced_objects)
        stats = IngestStats(
            bytes_read=spooled.size,
            rows=converted.rows,
            seconds=round(time.perf_counter() - started, 3),
            delimiter=layout.delimiter,
            schema=schema,
            defaulted=_defaulted(layout.columns),
            widened=converted.widened,
            overridden=[c.name for c in layout.columns if c.source == "override"],
            created=registration.created,
            replaced_objects=registration.replaced_objects,
        )
        for column in stats.defaulted:
            log.info(
                "column defaulted to VARCHAR",
                extra={"dataset": name, "column": column.name, "reason": column.reason},
            )
        for widened in converted.widened:
            log.info(
                "column widened to VARCHAR",
                extra={"dataset": name, "column": widened.name, "reason": widened.reason},
            )
        log.info(
            "ingested",
            extra={
                "dataset": name,
                "rows": converted.rows,
                "bytes": spooled.size,
                "seconds": stats.seconds,
                **{f"{phase}_seconds": round(took, 3) for phase, took in phases.items()},
            },
        )
        return IngestResult(manifest=registration.manifest, stats=stats)

    async def _retire(self, keys: list[str]) -> None:
        await asyncio.sleep(self.retire_after_seconds)
        await self._delete_replaced(keys)

    async def _delete_replaced(self, keys: list[str]) -> None:
        for old in keys:
            try:
                await self.store.delete(old, missing_ok=True)
            except Exception:
                # The new data is published; a leftover old object is garbage, not an error.
                log.warning("could not delete replaced object", extra={"key": old}, exc_info=True)

    def _too_large(self) -> UploadTooLarge:
        limit = self.settings.max_upload_bytes
        return UploadTooLarge(
            f"the upload is larger than the limit of {limit} bytes",
            details={"max_upload_bytes": limit},
        )


def _defaulted(columns: list[InferredColumn]) -> list[DefaultedColumn]:
    return [
        DefaultedColumn(name=c.name, reason=c.reason)
        for c in columns
        if c.source == "inferred" and c.reason is not None
    ]


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
