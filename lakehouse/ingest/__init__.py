"""Ingest: a streamed upload (CSV, TSV, NDJSON, JSON, Parquet, Arrow, xlsx; gzip/zstd) or an
object already in storage -> typed Parquet -> storage -> catalog."""

from lakehouse.ingest.errors import (
    DecompressedTooLarge,
    EmptyCSV,
    FieldTooLarge,
    FormatMismatch,
    IngestBusy,
    InvalidCompression,
    InvalidCSV,
    InvalidTypeOverride,
    MissingDatasetName,
    MissingFile,
    NotUTF8,
    RaggedRows,
    SourceForbidden,
    SourceWithBody,
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
    "DecompressedTooLarge",
    "DefaultedColumn",
    "EmptyCSV",
    "FieldTooLarge",
    "FormatMismatch",
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
    "InvalidCompression",
    "InvalidJobId",
    "InvalidTypeOverride",
    "JobExists",
    "JobNotFound",
    "MissingDatasetName",
    "MissingFile",
    "NotUTF8",
    "PreviewColumn",
    "RaggedRows",
    "SourceForbidden",
    "SourceWithBody",
    "UnsupportedUpload",
    "Upload",
    "UploadTooLarge",
    "ingest_jobs_router",
    "ingest_route",
    "upload_limit",
    "validate_name",
]
