"""The Catalog protocol and the manifest it keeps per dataset."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Protocol, runtime_checkable

import msgspec


class Column(msgspec.Struct, frozen=True):
    """One column: its name as the header had it, and its DuckDB type name
    (``BIGINT``, ``DOUBLE``, ``BOOLEAN``, ``DATE``, ``TIMESTAMP``, ``VARCHAR``,
    ``DECIMAL(38,0)`` ...)."""

    name: str
    type: str


class Manifest(msgspec.Struct, frozen=True):
    """A dataset as of its current version (what G0 called its manifest)."""

    dataset_id: str
    """The Iceberg table's uuid: stable across versions, new when a name is re-created."""
    name: str
    schema_fingerprint: str
    schema: list[Column]
    objects: list[str]
    """The keys of the current version's data files."""
    row_count: int
    created_at: dt.datetime
    updated_at: dt.datetime
    """When the current version was committed."""
    version: int = 0
    """1, 2, 3 ... per dataset; 0 for a dataset with no version yet."""
    snapshot_id: int | None = None
    """The Iceberg snapshot of the current version."""
    bytes: int = 0
    """Size of the current version's data files."""


class CommitMode(enum.StrEnum):
    """How a commit's files relate to the dataset's current rows."""

    AUTO = "auto"
    """Create the dataset, or replace its rows when the schema is the same (G0's ingest)."""
    CREATE = "create"
    """Create the dataset; ``DatasetExists`` when it exists."""
    APPEND = "append"
    """Add the rows as a new version; new columns evolve the schema."""
    REPLACE = "replace"
    """The files become the whole dataset; the schema becomes theirs."""


class ColumnTyping(msgspec.Struct, frozen=True):
    """How ingest typed one column: ``inferred`` (``reason`` says why it is text when
    values looked typed), ``override`` (``?types=``) or ``widened`` (past the sample)."""

    name: str
    type: str
    source: str = "inferred"
    reason: str | None = None


class DescribedColumn(msgspec.Struct, frozen=True):
    """A column of the current version, and how ingest typed it when it last wrote it."""

    name: str
    type: str
    source: str | None = None
    """``inferred``, ``override``, ``widened``; None when no ingest recorded it."""
    reason: str | None = None


class SourceFile(msgspec.Struct, frozen=True):
    """The upload a version was made from."""

    name: str = ""
    sha256: str = ""


class CommitRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """New data files for a dataset, and how to combine them with its rows."""

    name: str
    schema: list[Column]
    """The files' columns, in order (every file has exactly these)."""
    objects: list[str]
    """Keys of Parquet files under ``datasets/``, already in storage."""
    mode: CommitMode = CommitMode.AUTO
    source: SourceFile | None = None
    typing: list[ColumnTyping] = []


class RegisterRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a writer offers to the catalog (the body of POST /catalog/register): a
    ``CommitRequest`` in ``auto`` mode whose row count the files must match."""

    name: str
    schema: list[Column]
    objects: list[str]
    row_count: int


class Registration(msgspec.Struct, frozen=True):
    """The outcome of a commit.

    ``created`` is True when the commit created the dataset; ``replaced_objects``
    are the keys the previous version referenced and the new one does not (older
    versions may still reference them: the orphan sweep deletes them once no
    retained version does).
    """

    manifest: Manifest
    created: bool
    replaced_objects: list[str]


class DatasetVersion(msgspec.Struct, frozen=True):
    """One entry of a dataset's history."""

    version: int
    snapshot_id: int
    committed_at: dt.datetime
    operation: str
    """``append``, ``overwrite`` (replace, rollback, compaction) or ``delete``."""
    rows_added: int
    rows_removed: int
    total_rows: int
    source_file: str | None = None
    source_sha256: str | None = None
    rollback_of: int | None = None
    """For a rollback: the version whose rows this one restored."""
    typing: list[ColumnTyping] = []
    """How ingest typed the columns of this version's new file (empty otherwise)."""


class TableVersion(msgspec.Struct, frozen=True):
    """A dataset's rows as of one version: what time travel reads."""

    name: str
    version: int
    snapshot_id: int
    schema: list[Column]
    objects: list[str]


