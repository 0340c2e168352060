"""Admin: maintenance that spans modules (the orphan sweep)."""

from lakehouse.admin.gc import SweepReport, sweep_orphans

__all__ = ["SweepReport", "sweep_orphans"]
