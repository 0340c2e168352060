"""HTTP routes of the catalog module: thin wrappers around ``Catalog``."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_304_NOT_MODIFIED

from lakehouse.catalog.interface import Catalog, Manifest, RegisterRequest
from lakehouse.catalog.rules import manifest_etag
from lakehouse.http_errors import error_responses


class RegisterResponse(Manifest, frozen=True, kw_only=True):
    """The stored manifest, plus what this register did."""

    created: bool
    """True when this request created the dataset; False for an idempotent update."""
    replaced_objects: list[str]
    """Keys the previous manifest referenced and this one does not."""


class CatalogListing(msgspec.Struct, frozen=True):
    """Every manifest, and the catalog version they were read at."""

    version: str
    datasets: list[Manifest]


_NOT_MODIFIED = {
    304: ResponseSpec(None, description="Not modified: If-None-Match has the current ETag")
}


def _quoted(tag: str) -> str:
    return f'"{tag}"'


def _not_modified(request: Request[Any, Any, Any], etag: str) -> bool:
    wanted = request.headers.get("if-none-match", "")
    return etag in {tag.strip() for tag in wanted.split(",")} or wanted.strip() == "*"


@post(
    "/register",
    summary="Register (create or update) a dataset",
    description=(
        "201 when the dataset was created; 200 when the name already existed with the "
        "same schema fingerprint (objects, row_count and updated_at are replaced, the "
        "dataset_id stays); 409 when it exists with another schema; 400 when the name "
        "is invalid or an object does not exist in storage."
    ),
    status_code=HTTP_200_OK,
    responses={
        201: ResponseSpec(
            RegisterResponse, description="Created: the dataset is new", generate_examples=False
        ),
        **error_responses(400, 409, 502),
    },
)
async def register(
    data: JSONBody[RegisterRequest], catalog: NamedDependency[Catalog]
) -> Response[RegisterResponse]:
    outcome = await catalog.register(data)
    manifest = outcome.manifest
    content = RegisterResponse(
        **msgspec.structs.asdict(manifest),
        created=outcome.created,
        replaced_objects=outcome.replaced_objects,
    )
    return Response(
        content,
        status_code=HTTP_201_CREATED if outcome.created else HTTP_200_OK,
        headers={
            "ETag": _quoted(manifest_etag(manifest)),
            "Location": f"/catalog/manifest/{manifest.name}",
        },
    )


@get(
    "/manifest/{name:str}",
    summary="The manifest of one dataset (case-insensitive name)",
    responses={**_NOT_MODIFIED, **error_responses(400, 404)},
)
async def read_manifest(
    name: FromPath[str], request: Request[Any, Any, Any], catalog: NamedDependency[Catalog]
) -> Response[Manifest | None]:
    manifest = await catalog.get(name)
    etag = _quoted(manifest_etag(manifest))
    if _not_modified(request, etag):
        return Response(None, status_code=HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
    return Response(manifest, headers={"ETag": etag})


@get(
    "/list",
    summary="Every manifest, sorted by name, with the catalog version",
    responses={**_NOT_MODIFIED, **error_responses()},
)
async def list_manifests(
    request: Request[Any, Any, Any], catalog: NamedDependency[Catalog]
) -> Response[CatalogListing | None]:
    # Read the version first: a change racing with list() then shows as a newer version later.
    version = await catalog.version()
    etag = _quoted(version)
    if _not_modified(request, etag):
        return Response(None, status_code=HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
    listing = CatalogListing(version=version, datasets=await catalog.list())
    return Response(listing, headers={"ETag": etag})


@delete(
    "/manifest/{name:str}",
    summary="Remove a dataset's manifest (its data objects are left in storage)",
    status_code=HTTP_200_OK,
    responses=error_responses(400, 404, 502),
)
async def delete_manifest(name: FromPath[str], catalog: NamedDependency[Catalog]) -> Manifest:
    return await catalog.delete(name)


router = Router(
    path="/catalog",
    route_handlers=[register, read_manifest, list_manifests, delete_manifest],
    tags=["catalog"],
)