@runtime_checkable
class Catalog(Protocol):
    """Dataset manifests. Every method is async, so a remote catalog can honour it."""

    async def load(self) -> None:
        """Rehydrate the catalog from where it is persisted (skipping unreadable manifests).

        Raises:
            StorageUnavailable: the store the manifests live in failed; starting with a
                partial catalog would let a register overwrite a dataset not read.
        """

    async def unreadable(self) -> list[str]:
        """Names (lower-case) whose files the orphan sweep must spare although no retained
        version references them: datasets whose table (or G0 manifest) could not be read,
        and datasets deleted less than ``orphan_grace_seconds`` ago."""

    async def unloaded(self) -> list[str]:
        """Names (lower-case) of datasets that exist but that ``list`` leaves out: their
        table could not be loaded for a passing reason (storage or the catalog database
        failing). A refresh that loads them changes ``version``; so does one that fails."""

    async def commit(self, request: CommitRequest) -> Registration:
        """Make the request's files a new version of the dataset (see ``CommitMode``).
        On any failure the dataset stays as it was, and the files are not referenced.

        Raises:
            InvalidDatasetName: the name is not a plain SQL identifier (400).
            InvalidRegistration: a nonsensical request, or a file that is not Parquet
                with the request's columns (400).
            MissingObjects: a file is not in storage (400).
            DatasetExists: ``create`` of a dataset that exists (409).
            SchemaConflict: the columns cannot be combined with the dataset's; details
                hold both schemas (409).
            StorageUnavailable, CatalogUnavailable: the store or the catalog database
                failed (502).
        """

    async def register(self, request: RegisterRequest) -> Registration:
        """``commit`` in ``auto`` mode, for G0's ``POST /catalog/register``.

        Raises:
            as ``commit``; ``InvalidRegistration`` also when ``row_count`` is not the
            files' row count.
        """

    async def get(self, name: str) -> Manifest:
        """The manifest of ``name`` (case-insensitive).

        Raises:
            InvalidDatasetName: the name is not a plain SQL identifier (400).
            DatasetNotFound: no dataset has that name (404).
        """

    async def history(self, name: str) -> list[DatasetVersion]:
        """The retained versions of ``name``, oldest first.

        Raises:
            InvalidDatasetName, DatasetNotFound: as ``get``.
        """

    async def as_of(
        self, name: str, *, version: int | None = None, timestamp: dt.datetime | None = None
    ) -> TableVersion:
        """The dataset as of ``version``, or as it was at ``timestamp`` (the version
        current then); the current version when neither is given.

        Raises:
            InvalidDatasetName, DatasetNotFound: as ``get``.
            VersionNotFound: no such retained version, or a time before the first one;
                details name the range that exists (404).
        """

    async def rollback(self, name: str, version: int) -> Registration:
        """A new version whose rows are those of ``version`` (history is kept).

        Raises:
            InvalidDatasetName, DatasetNotFound, VersionNotFound: as ``as_of``.
            SchemaConflict: that version's columns cannot be restored (409).
            CatalogUnavailable: the catalog database failed (502).
        """

    async def compact(self, name: str) -> Registration | None:
        """Rewrite the current version's small files as one, as a new version with the
        same rows (None when there is nothing to merge).

        Raises:
            InvalidDatasetName, DatasetNotFound: as ``get``.
            StorageUnavailable, CatalogUnavailable: (502).
        """

    async def referenced_keys(self) -> set[str]:
        """Every key some retained version or metadata file of any dataset needs: what
        the orphan sweep must never delete."""

    async def delete(self, name: str) -> Manifest:
        """Remove a dataset and its history, and return its last manifest. Its files
        are left to the orphan sweep (a query may still be reading them).

        Raises:
            InvalidDatasetName: the name is not a plain SQL identifier (400).
            DatasetNotFound: no dataset has that name (404).
            StorageUnavailable: the store failed (502).
        """

    async def version(self) -> str:
        """An etag that changes when any dataset gets a new version, appears or goes
        (on another replica too, within ``[catalog] refresh_seconds``), and only then.
        Cheap: the query module asks before every query."""

    async def close(self) -> None:
        """Stop background work and release the catalog database."""

    # Last: inside the class body, ``list`` names this method from here on.
    async def list(self) -> list[Manifest]:
        """All manifests, sorted by name."""
