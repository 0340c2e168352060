"""HTTP routes of the ingest module: ``POST /ingest`` and ``POST /v1/ingest``.

The handler reads the body itself (``request_body``, a stream), so nothing is
buffered and Litestar's 10 MB ``request_max_body_size`` does not apply; the
ingest service enforces ``ingest.max_upload_bytes`` while streaming.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Router, post
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter

from lakehouse.http_body import request_body
from lakehouse.ingest.errors import MissingFile, UnsupportedUpload
from lakehouse.ingest.service import IngestService, Upload, result_body, validate_name

# Bodies taken as raw CSV; anything else but multipart/form-data is a 415.
RAW_TYPES = frozenset(
    {"", "text/csv", "text/plain", "application/csv", "application/octet-stream",
     "text/tab-separated-values"}
)  # fmt: skip


@post(
    ["/ingest", "/v1/ingest"],
    summary="Ingest a CSV as a dataset",
    description=(
        "Body: multipart/form-data with a field `file`, or the raw CSV "
        "(Content-Type: text/csv). Returns the manifest plus ingest stats."
    ),
    request_max_body_size=None,  # capped while streaming by the service
    status_code=200,
    tags=["ingest"],
)
async def ingest(
    request: Request[Any, Any, Any],
    ingest_service: NamedDependency[IngestService],
    name: FromQuery[str | None] = None,
    types: Annotated[
        str | None, QueryParameter(description="Type overrides, e.g. zip:string,amount:double")
    ] = None,
) -> dict[str, Any]:
    validate_name(name)  # before a byte of the body is read
    media_type, options = request.content_type
    if media_type == "multipart/form-data":
        upload = Upload(
            kind="multipart", chunks=request_body(request), boundary=options.get("boundary", "")
        )
    elif media_type in RAW_TYPES:
        if not media_type and request.headers.get("content-length", "0") == "0":
            raise MissingFile("no CSV: send a multipart field 'file' or a text/csv body")
        upload = Upload(kind="raw", chunks=request_body(request))
    else:
        raise UnsupportedUpload(
            f"unsupported Content-Type {media_type!r}: use multipart/form-data "
            "(field 'file') or text/csv"
        )
    upload.content_length = request.content_length
    result = await ingest_service.ingest(name, upload, types)
    return result_body(result)


router = Router(path="/", route_handlers=[ingest])
