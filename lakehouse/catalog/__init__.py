"""Catalog: dataset manifests persisted as Parquet through an ObjectStore."""

from lakehouse.catalog.errors import (
    DatasetNotFound,
    InvalidDatasetName,
    InvalidRegistration,
    MissingObjects,
    SchemaConflict,
)
from lakehouse.catalog.interface import (
    Catalog,
    Column,
    Manifest,
    RegisterRequest,
    Registration,
)
from lakehouse.catalog.routes import router as catalog_router
from lakehouse.catalog.service import (
    ManifestCatalog,
    schema_fingerprint,
    validate_dataset_name,
)

__all__ = [
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
    "catalog_router",
    "schema_fingerprint",
    "validate_dataset_name",
]
