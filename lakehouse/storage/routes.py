"""HTTP routes of the storage module: thin wrappers around ``ObjectStore``.

    PUT    /storage/put/{key}      raw body, streamed into the store
    GET    /storage/get/{key}      the object, streamed back
    GET    /storage/list?prefix=   JSON list of {key, size, etag, last_modified}
    DELETE /storage/delete/{key}   204

Limits (``[storage]``): a PUT body over ``max_put_bytes`` is answered 413 as
soon as the excess arrives (or at once when Content-Length announces it), and
nothing is stored; a PUT beyond ``max_concurrent_puts`` in flight is refused
with 503 + ``Retry-After: 5`` before any of its body is read.
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import unquote_to_bytes

from litestar import Request, Router, delete, get, put
from litestar.di import NamedDependency
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    RequestBody,
    Schema,
)
from litestar.params import FromPath, FromQuery
from litestar.response import Stream

from lakehouse.config import StorageSettings
from lakehouse.http_body import prepend, request_body
from lakehouse.http_errors import error_responses
from lakehouse.layout import RESERVED_PREFIXES
from lakehouse.limits import UploadLimit
from lakehouse.openapi_docs import documented
from lakehouse.storage.errors import InvalidKey, ObjectTooLarge, ReservedKey, StorageBusy
from lakehouse.storage.interface import ObjectInfo, ObjectStore
from lakehouse.storage.keys import validate_key

_MOUNT = "/storage"


def put_limit(settings: StorageSettings) -> UploadLimit:
    """The size cap and concurrency limit of PUT; the composition root builds one
    per app and provides it as the ``put_limit`` dependency."""
    limit = settings.max_concurrent_puts
    return UploadLimit(
        settings.max_put_bytes,
        limit,
        too_large=partial(ObjectTooLarge.over, settings.max_put_bytes),
        busy=lambda: StorageBusy(
            "too many storage PUTs in flight; retry shortly",
            retry_after_seconds=5,
            details={"max_concurrent_puts": limit},
        ),
    )


def _writable_key(request: Request[Any, Any, Any], route: str, param: str) -> str:
    """Like ``_object_key``, and not under one of the ``RESERVED_PREFIXES``."""
    key = _object_key(request, route, param)
    if key.startswith(RESERVED_PREFIXES):
        raise ReservedKey(
            f"keys under {key.split('/', 1)[0]}/ are written only by the lakehouse itself",
            details={"reserved_prefixes": list(RESERVED_PREFIXES)},
        )
    return key


def _object_key(request: Request[Any, Any, Any], route: str, param: str) -> str:
    """The key exactly as the client sent it, validated.

    Litestar's ``path`` parameter is decoded *and normalised* (``a//b``
    becomes ``a/b``, ``//etc/passwd`` becomes ``/etc/passwd`` ...), which
    would silently store under another key than the one asked for. So the
    key is cut from the undecoded ``raw_path`` instead and percent-decoded
    once: ``%2e%2e/x`` is ``../x`` and ``%2Fetc`` is ``/etc``, both 400.
    """
    raw_path = request.scope.get("raw_path")
    prefix = f"{_MOUNT}{route}/".encode()
    if isinstance(raw_path, bytes) and raw_path.startswith(prefix):
        try:
            key = unquote_to_bytes(raw_path[len(prefix) :]).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidKey("object key is not valid UTF-8") from None
    else:  # no raw_path from the server: the parameter, minus its leading slash
        key = param[1:] if param.startswith("/") else param
    return validate_key(key)


_RAW_BODY = RequestBody(
    content={
        "application/octet-stream": OpenAPIMediaType(
            schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        )
    },
    description="The object's bytes, streamed; any Content-Type is stored as is.",
    required=False,
)


@put(
    "/put/{key:path}",
    summary="Store the raw request body under a key",
    description="Streams the body; 413 over [storage] max_put_bytes, 503 when busy.",
    # Our own cap (max_put_bytes) applies while streaming; Litestar's default
    # of 10 MB would cut every larger object.
    request_max_body_size=None,
    status_code=200,
    responses=error_responses(400, 403, 409, 413, 502, 503),
    operation_class=documented(request_body=_RAW_BODY),
)
async def put_object(
    key: FromPath[str],
    request: Request[Any, Any, Any],
    store: NamedDependency[ObjectStore],
    put_limit: NamedDependency[UploadLimit],
) -> ObjectInfo:
    object_key = _writable_key(request, "/put", key)
    async with put_limit.admit(request.content_length, request_body(request)) as body:
        return await store.put(object_key, body)


@get(
    "/get/{key:path}",
    summary="Read an object (streamed)",
    media_type="application/octet-stream",
    responses=error_responses(400, 404, 502, 503),
)
async def get_object(
    key: FromPath[str], request: Request[Any, Any, Any], store: NamedDependency[ObjectStore]
) -> Stream:
    chunks = store.open_read(_object_key(request, "/get", key))
    # Read the first chunk before answering, so a missing key is a 404, not
    # a 200 whose body breaks off.
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = b""
    return Stream(prepend(first, chunks), media_type="application/octet-stream")


@get("/list", summary="List objects by key prefix", responses=error_responses(400, 502, 503))
async def list_objects(
    store: NamedDependency[ObjectStore], prefix: FromQuery[str] = ""
) -> list[ObjectInfo]:
    return await store.list(prefix)


@delete(
    "/delete/{key:path}",
    summary="Delete an object",
    status_code=204,
    responses=error_responses(400, 403, 404, 502, 503),
)
async def delete_object(
    key: FromPath[str], request: Request[Any, Any, Any], store: NamedDependency[ObjectStore]
) -> None:
    await store.delete(_writable_key(request, "/delete", key))


router = Router(
    path=_MOUNT,
    route_handlers=[put_object, get_object, list_objects, delete_object],
    tags=["storage"],
)
