"""The composition root: the only place that knows the concrete classes.

``create_app(settings)`` builds the modules, wires them together, mounts
their routers and returns the Litestar app. Everything else receives its
collaborators through the constructor or Litestar dependency injection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from litestar import Litestar, Router, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, RedocRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from lakehouse import __version__
from lakehouse.admin import OrphanSweep, admin_router
from lakehouse.auth import bearer_auth
from lakehouse.catalog import (
    Catalog,
    IcebergCatalog,
    catalog_router,
    database_url,
    datasets_router,
)
from lakehouse.config import Settings
from lakehouse.console import OPEN_PREFIXES, STATIC_PATH, console_routers, template_config
from lakehouse.errors import LakehouseError
from lakehouse.http_body import CloseIfBodyUnread
from lakehouse.http_errors import EXCEPTION_HANDLERS
from lakehouse.ingest import (
    IngestJobs,
    Ingestor,
    IngestService,
    ingest_jobs_router,
    ingest_route,
    upload_limit,
)
from lakehouse.layout import DATASETS_PREFIX, scratch_dir
from lakehouse.limits import UploadLimit
from lakehouse.openapi_docs import documented
from lakehouse.query import QueryEngine, QueryService, SqlFastPath, sql_get_route, sql_route
from lakehouse.request_id import request_id_middleware
from lakehouse.security_headers import security_headers
from lakehouse.storage import (
    BucketInfo,
    BucketRegistry,
    ObjectStore,
    StorageHealth,
    default_secrets_provider,
    open_registry,
    open_store,
    put_limit,
    storage_router,
)

if TYPE_CHECKING:
    from lakehouse.agents import McpEndpoint

log = logging.getLogger("lakehouse.app")

REQUEST_MAX_BODY_BYTES = 10_000_000
"""Litestar's default limit of a buffered request body (uploads stream past it)."""


@dataclass
class Services:
    """The module instances one app uses, built by ``build_services``."""

    buckets: BucketRegistry
    """Every named store, started and closed here together."""
    store: ObjectStore
    """The registry's ``primary``: the store the modules read and write."""
    storage_health: StorageHealth
    """Whether ``store`` works right now (a cached probe), for /health."""
    catalog: Catalog
    ingest: Ingestor
    query: QueryEngine
    orphan_sweep: OrphanSweep
    put_limit: UploadLimit
    """Size cap and PUTs in flight through the storage API."""
    ingest_limit: UploadLimit
    """Size cap and ingests in flight."""
    ingest_jobs: IngestJobs
    """The progress of running and recent ingests."""
    startup_failure: str | None = None
    """Why ``start`` failed, in one line, for the command line to print."""

    async def start(self) -> None:
        """Start order: storage, then catalog (reads storage), then query (reads catalog)."""
        await self.buckets.start()
        await self.catalog.load()
        # Leftovers of a crash (an object written but never registered) go at start-up.
        await self.orphan_sweep.run()
        await self.ingest.start()
        await self.query.start()

    def begin_shutdown(self) -> None:
        """The server is stopping: uploads finish (graceful), but queries could run up
        to their time limit, so they are stopped now."""
        self.query.interrupt_running()

    async def close(self) -> None:
        """Close in the reverse order of start."""
        await self.query.close()
        await self.ingest.close()
        await self.catalog.close()
        await self.buckets.close()


def build_services(settings: Settings) -> Services:
    """The modules ``settings`` describe, wired together (not started)."""
    secrets = default_secrets_provider(settings.secrets.file)
    store = open_store(settings.storage, secrets)
    data_dir = settings.storage.data_dir
    catalog = IcebergCatalog(
        store,
        store.fileio_grant,
        partial(database_url, settings.catalog.uri, data_dir, secrets.catalog_password),
        settings.catalog,
        scratch_dir(data_dir, "catalog"),
    )
    return Services(
        buckets=open_registry(settings.storage, store),
        store=store,
        storage_health=StorageHealth(store),
        catalog=catalog,
        # Spool files sit beside the local root (same filesystem), whatever the backend.
        ingest=IngestService(
            store,
            catalog,
            settings.ingest,
            scratch_dir(data_dir, "ingest"),
        ),
        query=QueryService(
            settings.query,
            partial(store.duckdb_grant, [DATASETS_PREFIX]),
            catalog,
            scratch_dir(data_dir, "duckdb"),
        ),
        orphan_sweep=OrphanSweep(store, catalog, settings.catalog.orphan_grace_seconds),
        put_limit=put_limit(settings.storage),
        ingest_limit=upload_limit(settings.ingest),
        ingest_jobs=IngestJobs(),
    )


@get(
    "/health",
    tags=["health"],
    summary="Liveness and module status (never needs a token)",
    operation_class=documented(public=True),
)
async def health(
    query_engine: NamedDependency[QueryEngine],
    storage_info: NamedDependency[BucketInfo],
    storage_health: NamedDependency[StorageHealth],
) -> dict[str, Any]:
    """200 whatever the state (the process is alive); ``status`` says ``degraded`` when
    the query engine or the store does not work right now, and each part says why."""
    query, storage_status = await asyncio.gather(query_engine.health(), storage_health.check())
    # Where the data live and whether they can be reached, never how we authenticate.
    storage = {"backend": storage_info.backend, "status": storage_status.status}
    if storage_info.bucket:
        storage["bucket"] = storage_info.bucket
    if storage_status.reason:
        storage["reason"] = storage_status.reason
    healthy = query["status"] == "ok" and storage_status.status == "ok"
    return {
        "status": "ok" if healthy else "degraded",
        "service": "lakehouse",
        "version": __version__,
        "storage": storage,
        "query": query,
    }


