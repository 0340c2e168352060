"""Admin: maintenance that spans modules (the orphan sweep)."""

from lakehouse.admin.gc import OrphanSweep, SweepReport
from lakehouse.admin.routes import router as admin_router

__all__ = ["OrphanSweep", "SweepReport", "admin_router"]
