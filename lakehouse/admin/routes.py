"""Admin routes: POST /admin/gc runs the orphan sweep now."""

from __future__ import annotations

from litestar import Router, post
from litestar.di import NamedDependency

from lakehouse.admin.gc import OrphanSweep, SweepReport
from lakehouse.http_errors import error_responses


@post(
    "/gc",
    status_code=200,
    summary="Delete dataset objects no manifest references",
    responses=error_responses(502),
)
async def run_gc(orphan_sweep: NamedDependency[OrphanSweep]) -> SweepReport:
    """Objects younger than ``[catalog] orphan_grace_seconds`` are kept (an ingest may own them)."""
    return await orphan_sweep.run()


router = Router(path="/admin", route_handlers=[run_gc], tags=["admin"])
