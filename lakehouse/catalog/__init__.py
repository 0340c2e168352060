"""Catalog: dataset manifests persisted as Parquet through an ObjectStore."""

from lakehouse.catalog.errors import (
    DatasetNotFound,
    InvalidDatasetName,
    InvalidRegistration,
    MissingObjects,
    SchemaConflict,
)
from lakehouse.catalog.interface import (
    DATASETS_PREFIX,
    Catalog,
    Column,
    Manifest,
    RegisterRequest,
    Registration,
)
from lakehouse.catalog.service import (
    MANIFEST_PREFIX,
    ManifestCatalog,
    manifest_key,
    schema_fingerprint,
    validate_dataset_name,
)

__all__ = [
    "DATASETS_PREFIX",
    "MANIFEST_PREFIX",
    "Catalog",
    "Column",
    "DatasetNotFound",
    "InvalidDatasetName",
    "InvalidRegistration",
    "Manifest",
    "ManifestCatalog",
    "MissingObjects",
    "RegisterRequest",
    "Registration",
    "SchemaConflict",
    "manifest_key",
    "schema_fingerprint",
    "validate_dataset_name",
]
