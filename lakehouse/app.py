"""The composition root: the only place that knows the concrete classes.

``create_app(settings)`` builds the modules, wires them together, mounts
their routers and returns the Litestar app. Everything else receives its
collaborators through the constructor or Litestar dependency injection.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from litestar import Litestar, get
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from lakehouse import __version__
from lakehouse.admin import routes as admin_routes
from lakehouse.admin import sweep_orphans
from lakehouse.auth import bearer_auth
from lakehouse.catalog import Catalog, ManifestCatalog
from lakehouse.catalog import routes as catalog_routes
from lakehouse.config import Settings, scratch_dir
from lakehouse.http_body import CloseIfBodyUnread
from lakehouse.http_errors import EXCEPTION_HANDLERS
from lakehouse.ingest import IngestService
from lakehouse.ingest import routes as ingest_routes
from lakehouse.limits import ConcurrencyLimit
from lakehouse.openapi_docs import documented
from lakehouse.query import QueryService
from lakehouse.query import routes as query_routes
from lakehouse.request_id import request_id_middleware
from lakehouse.storage import BucketRegistry, ObjectStore, open_registry
from lakehouse.storage import routes as storage_routes
from lakehouse.storage.secrets import SecretsProvider, default_secrets_provider

log = logging.getLogger("lakehouse.app")


@dataclass
class Services:
    """The module instances one app uses, built by ``build_services``."""

    settings: Settings
    secrets: SecretsProvider
    buckets: BucketRegistry
    """Every named store, started and closed here together."""
    store: ObjectStore
    """The registry's ``primary``: the store the modules read and write."""
    catalog: Catalog
    ingest: IngestService
    query: QueryService
    put_limit: ConcurrencyLimit
    """PUTs in flight through the storage API (503 beyond it)."""

    async def start(self) -> None:
        """Start order: storage, then catalog (reads storage), then query (reads catalog)."""
        await self.buckets.start()
        await self.catalog.load()
        # Leftovers of a crash (an object written but never registered) go at start-up.
        await sweep_orphans(self.store, self.catalog, self.settings.catalog.orphan_grace_seconds)
        await self.ingest.start()
        await self.query.start()

    async def close(self) -> None:
        """Close in the reverse order of start."""
        await self.query.close()
        await self.ingest.close()
        await self.buckets.close()


def build_services(settings: Settings) -> Services:
    secrets = default_secrets_provider(settings.secrets.file)
    buckets = open_registry(settings.storage, secrets)
    store: ObjectStore = buckets.primary
    catalog: Catalog = ManifestCatalog(store)
    # Spool files sit beside the local root (same filesystem), whatever the backend.
    ingest = IngestService(
        store,
        catalog,
        settings.ingest,
        scratch_dir(settings.storage, "ingest"),
        # A query that started on a replaced manifest cannot outlive its time
        # limit; the margin covers its cancellation (ADR 0010).
        retire_after_seconds=settings.query.timeout_seconds + 2.0,
    )
    return Services(
        settings=settings,
        secrets=secrets,
        buckets=buckets,
        store=store,
        catalog=catalog,
        ingest=ingest,
        query=QueryService(settings.query, settings.storage, secrets, store, catalog),
        put_limit=storage_routes.put_limit(settings.storage),
    )


@get(
    "/health",
    tags=["health"],
    summary="Liveness and module status (never needs a token)",
    operation_class=documented(public=True),
)
async def health(services: NamedDependency[Services]) -> dict[str, Any]:
    query = await services.query.health()
    return {
        "status": "ok" if query["status"] == "ok" else "degraded",
        "service": "lakehouse",
        "version": __version__,
        "storage": _storage_health(services.settings),
        "query": query,
    }


def _storage_health(settings: Settings) -> dict[str, str]:
    # Where the data live, never how we authenticate to it.
    storage = settings.storage
    if storage.backend == "s3":
        return {"backend": "s3", "bucket": storage.s3.bucket}
    return {"backend": storage.backend}


def _openapi_config(settings: Settings) -> OpenAPIConfig:
    """The schema at /docs/openapi.json; it declares bearer auth only when a token is set."""
    if not settings.server.auth_token:
        return OpenAPIConfig(title="Lakehouse", version=__version__, path="/docs")
    return OpenAPIConfig(
        title="Lakehouse",
        version=__version__,
        path="/docs",
        components=Components(
            security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}
        ),
        security=[{"bearer": []}],
    )


def create_app(settings: Settings | None = None, services: Services | None = None) -> Litestar:
    """Build the app. Tests may pass ``services`` to supply other implementations."""
    settings = settings or Settings()
    services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        try:
            await services.start()
        except Exception:
            # Granian reports only "lifespan startup failed"; say what failed here.
            log.exception("start-up failed")
            raise
        log.info(
            "lakehouse started, listening",
            extra={
                "url": f"http://{settings.server.host}:{settings.server.port}",
                "storage_backend": settings.storage.backend,
            },
        )
        try:
            yield
        finally:
            await services.close()

    def provide(value: object) -> Provide:
        return Provide(lambda: value, use_cache=True, sync_to_thread=False)

    app = Litestar(
        route_handlers=[
            health,
            storage_routes.router,
            catalog_routes.router,
            ingest_routes.router,
            query_routes.router,
            admin_routes.router,
        ],
        dependencies={
            "services": provide(services),
            "settings": provide(settings),
            "store": provide(services.store),
            "put_limit": provide(services.put_limit),
            "catalog": provide(services.catalog),
            "ingest_service": provide(services.ingest),
            "query_service": provide(services.query),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        openapi_config=_openapi_config(settings),
        logging_config=None,
        debug=False,
    )
    # Litestar's own middleware only runs for requests that matched a route; the
    # request id, the auth check and the close-after-early-refusal rule must cover
    # every request (404s included), so they wrap the app's outermost ASGI handler.
    if settings.server.auth_token:
        app.asgi_handler = bearer_auth(settings.server.auth_token)(app.asgi_handler)
    app.asgi_handler = CloseIfBodyUnread(request_id_middleware(app.asgi_handler))
    return app
