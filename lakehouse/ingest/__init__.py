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
    IngestProgress,
    IngestResult,
    IngestStats,
    PreviewColumn,
    Upload,
)
from lakehouse.ingest.jobs import IngestJob, IngestJobs, InvalidJobId, JobExists, JobNotFound
from lakehouse.ingest.routes import ingest as ingest_route
from lakehouse.ingest.routes import jobs_router as ingest_jobs_router
from lakehouse.ingest.routes import upload_limit
from lakehouse.ingest.service import IngestService, validate_name

__all__ = [
    "DefaultedColumn",
    "EmptyCSV",
    "FieldTooLarge",
    "IngestBusy",
    "IngestJob",
    "IngestJobs",
    "IngestPreview",
    "IngestProgress",
    "IngestResult",
    "IngestService",
    "IngestStats",
    "Ingestor",
    "InvalidCSV",
    "InvalidJobId",
    "InvalidTypeOverride",
    "JobExists",
    "JobNotFound",
    "MissingDatasetName",
    "MissingFile",
    "NotUTF8",
    "PreviewColumn",
    "RaggedRows",
    "UnsupportedUpload",
    "Upload",
    "UploadTooLarge",
    "ingest_jobs_router",
    "ingest_route",
    "upload_limit",
    "validate_name",
]
