"""Converting G0's manifests into Iceberg tables, once, at start-up (ADR 0014).

G0 kept one Parquet manifest per dataset under ``_catalog/manifests/``. Each
becomes an Iceberg table whose version 1 references the same data files (no
data is copied); only after that commit is the manifest deleted, so a crash in
between resumes on the next start: a manifest whose table exists is simply
deleted. A manifest that cannot be read is left where it is and its dataset's
files are protected from the orphan sweep, as in G0.
"""

from __future__ import annotations

import asyncio
import logging

from lakehouse.catalog._codec import ManifestDecodeError, decode_manifest
from lakehouse.catalog.errors import DatasetNotFound
from lakehouse.catalog.interface import Catalog, CommitRequest, SourceFile
from lakehouse.errors import BadRequest
from lakehouse.layout import MANIFEST_PREFIX, MANIFEST_SUFFIX
from lakehouse.storage import ObjectNotFound, ObjectStore

log = logging.getLogger("lakehouse.catalog")

MIGRATED_SOURCE = SourceFile(name="(converted from a G0 manifest)")


async def migrate_g0_manifests(store: ObjectStore, catalog: Catalog) -> list[str]:
    """Convert every readable G0 manifest; return the lower-case names of the
    unreadable ones (their data must not be swept)."""
    unreadable = []
    for info in await store.list(MANIFEST_PREFIX):
        name = info.key[len(MANIFEST_PREFIX) :].removesuffix(MANIFEST_SUFFIX).lower()
        try:
            data = await store.get(info.key)
        except ObjectNotFound:
            continue
        try:
            manifest = await asyncio.to_thread(decode_manifest, data)
        except ManifestDecodeError as exc:
            log.error("skipping unreadable G0 manifest %s: %s", info.key, exc)
            unreadable.append(name)
            continue
        try:
            await catalog.get(manifest.name)
        except DatasetNotFound:
            request = CommitRequest(
                name=manifest.name,
                schema=manifest.schema,
                objects=manifest.objects,
                source=MIGRATED_SOURCE,
            )
            try:
                await catalog.commit(request)
            except BadRequest as exc:  # a manifest naming missing or foreign files
                log.error("cannot convert G0 manifest %s: %s", info.key, exc.message)
                unreadable.append(name)
                continue
            log.info("converted a G0 dataset", extra={"dataset": manifest.name})
        await store.delete(info.key, missing_ok=True)
    return unreadable
