"""Admin: maintenance that spans modules (the orphan sweep)."""

from lakehouse.admin.gc import DATASETS_PREFIX, SweepReport, sweep_orphans

__all__ = ["DATASETS_PREFIX", "SweepReport", "sweep_orphans"]
