"""Ingest errors, subclasses of the shared hierarchy in ``lakehouse.errors``.

BadRequest
├── MissingDatasetName (400 missing_name)
├── MissingFile (400 missing_file)
├── EmptyCSV (400 empty_csv)            empty body/file, no header row
├── InvalidCSV (400 invalid_csv)        unparseable input, bad multipart, a quote never closed
├── EmptyJSON (400 empty_json)          NDJSON/JSON with no records, or records without keys
├── InvalidJSON (400 invalid_json)      details: line (NDJSON) or byte_offset (JSON array)
├── FieldTooLarge (400 field_too_large) details: line, max_field_bytes
├── RaggedRows (400 ragged_rows)        details: line, row, expected, got
├── NotUTF8 (400 not_utf8)
├── InvalidTypeOverride (400 invalid_type_override)
├── InvalidParquet (400 invalid_parquet)
├── InvalidArrow (400 invalid_arrow)
├── UnsupportedColumnType (400 unsupported_column_type)   details: column, type
├── InvalidXLSX (400 invalid_xlsx)      not a workbook, or a broken one
├── UnknownSheet (400 unknown_sheet)    details: sheet, sheets
├── EmptySheet (400 empty_sheet)        an xlsx sheet without a cell
├── FormatMismatch (400 format_mismatch)   details: declared, declared_by, detected
├── InvalidCompression (400 invalid_compression)  cut short, corrupt, or not what was declared
└── SourceWithBody (400 source_with_body)  ?source= and a request body
Forbidden
└── SourceForbidden (403 source_forbidden) ?source= a key outside the data area
UnsupportedMediaType
└── UnsupportedUpload (415 unsupported_upload)
PayloadTooLarge
├── UploadTooLarge (413 upload_too_large)
└── DecompressedTooLarge (413 decompressed_too_large)  details: max_decompressed_bytes
ServiceBusy
└── IngestBusy (503 ingest_busy, Retry-After)
"""

from __future__ import annotations

from lakehouse.errors import (
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    ServiceBusy,
    UnsupportedMediaType,
)


class MissingDatasetName(BadRequest):
    code = "missing_name"


class MissingFile(BadRequest):
    code = "missing_file"


class EmptyCSV(BadRequest):
    code = "empty_csv"


class InvalidCSV(BadRequest):
    code = "invalid_csv"


class EmptyJSON(BadRequest):
    code = "empty_json"


class InvalidJSON(BadRequest):
    """Malformed JSON, or a record that is not an object; details name the line (NDJSON)
    or the byte offset (a JSON array)."""

    code = "invalid_json"


class FieldTooLarge(BadRequest):
    """A row larger than ``ingest.max_field_bytes``; details name the line it starts on."""

    code = "field_too_large"


class RaggedRows(BadRequest):
    """A row has another number of fields than the header; details name the line."""

    code = "ragged_rows"


class NotUTF8(BadRequest):
    code = "not_utf8"


class InvalidTypeOverride(BadRequest):
    code = "invalid_type_override"


class FormatMismatch(BadRequest):
    """The bytes are not in the format the request declared."""

    code = "format_mismatch"


class InvalidCompression(BadRequest):
    """A compressed upload that is cut short, corrupt, or not compressed as declared."""

    code = "invalid_compression"


class SourceWithBody(BadRequest):
    code = "source_with_body"


class SourceForbidden(Forbidden):
    """``?source=`` names a key ingest may not read (reserved, a dataset's files, invalid)."""

    code = "source_forbidden"


class UnsupportedUpload(UnsupportedMediaType):
    code = "unsupported_upload"


class UploadTooLarge(PayloadTooLarge):
    code = "upload_too_large"


class DecompressedTooLarge(PayloadTooLarge):
    """A compressed upload that decompresses to more than ``ingest.max_decompressed_bytes``."""

    code = "decompressed_too_large"


class IngestBusy(ServiceBusy):
    code = "ingest_busy"


class InvalidParquet(BadRequest):
    """The upload is not a readable Parquet file (not Parquet, truncated, corrupt)."""

    code = "invalid_parquet"


class InvalidArrow(BadRequest):
    """The upload is not a readable Arrow IPC file or stream."""

    code = "invalid_arrow"


class UnsupportedColumnType(BadRequest):
    """A column of a typed format (Parquet, Arrow) with a type a table cannot hold,
    or values that do not fit the nearest type it can; details name the column."""

    code = "unsupported_column_type"


class InvalidXLSX(BadRequest):
    """An upload read as xlsx that is no readable workbook (not a zip, cut short, no workbook)."""

    code = "invalid_xlsx"


class UnknownSheet(BadRequest):
    """``?sheet=`` names no worksheet of the workbook; details list its sheets."""

    code = "unknown_sheet"


class EmptySheet(BadRequest):
    code = "empty_sheet"
