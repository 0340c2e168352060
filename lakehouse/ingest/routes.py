"""HTTP routes of the ingest module: ``POST /ingest`` (mounted at ``/v1/ingest`` by the app).

The handler reads the body itself (``request_body``, a stream), so nothing is
buffered and Litestar's 10 MB ``request_max_body_size`` does not apply; the
route's ``UploadLimit`` enforces ``ingest.max_upload_bytes`` (while streaming)
and ``ingest.max_concurrent``, as the storage PUT route does for its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    RequestBody,
    Schema,
)
from litestar.params import FromPath, FromQuery, QueryParameter
from multipart import parse_options_header  # type: ignore[import-untyped]  # no type hints

from lakehouse.catalog import CommitMode, Manifest
from lakehouse.config import IngestSettings
from lakehouse.errors import BadRequest
from lakehouse.http_body import request_body
from lakehouse.http_errors import error_responses
from lakehouse.ingest.detect import (
    ACCEPTED_MEDIA_TYPES,
    check_media_type,
    declared_compression,
    parse_format,
)
from lakehouse.ingest.errors import (
    IngestBusy,
    MissingFile,
    SourceForbidden,
    SourceWithBody,
    UploadTooLarge,
)
from lakehouse.ingest.formats import Format
from lakehouse.ingest.interface import Ingestor, IngestPreview, IngestStats, Upload
from lakehouse.ingest.jobs import IngestJob, IngestJobs
from lakehouse.ingest.service import validate_name
from lakehouse.layout import DATASETS_PREFIX, LOCAL_ONLY_PREFIXES, RESERVED_PREFIXES
from lakehouse.limits import UploadLimit
from lakehouse.openapi_docs import documented, examples
from lakehouse.storage import InvalidKey, ObjectStore, validate_key

# Keys ?source= may not name: the lakehouse's own records and scratch, and the datasets'
# files (read those with SQL).
FORBIDDEN_SOURCE_PREFIXES = (*RESERVED_PREFIXES, *LOCAL_ONLY_PREFIXES, DATASETS_PREFIX)


def upload_limit(settings: IngestSettings) -> UploadLimit:
    """The size cap and concurrency limit of ingest; the composition root builds one
    per app and provides it as the ``ingest_limit`` dependency."""
    max_bytes, limit = settings.max_upload_bytes, settings.max_concurrent
    return UploadLimit(
        max_bytes,
        limit,
        too_large=lambda: UploadTooLarge(
            f"the upload is larger than the limit of {max_bytes} bytes",
            details={"max_upload_bytes": max_bytes},
        ),
        busy=lambda: IngestBusy(f"{limit} ingests are already running; retry shortly"),
    )


class IngestResponse(Manifest, frozen=True, kw_only=True):
    """The 200 body: the dataset's manifest at the top level, plus what this ingest did."""

    ingest: IngestStats
    job: str
    """The id of this ingest's job (``GET /v1/ingest/jobs/{job}``), also in ``X-Ingest-Job``."""


_CSV_EXAMPLE = "worker_id,name,state,hourly_rate\n1,Ada,IL,31.5\n2,Grace,CA,28.0\n"

_BINARY = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)

INGEST_REQUEST = RequestBody(
    required=False,
    description=(
        "The file, streamed: a multipart/form-data field `file` (curl -F file=@workers.csv), "
        "or the raw file as the body (curl --data-binary @workers.csv -H 'Content-Type: "
        "text/csv'); none with `?source=`. Formats: "
        + ", ".join(f.value for f in Format)
        + ", told by ?format=, else the Content-Type (the multipart part's own for a form), "
        "else the file name's extension (a raw body's from Content-Disposition: attachment; "
        "filename=...), else the first bytes. gzip or zstd compression (Content-Encoding, "
        "application/gzip, application/zstd, .gz/.zst names or the bytes) is decompressed "
        "while streaming. Accepted Content-Types: " + ", ".join(ACCEPTED_MEDIA_TYPES) + "."
    ),
    content={
        "multipart/form-data": OpenAPIMediaType(
            schema=Schema(
                type=OpenAPIType.OBJECT,
                properties={"file": _BINARY},
                required=["file"],
            ),
            examples=examples(workers_csv={"file": _CSV_EXAMPLE}),
        ),
        "text/csv": OpenAPIMediaType(
            schema=Schema(type=OpenAPIType.STRING),
            examples=examples(workers_csv=_CSV_EXAMPLE),
        ),
        # Every other format, raw (the description lists the Content-Types that name one).
        "application/octet-stream": OpenAPIMediaType(schema=_BINARY),
    },
)

