"""Catalog: datasets as versioned Apache Iceberg tables in a SQL catalog (ADR 0014)."""

from lakehouse.catalog._iceberg import IcebergCatalog, column_typing, database_url
from lakehouse.catalog._types import UnsupportedType, arrow_column_type, arrow_type
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
    DescribedColumn,
    Manifest,
    RegisterRequest,
    Registration,
    SourceFile,
    TableVersion,
)
from lakehouse.catalog.routes import DatasetDetail, datasets_router, describe
from lakehouse.catalog.routes import router as catalog_router
from lakehouse.catalog.rules import (
    check_commit,
    described_columns,
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
    "DatasetDetail",
    "DatasetExists",
    "DatasetNotFound",
    "DatasetVersion",
    "DescribedColumn",
    "IcebergCatalog",
    "InvalidDatasetName",
    "InvalidRegistration",
    "Manifest",
    "MissingObjects",
    "RegisterRequest",
    "Registration",
    "SchemaConflict",
    "SourceFile",
    "TableVersion",
    "UnsupportedType",
    "VersionNotFound",
    "arrow_column_type",
    "arrow_type",
    "catalog_router",
    "check_commit",
    "column_typing",
    "database_url",
    "datasets_router",
    "describe",
    "described_columns",
    "schema_fingerprint",
    "validate_dataset_name",
]
