"""Catalog: dataset manifests persisted as Parquet through an ObjectStore."""

from lakehouse.catalog.errors import (
    CatalogUnavailable,
    DatasetExists,
    DatasetNotFound,
    InvalidDatasetName,
    InvalidRegistration,
    MissingObjects,
    SchemaConflict,
    VersionNotFound,
)
from lakehouse.catalog.interface import (
    Catalog,
    Column,
    ColumnTyping,
    CommitMode,
    CommitRequest,
    DatasetVersion,
    Manifest,
    RegisterRequest,
    Registration,
    SourceFile,
    TableVersion,
)
from lakehouse.catalog.routes import router as catalog_router
from lakehouse.catalog.service import (
    ManifestCatalog,
    schema_fingerprint,
    validate_dataset_name,
)

__all__ = [
    "Catalog",
    "CatalogUnavailable",
    "Column",
    "ColumnTyping",
    "CommitMode",
    "CommitRequest",
    "DatasetExists",
    "DatasetNotFound",
    "DatasetVersion",
    "InvalidDatasetName",
    "InvalidRegistration",
    "Manifest",
    "ManifestCatalog",
    "MissingObjects",
    "RegisterRequest",
    "Registration",
    "SchemaConflict",
    "SourceFile",
    "TableVersion",
    "VersionNotFound",
    "catalog_router",
    "schema_fingerprint",
    "validate_dataset_name",
]
