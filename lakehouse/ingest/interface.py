"""The Ingestor protocol and the values it takes and returns."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Literal, Protocol, runtime_checkable

import msgspec

from lakehouse.catalog import Column, CommitMode, Manifest
from lakehouse.ingest.convert import WidenedColumn


class Upload(msgspec.Struct):
    """The request body as the routes hand it over (no Litestar types here): already
    admitted by the route's size cap and concurrency limit."""

    kind: Literal["raw", "multipart"]
    chunks: AsyncIterable[bytes]
    boundary: str = ""


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