INGEST_RESPONSE_EXAMPLES = examples(
    workers_500k={
        "dataset_id": "3b3bbb3d-5ef8-42f7-9d21-5bd048319bc4",
        "name": "workers_500k",
        "schema_fingerprint": "3d48397238b4ae66ef0cf607f371f7dfed62b81a688d170d1d89d8c2976b0817",
        "schema": [
            {"name": "worker_id", "type": "BIGINT"},
            {"name": "name", "type": "VARCHAR"},
            {"name": "state", "type": "VARCHAR"},
            {"name": "hourly_rate", "type": "DOUBLE"},
        ],
        "objects": ["datasets/workers_500k/79656437b0934c82b0e7c51ee2d90e59.parquet"],
        "row_count": 500000,
        "created_at": "2025-01-01T12:00:00.276509Z",
        "updated_at": "2025-01-01T12:00:00.276509Z",
        "ingest": {
            "bytes_read": 31457280,
            "rows": 500000,
            "seconds": 2.4,
            "delimiter": ",",
            "schema": [
                {"name": "worker_id", "type": "BIGINT"},
                {"name": "name", "type": "VARCHAR"},
                {"name": "state", "type": "VARCHAR"},
                {"name": "hourly_rate", "type": "DOUBLE"},
            ],
            "defaulted": [],
            "widened": [],
            "overridden": [],
            "created": True,
            "replaced_objects": [],
        },
        "job": "6f1c8f4e-2b57-4a55-9a3e-7f7d1f5ad7b1",
    }
)


