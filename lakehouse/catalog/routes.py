"""HTTP routes of the catalog module: thin wrappers around ``Catalog``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_304_NOT_MODIFIED

from lakehouse.catalog.interface import (
    Catalog,
    DatasetVersion,
    DescribedColumn,
    Manifest,
    RegisterRequest,
)
from lakehouse.catalog.rules import described_columns, manifest_etag
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


# -- /v1/datasets: the product API over versioned datasets -------------------------------


class DatasetSummary(msgspec.Struct, frozen=True):
    """One line of ``GET /v1/datasets``."""

    name: str
    rows: int
    columns: int
    bytes: int
    version: int
    updated: dt.datetime


class DatasetDetail(msgspec.Struct, frozen=True):
    """``GET /v1/datasets/{name}``."""

    name: str
    dataset_id: str
    version: int
    snapshot_id: int | None
    rows: int
    bytes: int
    created_at: dt.datetime
    updated_at: dt.datetime
    columns: list[DescribedColumn]
    files: list[str]


class DatasetHistory(msgspec.Struct, frozen=True):
    name: str
    versions: list[DatasetVersion]


@get(
    "/", summary="Every dataset: rows, columns, size, current version", responses=error_responses()
)
async def list_datasets(catalog: NamedDependency[Catalog]) -> list[DatasetSummary]:
    return [
        DatasetSummary(
            name=m.name,
            rows=m.row_count,
            columns=len(m.schema),
            bytes=m.bytes,
            version=m.version,
            updated=m.updated_at,
        )
        for m in await catalog.list()
    ]


@get(
    "/{name:str}",
    summary="One dataset: schema (and how each column was typed), version, files",
    responses=error_responses(400, 404),
)
async def describe_dataset(name: FromPath[str], catalog: NamedDependency[Catalog]) -> DatasetDetail:
    return await describe(catalog, name)


async def describe(catalog: Catalog, name: str) -> DatasetDetail:
    """Dataset ``name`` as of its current version, with how each column was typed."""
    manifest = await catalog.get(name)
    columns = described_columns(manifest, await catalog.history(name))
    return DatasetDetail(
        name=manifest.name,
        dataset_id=manifest.dataset_id,
        version=manifest.version,
        snapshot_id=manifest.snapshot_id,
        rows=manifest.row_count,
        bytes=manifest.bytes,
        created_at=manifest.created_at,
        updated_at=manifest.updated_at,
        columns=columns,
        files=manifest.objects,
    )


@get(
    "/{name:str}/history",
    summary="Every retained version: number, snapshot, time, operation, rows, source file",
    responses=error_responses(400, 404),
)
async def dataset_history(name: FromPath[str], catalog: NamedDependency[Catalog]) -> DatasetHistory:
    versions = await catalog.history(name)
    manifest = await catalog.get(name)
    return DatasetHistory(name=manifest.name, versions=versions)


@delete(
    "/{name:str}",
    summary="Delete a dataset and its history (its files go with the next orphan sweep)",
    status_code=HTTP_200_OK,
    responses=error_responses(400, 404, 502),
)
async def delete_dataset(name: FromPath[str], catalog: NamedDependency[Catalog]) -> Manifest:
    return await catalog.delete(name)


@post(
    "/{name:str}/rollback",
    summary="A new version whose rows (and columns) are those of ?version=n",
    status_code=HTTP_200_OK,
    responses=error_responses(400, 404, 409, 502),
)
async def rollback_dataset(
    name: FromPath[str],
    catalog: NamedDependency[Catalog],
    version: Annotated[int, QueryParameter(description="The version to restore", ge=1)],
) -> Manifest:
    registration = await catalog.rollback(name, version)
    return registration.manifest


datasets_router = Router(
    path="/datasets",
    route_handlers=[
        list_datasets,
        describe_dataset,
        dataset_history,
        delete_dataset,
        rollback_dataset,
    ],
    tags=["datasets"],
)
