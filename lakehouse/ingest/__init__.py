"""Ingest: streaming CSV -> typed Parquet -> storage -> catalog."""

from lakehouse.ingest.errors import (
    EmptyCSV,
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
from lakehouse.ingest.service import IngestResult, IngestService, IngestStats, Upload

__all__ = [
    "EmptyCSV",
    "IngestBusy",
    "IngestResult",
    "IngestService",
    "IngestStats",
    "InvalidCSV",
    "InvalidTypeOverride",
    "MissingDatasetName",
    "MissingFile",
    "NotUTF8",
    "RaggedRows",
    "UnsupportedUpload",
    "Upload",
    "UploadTooLarge",
]
