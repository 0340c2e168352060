"""The Ingestor protocol and the values it takes and returns."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from lakehouse.catalog import Column, CommitMode, Manifest
from lakehouse.ingest.convert import WidenedColumn
from lakehouse.ingest.formats import Compression, Format


class Upload(msgspec.Struct):
    """The request body as the routes hand it over (no Litestar types here): already
    admitted by the route's size cap and concurrency limit."""

    kind: Literal["raw", "multipart"]
    chunks: AsyncIterable[bytes]
    boundary: str = ""
    format: Format | None = None
    """``?format=``; None: the Content-Type, file name or bytes tell (``detect``)."""
    media_type: str = ""
    """The request's Content-Type (a multipart part's own replaces it)."""
    file_name: str = ""
    """The raw body's name (``Content-Disposition``) or the ``?source=`` key; a multipart
    part's own file name replaces it."""
    content_encoding: str = ""
    """``Content-Encoding``: gzip or zstd, if the body is compressed."""
    source: str | None = None
    """``?source=``: the key of the object in storage ``chunks`` reads."""
    sheet: str | None = None
    """``?sheet=``: the xlsx sheet to read; None: the first."""


class DefaultedColumn(msgspec.Struct):
    name: str
    reason: str


class IngestStats(msgspec.Struct):
    """What one ingest did, returned next to the manifest."""

    bytes_read: int
    rows: int
    seconds: float
    delimiter: str | None
    """The CSV/TSV delimiter; null for the other formats."""
    schema: list[Column]
    defaulted: list[DefaultedColumn]
    widened: list[WidenedColumn]
    overridden: list[str]
    created: bool
    replaced_objects: list[str]
    format: Format = Format.CSV
    """The format the upload was read as (``?format=``, Content-Type, name or bytes)."""
    compression: Compression = Compression.NONE
    """gzip or zstd when the upload was compressed (``bytes_read`` counts it compressed)."""


class IngestResult(msgspec.Struct):
    manifest: Manifest
    stats: IngestStats


class PreviewColumn(msgspec.Struct):
    """A column as a dry run would commit it, and how it was typed."""

    name: str
    type: str
    source: str
    """``inferred``, ``override``, ``dataset`` (an append keeps the dataset's type) or
    ``widened`` (a value past the sample did not fit the inferred type)."""
    reason: str | None
    risk: str | None
    """``leading_zeros``, ``mixed``, ``defaulted`` or ``widened``: a type to check
    (and perhaps override with ``types=``) before committing; None otherwise."""


class IngestPreview(msgspec.Struct):
    """``dry_run=true``: what the ingest would commit; nothing was written."""

    name: str
    bytes_read: int
    rows: int
    delimiter: str | None
    columns: list[PreviewColumn]
    sample: list[list[Any]]
    """The first rows as the table would hold them, in column order."""
    format: Format = Format.CSV
    """The format the upload was read as (``?format=``, Content-Type, name or bytes)."""
    compression: Compression = Compression.NONE
    """gzip or zstd when the upload was compressed (``bytes_read`` counts it compressed)."""
    dry_run: bool = True
    job: str | None = None
    """The ingest job that followed it (``GET /v1/ingest/jobs/{job}``)."""


class IngestProgress(Protocol):
    """Where an ingest reports how far it got (an ``IngestJob``)."""

    def enter(self, phase: Literal["converting", "committing"]) -> None:
        """The ingest moved on to ``phase``."""

    def converted(self, rows: int) -> None:
        """``rows`` rows converted so far; called from a worker thread."""


@runtime_checkable
class Ingestor(Protocol):
    """CSV uploads in, registered datasets out."""

    async def start(self) -> None:
        """Remove what a crashed run left in the spool directory. Called once at start-up."""

    async def close(self) -> None:
        """Release what ``start`` set up."""

    async def ingest(
        self,
        name: str | None,
        upload: Upload,
        types: str | None = None,
        mode: CommitMode = CommitMode.AUTO,
        progress: IngestProgress | None = None,
    ) -> IngestResult:
        """Ingest one upload as a new version of dataset ``name`` (``mode``: see
        ``CommitMode``), telling ``progress`` each phase and the rows converted.
        Nothing is left in storage, the catalog or the spool directory after any error.

        Raises:
            MissingDatasetName, InvalidDatasetName: no or a bad ``name`` (400).
            InvalidTypeOverride: ``types`` is malformed or names no column (400).
            EmptyCSV, InvalidCSV, RaggedRows, FieldTooLarge, NotUTF8: the upload is not
                usable CSV (400).
            UploadIncomplete: the client stopped sending mid-body (400).
            UploadTooLarge: raised by the admitted ``upload.chunks`` (413).
            DatasetExists: ``create`` of a dataset that exists (409).
            SchemaConflict: the columns cannot be combined with the dataset's (409).
            StorageUnavailable: the store failed (502).
        """

    async def preview(
        self,
        name: str | None,
        upload: Upload,
        types: str | None = None,
        mode: CommitMode = CommitMode.AUTO,
        progress: IngestProgress | None = None,
    ) -> IngestPreview:
        """A dry run of ``ingest``: the proposed schema, how each column was typed and
        which are risky, and sample rows. Reads and converts the whole upload (so
        widening past the sample shows) but stores, commits and keeps nothing.

        Raises: as ``ingest`` before its commit (400, 413).
        """
