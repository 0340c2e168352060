"""Catalog errors, subclasses of the shared hierarchy in ``lakehouse.errors``.

BadRequest
├── InvalidDatasetName (400 invalid_dataset_name)
├── InvalidRegistration (400 invalid_registration)
└── MissingObjects (400 missing_objects)
NotFound
├── DatasetNotFound (404 dataset_not_found)
└── VersionNotFound (404 version_not_found)   details: name, first/last version and time
Conflict
├── SchemaConflict (409 schema_conflict)
└── DatasetExists (409 dataset_exists)
LakehouseError
└── CatalogUnavailable (502 catalog_unavailable)  the catalog database failed
"""

from __future__ import annotations

from lakehouse.errors import BadRequest, Conflict, LakehouseError, NotFound


class InvalidDatasetName(BadRequest):
    """The name is not a plain SQL identifier (``^[A-Za-z_][A-Za-z0-9_]{0,127}$``)."""

    code = "invalid_dataset_name"


class InvalidRegistration(BadRequest):
    """A register request that is well-formed JSON but makes no sense
    (negative row count, no columns, an object key under ``_catalog/``...)."""

    code = "invalid_registration"


class MissingObjects(BadRequest):
    """A register request names storage objects that do not exist."""

    code = "missing_objects"


class DatasetNotFound(NotFound):
    """No dataset of that name (compared case-insensitively)."""

    code = "dataset_not_found"


class SchemaConflict(Conflict):
    """The name exists with another schema fingerprint.

    ``details`` holds ``existing`` and ``offered``, each with its
    ``schema_fingerprint`` and ``schema`` (the ordered columns).
    """

    code = "schema_conflict"


class DatasetExists(Conflict):
    """``mode=create`` for a name that exists."""

    code = "dataset_exists"


class VersionNotFound(NotFound):
    """No retained version with that number, or a time before the first version.

    ``details`` names the range that exists: ``first_version``, ``last_version``,
    ``first_committed_at``, ``last_committed_at``.
    """

    code = "version_not_found"


class CatalogUnavailable(LakehouseError):
    """The catalog database (SQLite or PostgreSQL) failed or is unreachable."""

    status_code = 502
    code = "catalog_unavailable"
