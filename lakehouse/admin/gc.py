"""The orphan sweep: delete files under ``datasets/`` that no retained version of
any dataset references (its data files, manifests and metadata files).

Orphans are left by a crash between writing a data file and committing it (the
two-phase write of ADR 0010), by commits that lost a race (their metadata file),
by expired versions and by deleted datasets (ADR 0014). Only files older than
the grace period are removed, so an ingest whose file is written but not yet
committed is never touched.

The sweep also aborts the writes in progress (S3 multipart uploads, local temp
files) that started before the grace period: a process killed mid-upload leaves
its parts behind, invisible to listings yet stored and billed.
"""

from __future__ import annotations

import datetime as dt
import logging

import msgspec

from lakehouse.catalog import Catalog
from lakehouse.layout import DATASETS_PREFIX, UPLOAD_PREFIXES, dataset_prefix
from lakehouse.storage import ObjectStore, StorageUnavailable

log = logging.getLogger("lakehouse.admin.gc")


class SweepReport(msgspec.Struct, frozen=True):
    """What one sweep saw and did."""

    scanned: int
    """Objects under datasets/ (but those of datasets with an unreadable manifest)."""
    referenced: int
    """Of those, objects some manifest references."""
    removed: list[str]
    """Orphans deleted (older than the grace period)."""
    kept_young: list[str]
    """Orphans kept because they are younger than the grace period."""
    grace_seconds: int
    aborted_uploads: list[str] = msgspec.field(default_factory=list)
    """Keys of the unfinished uploads (local: temp files) older than the grace period,
    aborted."""


class OrphanSweep:
    """The sweep over one store and catalog, with its grace period.

    Args:
        store: where the dataset objects live.
        catalog: what references them.
        grace_seconds: orphans younger than this are kept (an ingest may own them).
    """

    def __init__(self, store: ObjectStore, catalog: Catalog, grace_seconds: int) -> None:
        self._store = store
        self._catalog = catalog
        self.grace_seconds = grace_seconds

    async def run(self, now: dt.datetime | None = None) -> SweepReport:
        """Delete the orphans older than the grace period; report what was seen.

        Raises:
            StorageUnavailable: the store failed (what was deleted before stays deleted).
        """
        store, catalog, grace_seconds = self._store, self._catalog, self.grace_seconds
        now = now or dt.datetime.now(dt.UTC)
        grace = dt.timedelta(seconds=grace_seconds)
        aborted = await self._abort_stale_uploads(now - grace)
        # The data of a dataset whose manifest could not be read is not orphaned:
        # it is one repaired manifest away from being served again.
        protected = {dataset_prefix(name) for name in await catalog.unreadable()}
        objects = [
            info
            for info in await store.list(DATASETS_PREFIX)
            if not any(info.key.lower().startswith(prefix) for prefix in protected)
        ]
        referenced = await _referenced_keys(catalog)
        candidates = [
            info
            for info in objects
            if info.key not in referenced and now - info.last_modified >= grace
        ]
        kept_young = [
            info.key
            for info in objects
            if info.key not in referenced and now - info.last_modified < grace
        ]
        # Read the catalog once more just before deleting: a register that landed
        # meanwhile (of an object older than the grace period) keeps its object.
        if candidates:
            referenced = await _referenced_keys(catalog)
        removed = []
        for info in candidates:
            if info.key in referenced:
                continue
            await store.delete(info.key, missing_ok=True)
            removed.append(info.key)
        report = SweepReport(
            scanned=len(objects),
            referenced=sum(1 for info in objects if info.key in referenced),
            removed=removed,
            kept_young=kept_young,
            grace_seconds=grace_seconds,
            aborted_uploads=aborted,
        )
        if removed:
            log.info("orphan sweep removed %d object(s)", len(removed), extra={"removed": removed})
        if aborted:
            log.info(
                "orphan sweep aborted %d stale upload(s)", len(aborted), extra={"aborted": aborted}
            )
        return report

    async def _abort_stale_uploads(self, started_before: dt.datetime) -> list[str]:
        """Best effort: a store that cannot list or abort uploads now (an outage, or
        credentials without s3:ListBucketMultipartUploads / s3:AbortMultipartUpload)
        must not stop the sweep, nor the server's start; the next sweep tries again."""
        try:
            return await self._store.abort_stale_uploads(started_before, UPLOAD_PREFIXES)
        except StorageUnavailable as exc:
            log.warning(
                "could not look for stale uploads to abort: %s",
                exc.code,
                extra={"reason": exc.details},
            )
            return []


async def _referenced_keys(catalog: Catalog) -> set[str]:
    return await catalog.referenced_keys()
