"""Ingest: streaming CSV -> typed Parquet -> storage -> catalog."""

from lakehouse.ingest.errors import (
    EmptyCSV,
    FieldTooLarge,
    IngestBusy,
    InvalidCSV,
    InvalidTypeOverride,
    MissingDatasetName,
    MissingFile,
    NotUTF8,
    RaggedRows,
    UnsupportedUpload,
    UploadTooLarge,
)
from lakehouse.ingest.interface import (
    DefaultedColumn,
    Ingestor,
    IngestPreview,
    IngestResult,
    IngestStats,
    PreviewColumn,
    Upload,
)
from lakehouse.ingest.routes import ingest as ingest_route
from lakehouse.ingest.routes import upload_limit
from lakehouse.ingest.service import IngestService, validate_name

__all__ = [
    "DefaultedColumn",
    "EmptyCSV",
    "FieldTooLarge",
    "IngestBusy",
    "IngestPreview",
    "IngestResult",
    "IngestService",
    "IngestStats",
    "Ingestor",
    "InvalidCSV",
    "InvalidTypeOverride",
    "MissingDatasetName",
    "MissingFile",
    "NotUTF8",
    "PreviewColumn",
    "RaggedRows",
    "UnsupportedUpload",
    "Upload",
    "UploadTooLarge",
    "ingest_route",
    "upload_limit",
    "validate_name",
]
