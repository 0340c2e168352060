"""Admin routes: POST /admin/gc runs the orphan sweep now; POST /admin/compact merges
a dataset's (or every dataset's) small files into one, as a new version."""

from __future__ import annotations

import msgspec
from litestar import Router, post
from litestar.di import NamedDependency
from litestar.params import FromQuery

from lakehouse.admin.gc import OrphanSweep, SweepReport
from lakehouse.catalog import Catalog
from lakehouse.http_errors import error_responses


@post(
    "/gc",
    status_code=200,
    summary="Delete dataset objects no manifest references, abort stale uploads",
    responses=error_responses(502, 503),
)
async def run_gc(orphan_sweep: NamedDependency[OrphanSweep]) -> SweepReport:
    """Objects younger than ``[catalog] orphan_grace_seconds`` are kept (an ingest may own them)."""
    return await orphan_sweep.run()


class Compacted(msgspec.Struct, frozen=True):
    name: str
    version: int
    """The dataset's version after compaction (a new one when files were merged)."""
    merged_files: int
    """How many files were merged into one (0: nothing to merge)."""


@post(
    "/compact",
    status_code=200,
    summary="Merge each dataset's data files into one, as a new version (same rows)",
    responses=error_responses(400, 404, 502),
)
async def compact(
    catalog: NamedDependency[Catalog], name: FromQuery[str | None] = None
) -> list[Compacted]:
    """``?name=`` compacts one dataset; without it, every dataset."""
    names = [name] if name is not None else [m.name for m in await catalog.list()]
    done = []
    for dataset in names:
        registration = await catalog.compact(dataset)
        manifest = registration.manifest if registration else await catalog.get(dataset)
        merged = len(registration.replaced_objects) if registration else 0
        done.append(Compacted(name=manifest.name, version=manifest.version, merged_files=merged))
    return done


router = Router(path="/admin", route_handlers=[run_gc, compact], tags=["admin"])
