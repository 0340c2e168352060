"""Ingest errors, subclasses of the shared hierarchy in ``lakehouse.errors``.

BadRequest
├── MissingDatasetName (400 missing_name)
├── MissingFile (400 missing_file)
├── EmptyCSV (400 empty_csv)            empty body/file, no header row
├── InvalidCSV (400 invalid_csv)        unparseable input, bad multipart, a quote never closed
├── FieldTooLarge (400 field_too_large) details: line, max_field_bytes
├── RaggedRows (400 ragged_rows)        details: line, row, expected, got
├── NotUTF8 (400 not_utf8)
├── InvalidTypeOverride (400 invalid_type_override)
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
