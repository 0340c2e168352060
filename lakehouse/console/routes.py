"""The console's pages and fragments.

Pages (``/``, ``/console/...``) are shells that hold no data, so a browser can open
them without a token; the fragments they load with htmx (``/ui/...``) need the bearer
token like every API route, and console.js sends it from sessionStorage (never in a
URL). Every value reaches the HTML through Jinja's autoescaping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote as url_quote

import msgspec
from litestar import Request, Router, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Template

from lakehouse.catalog import Catalog, describe
from lakehouse.console.profile import profile
from lakehouse.console.results import error_position, quote, rows_of, run_table
from lakehouse.errors import LakehouseError
from lakehouse.query import QueryEngine

_log = logging.getLogger(__name__)

PAGE_ROWS = 100
SAMPLE_ROWS = 20


class SqlForm(msgspec.Struct):
    sql: str = ""
    page: int = 0


def _page(template: str, request: Request[Any, Any, Any], **context: Any) -> Template:
    auth = "required" if request.app.state.get("console_auth") else "none"
    return Template(template_name=template, context={"auth": auth, **context})


@get("/", include_in_schema=False)
async def datasets_page(request: Request[Any, Any, Any]) -> Template:
    return _page("datasets.html", request)


@get("/console/datasets/{name:str}", include_in_schema=False)
async def dataset_page(request: Request[Any, Any, Any], name: FromPath[str]) -> Template:
    return _page("dataset.html", request, name=name)


@get("/console/upload", include_in_schema=False)
async def upload_page(request: Request[Any, Any, Any]) -> Template:
    return _page("upload.html", request)


@get("/console/sql", include_in_schema=False)
async def sql_page(request: Request[Any, Any, Any], q: FromQuery[str] = "") -> Template:
    return _page("sql.html", request, q=q)


async def _fragment(template: str, build: Callable[[], Awaitable[dict[str, Any]]]) -> Template:
    """``template`` with what ``build`` returns, or the error fragment with the error's
    status (htmx swaps 4xx fragments in too: console.js configures it)."""
    try:
        context = await build()
    except LakehouseError as exc:
        message = exc.message
        return Template(
            template_name="_error.html",
            context={"code": exc.code, "message": message, "position": error_position(message)},
            status_code=exc.status_code,
        )
    return Template(template_name=template, context=context)


@get("/ui/datasets", include_in_schema=False)
async def datasets_fragment(
    catalog: NamedDependency[Catalog], filter: FromQuery[str] = ""
) -> Template:
    async def build() -> dict[str, Any]:
        wanted = filter.strip().lower()
        manifests = [m for m in await catalog.list() if wanted in m.name.lower()]
        return {"datasets": sorted(manifests, key=lambda m: m.name.lower()), "filter": filter}

    return await _fragment("_datasets.html", build)


@get("/ui/datasets/{name:str}", include_in_schema=False)
async def dataset_fragment(
    name: FromPath[str],
    catalog: NamedDependency[Catalog],
    query_engine: NamedDependency[QueryEngine],
) -> Template:
    async def build() -> dict[str, Any]:
        detail = await describe(catalog, name)
        sample, _ = await run_table(
            query_engine, f"SELECT * FROM {quote(detail.name)} LIMIT {SAMPLE_ROWS}"
        )
        query = f"SELECT * FROM {detail.name} LIMIT 100"
        return {
            "dataset": detail,
            "sample_columns": sample.column_names,
            "sample_rows": rows_of(sample),
            "history": await catalog.history(detail.name),
            "query_link": "/console/sql?q=" + url_quote(query),
        }

    return await _fragment("_dataset.html", build)


@get("/ui/datasets/{name:str}/profile", include_in_schema=False)
async def profile_fragment(
    name: FromPath[str],
    catalog: NamedDependency[Catalog],
    query_engine: NamedDependency[QueryEngine],
) -> Template:
    async def build() -> dict[str, Any]:
        manifest = await catalog.get(name)
        try:
            return {"columns": await profile(query_engine, manifest.name)}
        except LakehouseError as exc:
            # The profile's queries are the console's own, not the user's: no position in
            # them to point at, and the schema, sample and history stay on the page.
            _log.warning("profile of %s failed: %s", manifest.name, exc.message)
            return {"columns": None, "failed": exc.code}

    return await _fragment("_profile.html", build)


@post("/ui/sql", include_in_schema=False, status_code=200)
async def sql_fragment(
    query_engine: NamedDependency[QueryEngine],
    data: Annotated[SqlForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Template:
    async def build() -> dict[str, Any]:
        started = time.perf_counter()
        table, cut = await run_table(query_engine, data.sql)
        elapsed = time.perf_counter() - started
        page = max(data.page, 0)
        rows = rows_of(table.slice(page * PAGE_ROWS, PAGE_ROWS))
        return {
            "columns": table.column_names,
            "rows": rows,
            "total": table.num_rows,
            "cut": cut,
            "elapsed_ms": round(elapsed * 1000, 1),
            "page": page,
            "first": page * PAGE_ROWS + 1 if rows else 0,
            "last": page * PAGE_ROWS + len(rows),
            "pages": max((table.num_rows + PAGE_ROWS - 1) // PAGE_ROWS, 1),
        }

    return await _fragment("_result.html", build)


console_router = Router(
    "/",
    route_handlers=[
        datasets_page,
        dataset_page,
        upload_page,
        sql_page,
        datasets_fragment,
        dataset_fragment,
        profile_fragment,
        sql_fragment,
    ],
    include_in_schema=False,
)
