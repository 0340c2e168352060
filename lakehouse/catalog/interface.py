"""The Catalog protocol and the manifest it keeps per dataset."""

from __future__ import annotations

import datetime as dt
from typing import Protocol, runtime_checkable

import msgspec


class Column(msgspec.Struct, frozen=True):
    """One column: its name as the header had it, and its DuckDB type name
    (``BIGINT``, ``DOUBLE``, ``BOOLEAN``, ``DATE``, ``TIMESTAMP``, ``VARCHAR``,
    ``DECIMAL(38,0)`` ...)."""

    name: str
    type: str


class Manifest(msgspec.Struct, frozen=True):
    """Everything the catalog knows about one dataset."""

    dataset_id: str
    name: str
    schema_fingerprint: str
    schema: list[Column]
    objects: list[str]
    row_count: int
    created_at: dt.datetime
    updated_at: dt.datetime


class RegisterRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a writer offers to the catalog (the body of POST /catalog/register)."""

    name: str
    schema: list[Column]
    objects: list[str]
    row_count: int


class Registration(msgspec.Struct, frozen=True):
    """The outcome of a register.

    ``created`` is False when the name existed with the same fingerprint and
    was updated in place; ``replaced_objects`` are the storage keys the
    previous manifest referenced and the new one does not (the caller may
    delete them now).
    """

    manifest: Manifest
    created: bool
    replaced_objects: list[str]


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
        """Names (lower-case) of datasets whose manifest exists but could not be read at
        load; their data must not be mistaken for orphans."""

    async def register(self, request: RegisterRequest) -> Registration:
        """Create or update a dataset, idempotent by name + schema fingerprint.
        On any failure the previous manifest stays intact.

        Raises:
            InvalidDatasetName: the name is not a plain SQL identifier (400).
            InvalidRegistration: a nonsensical request (400).
            MissingObjects: an object is not in storage (400).
            SchemaConflict: the name exists with another schema; details hold both (409).
            StorageUnavailable: the store failed (502).
        """

    async def get(self, name: str) -> Manifest:
        """The manifest of ``name`` (case-insensitive).

        Raises:
            InvalidDatasetName: the name is not a plain SQL identifier (400).
            DatasetNotFound: no dataset has that name (404).
        """

    async def list(self) -> list[Manifest]:
        """All manifests, sorted by name."""

    async def delete(self, name: str) -> Manifest:
        """Remove a dataset's manifest and return it. The caller owns deleting the
        data objects.

        Raises:
            InvalidDatasetName: the name is not a plain SQL identifier (400).
            DatasetNotFound: no dataset has that name (404).
            StorageUnavailable: the store failed (502).
        """

    async def version(self) -> str:
        """An etag that changes on every register or delete, and only then. Cheap: the
        query module asks before every query."""
