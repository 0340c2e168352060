"""Admin routes: POST /admin/gc runs the orphan sweep now."""

from __future__ import annotations

from litestar import Router, post
from litestar.di import NamedDependency

from lakehouse.admin.gc import SweepReport, sweep_orphans
from lakehouse.catalog import Catalog
from lakehouse.config import Settings
from lakehouse.http_errors import error_responses
from lakehouse.storage import ObjectStore


@post(
    "/gc",
    status_code=200,
    summary="Delete dataset objects no manifest references",
    responses=error_responses(502),
)
async def run_gc(
    store: NamedDependency[ObjectStore],
    catalog: NamedDependency[Catalog],
    settings: NamedDependency[Settings],
) -> SweepReport:
    """Objects younger than ``[catalog] orphan_grace_seconds`` are kept (an ingest may own them)."""
    return await sweep_orphans(store, catalog, settings.catalog.orphan_grace_seconds)


router = Router(path="/admin", route_handlers=[run_gc], tags=["admin"])
