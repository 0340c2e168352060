"""The ingest service: spool, infer, convert, store, commit.

Two-phase publish: the Parquet file is written locally, stored under a new
key ``datasets/<name>/data/<uuid>.parquet``, then committed to the catalog as
a new version of the dataset; a failed commit deletes that object, so a failed
ingest leaves nothing behind (ADR 0010). Files a new version no longer uses stay
for the older versions (time travel); the orphan sweep deletes them once no
retained version references them (ADR 0014).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import msgspec
import pyarrow as pa

from lakehouse.catalog import (
    Catalog,
    Column,
    ColumnTyping,
    CommitMode,
    CommitRequest,
    DatasetNotFound,
    Registration,
    SourceFile,
    check_commit,
    validate_dataset_name,
)
from lakehouse.config import IngestSettings
from lakehouse.errors import LakehouseError
from lakehouse.ingest.arrival import Arrival, UploadFailed
from lakehouse.ingest.columnar_convert import convert_arrow, convert_parquet
from lakehouse.ingest.convert import ConvertOptions, ConvertResult, convert_csv
from lakehouse.ingest.detect import SNIFF_BYTES, decide_format
from lakehouse.ingest.errors import EmptyCSV, MissingDatasetName, UnsupportedUpload
from lakehouse.ingest.formats import Converted, Converter, ConvertRequest, Format
from lakehouse.ingest.interface import (
    DefaultedColumn,
    IngestPreview,
    IngestProgress,
    IngestResult,
    IngestStats,
    PreviewColumn,
    Upload,
)
from lakehouse.ingest.json_convert import convert_json_array, convert_ndjson
from lakehouse.ingest.preview import PREVIEW_ROWS, sample_rows
from lakehouse.ingest.schema import (
    CsvLayout,
    InferredColumn,
    conforming_overrides,
    infer_layout,
    parse_type_overrides,
)
from lakehouse.ingest.spool import Hints, Spooled, spool_multipart, spool_raw
from lakehouse.layout import SPOOL_PREFIX, data_key, spool_paths
from lakehouse.storage import ObjectStore

log = logging.getLogger("lakehouse.ingest")
_T = TypeVar("_T")
_PYARROW_IO_THREADS = 8  # pyarrow's default IO pool


def _convert_xlsx(source: Path, target: Path, request: ConvertRequest) -> Converted:
    # openpyxl is imported when the first workbook arrives, not at every start-up.
    from lakehouse.ingest.xlsx_convert import convert_xlsx

    return convert_xlsx(source, target, request)


# The converter of each format other than CSV/TSV (lakehouse.ingest.formats).
CONVERTERS: dict[Format, Converter] = {
    Format.NDJSON: convert_ndjson,
    Format.JSON: convert_json_array,
    Format.PARQUET: convert_parquet,
    Format.ARROW: convert_arrow,
    Format.XLSX: _convert_xlsx,
}


def validate_name(name: str | None) -> str:
    """The dataset name, or MissingDatasetName / InvalidDatasetName (400)."""
    if name is None or name == "":
        raise MissingDatasetName("the query parameter 'name' is required, e.g. ?name=workers")
    return validate_dataset_name(name)


class PhaseTimer:
    """Seconds per phase of one ingest, for the log line: laps from the last mark, and
    phases that overlap a lap (inference and the conversion read the upload as it is
    spooled) timed on their own (``timing``)."""

    def __init__(self) -> None:
        self.started = self._mark = time.perf_counter()
        self.phases: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase], self._mark = now - self._mark, now

    def mark(self) -> None:
        self._mark = time.perf_counter()

    @contextlib.contextmanager
    def timing(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[phase] = time.perf_counter() - started

    def total(self) -> float:
        return round(time.perf_counter() - self.started, 3)


class IngestService:
    """CSV uploads in, registered Parquet datasets out (the ``Ingestor`` protocol)."""

    def __init__(
        self,
        store: ObjectStore,
        catalog: Catalog,
        settings: IngestSettings,
        spool_dir: Path,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.settings = settings
        self.spool_dir = Path(spool_dir)
        self.convert_options = ConvertOptions(
            row_group_rows=settings.row_group_rows,
            compression=settings.compression,
            max_field_bytes=settings.max_field_bytes,
            max_decompressed_bytes=settings.max_decompressed_bytes,
        )
        # One thread per admitted ingest: its head, inference and conversion run in turn.
        self._readers = ThreadPoolExecutor(
            max_workers=max(1, settings.max_concurrent), thread_name_prefix="ingest"
        )
        # pyarrow's CSV reader reads ahead in pyarrow's IO threads (8, shared by the
        # process): each ingest converting while its upload arrives may hold one there,
        # waiting for bytes. Enough for all of them besides pyarrow's own 8.
        pa.set_io_thread_count(
            max(pa.io_thread_count(), _PYARROW_IO_THREADS + settings.max_concurrent)
        )
        self._arriving: set[Arrival] = set()

    async def start(self) -> None:
        """Remove spool files a crashed run left behind.

        Called once at start-up, before any request is served, so no ingest
        of this process can own them.
        """

        def clean() -> int:
            if not self.spool_dir.is_dir():
                return 0
            stale = [p for p in self.spool_dir.iterdir() if p.name.startswith(SPOOL_PREFIX)]
            for path in stale:
                path.unlink(missing_ok=True)
            return len(stale)

        removed = await asyncio.to_thread(clean)
        if removed:
            log.info("removed %d stale spool file(s)", removed, extra={"dir": str(self.spool_dir)})

    async def close(self) -> None:
        """Stop the readers of uploads still arriving (their ingests are failing: the
        server is stopping), then wait for the pool's threads."""
        for arrival in list(self._arriving):
            arrival.fail()
        await asyncio.to_thread(self._readers.shutdown, wait=True)

    async def ingest(
        self,
        name: str | None,
        upload: Upload,
        types: str | None = None,
        mode: CommitMode = CommitMode.AUTO,
        progress: IngestProgress | None = None,
    ) -> IngestResult:
        """Ingest one upload as dataset ``name`` (see ``Ingestor.ingest``)."""
        name = validate_name(name)
        progress = progress or _NoProgress()
        overrides = parse_type_overrides(types)
        timer = PhaseTimer()
        await asyncio.to_thread(self.spool_dir.mkdir, parents=True, exist_ok=True)
        upload_path, parquet_path = spool_paths(self.spool_dir)
        try:
            spooled, upload_format, layout, converted = await self._convert(
                name, upload, overrides, mode, (upload_path, parquet_path), timer, progress
            )
            schema = [Column(name=c.name, type=c.type) for c in layout.columns]
            request = CommitRequest(
                name=name,
                schema=schema,
                objects=[],
                mode=mode,
                source=SourceFile(name=upload.source or spooled.file_name, sha256=spooled.sha256),
                typing=_typing(layout, converted),
            )
            progress.enter("committing")
            registration = await self._publish(request, parquet_path, timer)
            stats = _stats(spooled, upload_format, layout, converted, schema, registration, timer)
            _log_ingest(name, stats, timer)
            return IngestResult(manifest=registration.manifest, stats=stats)
        finally:
            await asyncio.to_thread(_remove, upload_path, parquet_path)

    async def preview(
        self,
        name: str | None,
        upload: Upload,
        types: str | None = None,
        mode: CommitMode = CommitMode.AUTO,
        progress: IngestProgress | None = None,
    ) -> IngestPreview:
        """What ``ingest`` would commit (see ``Ingestor.preview``): the same conversion,
        then the files are removed and nothing is stored or committed."""
        name = validate_name(name)
        progress = progress or _NoProgress()
        overrides = parse_type_overrides(types)
        await asyncio.to_thread(self.spool_dir.mkdir, parents=True, exist_ok=True)
        upload_path, parquet_path = spool_paths(self.spool_dir)
        try:
            spooled, upload_format, layout, converted = await self._convert(
                name, upload, overrides, mode, (upload_path, parquet_path), PhaseTimer(), progress
            )
            schema = [Column(name=c.name, type=c.type) for c in layout.columns]
            await self._check_commit(name, schema, mode)
            rows = await asyncio.to_thread(sample_rows, parquet_path, PREVIEW_ROWS)
        finally:
            await asyncio.to_thread(_remove, upload_path, parquet_path)
        return IngestPreview(
            name=name,
            bytes_read=spooled.received,
            rows=converted.rows,
            delimiter=layout.delimiter or None,
            columns=[
                PreviewColumn(name=t.name, type=t.type, source=t.source, reason=t.reason, risk=risk)
                for t, risk in zip(
                    _typing(layout, converted), _risks(layout, converted), strict=True
                )
            ],
            sample=rows,
            format=upload_format,
            compression=spooled.compression,
        )

    async def _convert(
        self,
        name: str,
        upload: Upload,
        overrides: dict[str, str],
        mode: CommitMode,
        paths: tuple[Path, Path],
        timer: PhaseTimer,
        progress: IngestProgress,
    ) -> tuple[Spooled, Format, CsvLayout, ConvertResult]:
        """Spool the upload (decompressed), tell its format, infer its layout (conformed
        to the dataset on append) and write it as Parquet to the spool: the part of an
        ingest a dry run does too.

        A CSV is inferred and converted while it arrives (``Arrival``, ADR 0009). The
        spool's own error (413, a malformed body, a lost client) is the answer whenever
        there is one, as when the conversion waited for the whole upload; an error of
        the conversion is answered once the whole upload arrived."""
        arrival = Arrival(paths[0])
        self._arriving.add(arrival)
        spooling = asyncio.ensure_future(self._spool(upload, arrival))
        converting = asyncio.ensure_future(
            self._convert_arriving(
                name, upload, overrides, mode, arrival, spooling, paths[1], timer, progress
            )
        )
        try:
            spooled = await spooling
            arrival.end()
            timer.lap("spool")
            progress.enter("converting")
            upload_format, layout, converted = await converting
        except BaseException:
            # The spool failed (its error is the answer; the conversion's, a consequence, is
            # dropped), the conversion did, or the request was cancelled: readers stop.
            arrival.fail()
            await asyncio.gather(converting, return_exceptions=True)
            raise
        finally:
            self._arriving.discard(arrival)
        timer.mark()
        return spooled, upload_format, layout, converted

    async def _convert_arriving(
        self,
        name: str,
        upload: Upload,
        overrides: dict[str, str],
        mode: CommitMode,
        arrival: Arrival,
        spooling: asyncio.Future[Spooled],
        parquet_path: Path,
        timer: PhaseTimer,
        progress: IngestProgress,
    ) -> tuple[Format, CsvLayout, ConvertResult]:
        """``_convert``'s work beside the spool: the format from the first bytes, then a
        CSV from the arriving file, any other format once the spool has ended."""
        head = await self._blocking(arrival.head, SNIFF_BYTES)
        upload_format = decide_format(upload.format, arrival.media_type, arrival.file_name, head)
        if upload_format not in (Format.CSV, Format.TSV):
            await asyncio.wait([spooling])  # these formats are read whole (a Parquet footer)
            if spooling.cancelled() or spooling.exception() is not None:
                raise UploadFailed  # the spool says why
            return upload_format, *await self._convert_other(
                name,
                upload_format,
                upload,
                overrides,
                mode,
                (arrival.path, parquet_path),
                timer,
                progress,
            )
        delimiter = "\t" if upload_format == Format.TSV else None
        with timer.timing("infer"):
            layout = await self._blocking(
                infer_layout, arrival, self.settings.sample_rows, overrides, delimiter
            )
            if mode == CommitMode.APPEND:
                layout = await self._conform(name, layout, arrival, overrides)
        with timer.timing("convert"):
            converted = await self._blocking(
                convert_csv, arrival, layout, parquet_path, self.convert_options, progress.converted
            )
        return upload_format, layout, converted

    async def _blocking(self, function: Callable[..., _T], *args: object) -> _T:
        """``function(*args)`` in a thread of the ingest's own pool (with this task's
        context, as ``asyncio.to_thread`` would): a reader waiting for the upload's bytes
        must not hold a thread the spool's writes need."""
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, function, *args)
        return await loop.run_in_executor(self._readers, call)

    async def _spool(self, upload: Upload, arrival: Arrival) -> Spooled:
        """Write the upload, decompressed, to ``arrival.path``. Raises ``EmptyCSV`` for an
        empty one."""
        hints = Hints(
            file_name=upload.file_name,
            media_type=upload.media_type,
            content_encoding=upload.content_encoding,
            max_decompressed_bytes=self.settings.max_decompressed_bytes,
        )
        if upload.kind == "multipart":
            spooled = await spool_multipart(upload.chunks, upload.boundary, arrival, hints)
        else:
            spooled = await spool_raw(upload.chunks, arrival, hints)
        if spooled.size == 0:
            raise EmptyCSV("the upload is empty")
        return spooled

    async def _convert_other(
        self,
        name: str,
        upload_format: Format,
        upload: Upload,
        overrides: dict[str, str],
        mode: CommitMode,
        paths: tuple[Path, Path],
        timer: PhaseTimer,
        progress: IngestProgress,
    ) -> tuple[CsvLayout, ConvertResult]:
        """Convert a spooled upload of a format other than CSV with its converter."""
        convert = CONVERTERS.get(upload_format)
        if convert is None:
            raise UnsupportedUpload(f"the format {upload_format.value!r} cannot be ingested")
        dataset_types: dict[str, str] = {}
        if mode == CommitMode.APPEND:
            try:
                manifest = await self.catalog.get(name)
                dataset_types = {c.name.lower(): c.type for c in manifest.schema}
            except DatasetNotFound:
                pass
        request = ConvertRequest(
            options=self.convert_options,
            overrides=overrides,
            dataset_types=dataset_types,
            sheet=upload.sheet,
            progress=progress.converted,
        )
        with timer.timing("convert"):
            converted = await asyncio.to_thread(convert, *paths, request)
        layout = CsvLayout(delimiter=converted.delimiter or "", columns=converted.columns)
        return layout, ConvertResult(rows=converted.rows, widened=converted.widened)

    async def _check_commit(self, name: str, schema: list[Column], mode: CommitMode) -> None:
        """Refuse as the commit would (the catalog's own rule), committing nothing."""
        try:
            manifest = await self.catalog.get(name)
        except DatasetNotFound:
            return
        check_commit(name, manifest, schema, mode)

    async def _conform(
        self, name: str, layout: CsvLayout, arrival: Arrival, overrides: dict[str, str]
    ) -> CsvLayout:
        """Re-type inferred columns to the dataset's wider types where no value is lost."""
        try:
            manifest = await self.catalog.get(name)
        except DatasetNotFound:
            return layout
        table_types = {c.name.lower(): c.type for c in manifest.schema}
        wider = conforming_overrides(layout.columns, table_types)
        if not wider:
            return layout
        layout = await self._blocking(
            infer_layout,
            arrival,
            self.settings.sample_rows,
            {**overrides, **wider},
            layout.delimiter,
        )
        reason = f"the dataset {manifest.name!r} has this type"
        layout.columns = [
            msgspec.structs.replace(c, source="dataset", reason=reason, risk=None)
            if c.name in wider
            else c
            for c in layout.columns
        ]
        return layout

    async def _publish(
        self, request: CommitRequest, parquet_path: Path, timer: PhaseTimer
    ) -> Registration:
        """Store the Parquet file under a new key, then commit it; a refused commit
        deletes the object again (the two-phase write of ADR 0010). After any other
        failure the commit may have landed (a lost connection to the catalog database):
        the file stays, and the orphan sweep removes it if no version references it."""
        key = data_key(request.name)
        await self.store.put_file(key, parquet_path)
        timer.lap("store")
        try:
            registration = await self.catalog.commit(
                msgspec.structs.replace(request, objects=[key])
            )
        except LakehouseError as exc:
            if exc.status_code < 500:  # refused before anything was committed
                await self.store.delete(key, missing_ok=True)
            raise
        timer.lap("commit")
        return registration