@post(
    "/ingest",
    summary="Ingest a file (CSV, TSV, NDJSON, JSON, Parquet, Arrow, xlsx) as a dataset",
    description=(
        "Body: multipart/form-data with a field `file`, or the raw file; or no body and "
        "`?source=<key>` for an object already in storage. gzip/zstd are decompressed. "
        "Returns the manifest plus ingest stats (with the format and compression found). "
        "Its progress "
        "is at GET /v1/ingest/jobs/{job}, under the id given as `?job=` or returned (`job`, "
        "and the X-Ingest-Job header)."
    ),
    request_max_body_size=None,  # capped while streaming by the service
    status_code=200,
    tags=["ingest"],
    responses=error_responses(400, 403, 404, 409, 413, 415, 502, 503),
    operation_class=documented(
        request_body=INGEST_REQUEST, success_examples=INGEST_RESPONSE_EXAMPLES
    ),
)
async def ingest(
    request: Request[Any, Any, Any],
    ingestor: NamedDependency[Ingestor],
    ingest_limit: NamedDependency[UploadLimit],
    ingest_jobs: NamedDependency[IngestJobs],
    store: NamedDependency[ObjectStore],
    name: FromQuery[str | None] = None,
    types: Annotated[
        str | None, QueryParameter(description="Type overrides, e.g. zip:string,amount:double")
    ] = None,
    mode: Annotated[
        str | None,
        QueryParameter(
            description="create, append or replace; none: create, or replace when the "
            "schema is the same"
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        QueryParameter(
            description="true: answer the proposed schema, how each column was typed "
            "(risky ones flagged) and sample rows; nothing is written"
        ),
    ] = False,
    job: Annotated[
        str | None,
        QueryParameter(
            description="A UUID chosen by the client, to follow the ingest's progress at "
            "GET /v1/ingest/jobs/{job} before its response arrives; else one is made"
        ),
    ] = None,
    format: Annotated[
        str | None,
        QueryParameter(description="The upload's format: " + ", ".join(f.value for f in Format)),
    ] = None,
    sheet: Annotated[
        str | None, QueryParameter(description="xlsx: the sheet to read (default: the first)")
    ] = None,
    source: Annotated[
        str | None,
        QueryParameter(
            description="The key of an object already in storage to ingest instead of a "
            "body (not under datasets/, _catalog/, _tmp/ or _state/: 403)"
        ),
    ] = None,
) -> Response[IngestResponse | IngestPreview]:
    commit_mode = _commit_mode(mode, request.query_params.keys())
    upload_format = parse_format(format)
    media_type, options = request.content_type
    multipart = media_type == "multipart/form-data"
    has_body = not _no_body(request)
    if source is not None:
        if has_body:
            raise SourceWithBody("send either a body or ?source=, not both")
        source = _source_key(source)
    elif not multipart:
        check_media_type(media_type)
        if not media_type and not has_body:
            raise MissingFile(
                "no file: send a multipart field 'file', a raw body, or ?source=<key>"
            )
    file_name = source or _attachment_name(request.headers.get("content-disposition", ""))
    content_encoding = request.headers.get("content-encoding", "")
    declared_compression(content_encoding, media_type, file_name)  # a 415 before the body
    # A bad name is a 400 before the limits look at the body.
    validate_name(name)
    job_id = ingest_jobs.check_id(job)
    async with (
        _chunks(request, store, source) as chunks,
        ingest_limit.admit(request.content_length, chunks) as body,
    ):
        progress = ingest_jobs.begin(job_id, name, request.content_length)
        upload = Upload(
            kind="multipart" if multipart and source is None else "raw",
            chunks=progress.counting(body),
            boundary=options.get("boundary", "") if multipart else "",
            format=upload_format,
            sheet=sheet,
            media_type="" if source is not None else media_type,
            file_name=file_name,
            content_encoding=content_encoding,
            source=source,
        )
        try:
            outcome = await (
                ingestor.preview(name, upload, types, commit_mode, progress)
                if dry_run
                else ingestor.ingest(name, upload, types, commit_mode, progress)
            )
        except BaseException as exc:
            progress.fail(exc)
            raise
        progress.succeed(outcome)
    if isinstance(outcome, IngestPreview):
        return Response(
            msgspec.structs.replace(outcome, job=job_id), headers={"X-Ingest-Job": job_id}
        )
    result = outcome
    return Response(
        IngestResponse(**msgspec.structs.asdict(result.manifest), ingest=result.stats, job=job_id),
        headers={"X-Ingest-Job": job_id},
    )


@get(
    "/ingest/jobs",
    summary="Recent ingest jobs, newest first",
    description="Every running ingest and the last finished ones (kept in memory).",
    tags=["ingest"],
)
async def ingest_jobs_list(ingest_jobs: NamedDependency[IngestJobs]) -> list[IngestJob]:
    return ingest_jobs.recent()


@get(
    "/ingest/jobs/{job_id:str}",
    summary="One ingest's progress",
    description=(
        "Its phase (receiving, converting, committing, done, failed), bytes received, "
        "rows converted, and once finished the result or the error."
    ),
    tags=["ingest"],
    responses=error_responses(404),
)
async def ingest_job(ingest_jobs: NamedDependency[IngestJobs], job_id: FromPath[str]) -> IngestJob:
    return ingest_jobs.get(job_id)


jobs_router = Router("/", route_handlers=[ingest_jobs_list, ingest_job])

QUERY_PARAMETERS = frozenset(
    {"name", "types", "mode", "dry_run", "job", "format", "sheet", "source"}
)


def _source_key(key: str) -> str:
    """``?source=`` validated: a key the storage API could store, outside the areas
    only the lakehouse reads (``SourceForbidden``, 403, for anything else)."""
    try:
        key = validate_key(key)
    except InvalidKey as exc:
        raise SourceForbidden(f"?source= is not a key ingest may read: {exc}") from None
    if key.startswith(FORBIDDEN_SOURCE_PREFIXES):
        raise SourceForbidden(
            f"?source= may not name a key under {key.split('/', 1)[0]}/",
            details={"forbidden_prefixes": list(FORBIDDEN_SOURCE_PREFIXES)},
        )
    return key


@asynccontextmanager
async def _chunks(
    request: Request[Any, Any, Any], store: ObjectStore, source: str | None
) -> AsyncIterator[AsyncIterator[bytes]]:
    """The request's body, or the ``source`` object's bytes; the object's stream is
    closed when the ingest ends, also when it stopped reading early (an error)."""
    if source is None:
        yield request_body(request)
        return
    chunks = store.open_read(source)
    try:
        yield chunks
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


def _attachment_name(disposition: str) -> str:
    """The file name of ``Content-Disposition: attachment; filename=...``, or ''."""
    if not disposition:
        return ""
    _, options = parse_options_header(disposition)
    return str(options.get("filename", ""))


def _commit_mode(mode: str | None, parameters: Iterable[str]) -> CommitMode:
    """``?mode=`` as a CommitMode; a 400 for an unknown mode or query parameter (a
    typo silently ignored would write the data the wrong way)."""
    unknown = sorted(set(parameters) - QUERY_PARAMETERS)
    if unknown:
        raise BadRequest(
            f"unknown query parameter(s) {', '.join(unknown)}; this route takes "
            f"{', '.join(sorted(QUERY_PARAMETERS))}",
            details={"unknown": unknown},
        )
    if mode is None:
        return CommitMode.AUTO
    allowed = [m.value for m in CommitMode if m != CommitMode.AUTO]
    if mode not in allowed:
        raise BadRequest(
            f"unknown mode {mode!r}; use one of {', '.join(allowed)}",
            details={"mode": mode, "allowed": allowed},
        )
    return CommitMode(mode)


def _no_body(request: Request[Any, Any, Any]) -> bool:
    """No body at all: neither a Content-Length above 0 nor a chunked one.
    (An empty body that was sent is the service's EmptyCSV.)"""
    headers = request.headers
    return "transfer-encoding" not in headers and headers.get("content-length", "0") == "0"