# /docs is Redoc from the app's own copy: no CDN script, web font or favicon, so it
# renders with no internet and tells no third party who reads it.
_DOCS_PAGES = [
    RedocRenderPlugin(
        js_url=f"{STATIC_PATH}/redoc.standalone.js",
        google_fonts=False,
        favicon="",
        path=["/", "/redoc"],
    ),
    JsonRenderPlugin(),
]


def _openapi_config(settings: Settings) -> OpenAPIConfig:
    """The schema at /docs/openapi.json; it declares bearer auth only when a token is set."""
    if not settings.server.auth_token:
        return OpenAPIConfig(
            title="Lakehouse", version=__version__, path="/docs", render_plugins=_DOCS_PAGES
        )
    return OpenAPIConfig(
        title="Lakehouse",
        version=__version__,
        path="/docs",
        render_plugins=_DOCS_PAGES,
        components=Components(
            security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}
        ),
        security=[{"bearer": []}],
    )


async def _close_after_failed_start(services: Services) -> None:
    """Close what did start (an S3 client session ...) without hiding why start failed."""
    try:
        await services.close()
    except Exception:
        log.debug("closing after a failed start-up failed too", exc_info=True)


def _mcp_endpoint(settings: Settings, services: Services) -> McpEndpoint | None:
    """The MCP endpoint at /mcp, unless ``[mcp] enabled`` is false."""
    if not settings.mcp.enabled:
        return None
    # Imported only when served: the MCP SDK is a large import, and start-up pays for it.
    from lakehouse.agents import DatasetTools, McpEndpoint

    tools = DatasetTools(services.catalog, services.query, settings.mcp)
    return McpEndpoint(tools, settings.server.host)


def create_app(settings: Settings | None = None, services: Services | None = None) -> Litestar:
    """Build the app. Tests may pass ``services`` to supply other implementations."""
    settings = settings or Settings()
    services = services or build_services(settings)
    mcp = _mcp_endpoint(settings, services)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        try:
            await services.start()
        except Exception as exc:
            # Granian reports only "lifespan startup failed"; say what failed here.
            if isinstance(exc, LakehouseError):  # foreseen (storage down ...): no traceback
                services.startup_failure = exc.message
                log.error("start-up failed: %s", exc.message)
            else:
                services.startup_failure = f"{type(exc).__name__}: {exc}"
                log.exception("start-up failed")
            await _close_after_failed_start(services)
            raise
        log.info(
            "lakehouse started, listening",
            extra={
                "url": f"http://{settings.server.host}:{settings.server.port}",
                "storage_backend": settings.storage.backend,
            },
        )
        try:
            if mcp is None:
                yield
            else:
                async with mcp.running():
                    yield
        finally:
            await services.close()

    def provide(value: object) -> Provide:
        return Provide(lambda: value, use_cache=True, sync_to_thread=False)

    # The product API lives under /v1; ingest and SQL answer at the G0 paths too.
    product_api = [ingest_route, sql_route, sql_get_route]
    app = Litestar(
        route_handlers=[
            health,
            Router("/v1", route_handlers=[*product_api, ingest_jobs_router, datasets_router]),
            Router("/", route_handlers=product_api),
            storage_router,
            catalog_router,
            admin_router,
            *console_routers(),
            *([mcp.route()] if mcp else []),
        ],
        dependencies={
            "store": provide(services.store),
            "storage_info": provide(services.buckets.info()),
            "storage_health": provide(services.storage_health),
            "put_limit": provide(services.put_limit),
            "catalog": provide(services.catalog),
            "ingestor": provide(services.ingest),
            "ingest_limit": provide(services.ingest_limit),
            "ingest_jobs": provide(services.ingest_jobs),
            "query_engine": provide(services.query),
            "orphan_sweep": provide(services.orphan_sweep),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        openapi_config=_openapi_config(settings),
        template_config=template_config(),
        state=State({"console_auth": bool(settings.server.auth_token)}),
        logging_config=None,
        debug=False,
        request_max_body_size=REQUEST_MAX_BODY_BYTES,
    )
    # The plain POST /v1/sql skips Litestar's per-request work (ADR 0017).
    app.asgi_handler = SqlFastPath(app.asgi_handler, lambda: services.query, REQUEST_MAX_BODY_BYTES)
    # Litestar's own middleware only runs for requests that matched a route; the
    # request id, the auth check and the close-after-early-refusal rule must cover
    # every request (404s included), so they wrap the app's outermost ASGI handler.
    if settings.server.auth_token:
        app.asgi_handler = bearer_auth(settings.server.auth_token, OPEN_PREFIXES)(app.asgi_handler)
    app.asgi_handler = security_headers(CloseIfBodyUnread(request_id_middleware(app.asgi_handler)))
    return app