class _NoProgress:
    def enter(self, phase: str) -> None:
        pass

    def converted(self, rows: int) -> None:
        pass


def _stats(
    spooled: Spooled,
    upload_format: Format,
    layout: CsvLayout,
    converted: ConvertResult,
    schema: list[Column],
    registration: Registration,
    timer: PhaseTimer,
) -> IngestStats:
    return IngestStats(
        bytes_read=spooled.received,
        rows=converted.rows,
        seconds=timer.total(),
        delimiter=layout.delimiter or None,
        schema=schema,
        defaulted=_defaulted(layout.columns),
        widened=converted.widened,
        overridden=[c.name for c in layout.columns if c.source == "override"],
        created=registration.created,
        replaced_objects=registration.replaced_objects,
        format=upload_format,
        compression=spooled.compression,
    )


def _log_ingest(name: str, stats: IngestStats, timer: PhaseTimer) -> None:
    for column in stats.defaulted:
        log.info(
            "column defaulted to VARCHAR",
            extra={"dataset": name, "column": column.name, "reason": column.reason},
        )
    for widened in stats.widened:
        log.info(
            "column widened to VARCHAR",
            extra={"dataset": name, "column": widened.name, "reason": widened.reason},
        )
    log.info(
        "ingested",
        extra={
            "dataset": name,
            "format": stats.format.value,
            "compression": stats.compression.value,
            "rows": stats.rows,
            "bytes": stats.bytes_read,
            "seconds": stats.seconds,
            **{f"{phase}_seconds": round(took, 3) for phase, took in timer.phases.items()},
        },
    )


def _typing(layout: CsvLayout, converted: ConvertResult) -> list[ColumnTyping]:
    """How each column was typed, for the dataset's description."""
    widened = {w.name: w.reason for w in converted.widened}
    return [
        ColumnTyping(
            name=c.name,
            type=c.type,
            source="widened" if c.name in widened else c.source,
            reason=widened.get(c.name, c.reason),
        )
        for c in layout.columns
    ]


def _risks(layout: CsvLayout, converted: ConvertResult) -> list[str | None]:
    """Per column, why its type deserves a look before committing (None: nothing)."""
    widened = {w.name for w in converted.widened}
    return ["widened" if c.name in widened else c.risk for c in layout.columns]


def _defaulted(columns: list[InferredColumn]) -> list[DefaultedColumn]:
    return [
        DefaultedColumn(name=c.name, reason=c.reason)
        for c in columns
        if c.source == "inferred" and c.reason is not None
    ]


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
