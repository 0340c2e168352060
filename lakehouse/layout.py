"""The data layout: every key and local path the lakehouse writes, spelled once (ADR 0013).

Under the storage root (a local directory or a bucket)::

    datasets/<name>/                 a dataset's Iceberg table; the only area SQL may read:
              data/<uuid>.parquet      its data files (G0's sit directly under the prefix)
              metadata/                its Iceberg metadata
    _catalog/...                     the catalog's own records (G0 manifests)
    _tmp/<purpose>/                  local scratch space (ingest spool, DuckDB spill);
                                     never an object, each purpose cleans its own
    _state/                          local state kept across restarts (the default
                                     SQLite catalog database); never an object

A file or key segment that starts with ``IN_PROGRESS_PREFIX`` is a write in
progress (a temp file about to be renamed, a spool file): no key may name one,
and listings skip them.
"""

from __future__ import annotations

import uuid
from pathlib import Path

DATASETS_PREFIX = "datasets/"
"""Every data object lives under this prefix; the query sandbox reads nothing else."""

CATALOG_PREFIX = "_catalog/"
"""The catalog's records; written only by the catalog."""

MANIFEST_PREFIX = f"{CATALOG_PREFIX}manifests/"
MANIFEST_SUFFIX = ".parquet"
"""G0's manifests, one per dataset: ``_catalog/manifests/<lower-case name>.parquet``
(ADR 0003); converted to Iceberg tables at start-up, then deleted."""

DELETED_PREFIX = f"{CATALOG_PREFIX}deleted/"
"""One marker per recently deleted dataset (``_catalog/deleted/<lower-case name>``): the
orphan sweep spares its files for a grace period, so replicas and queries still reading
them are not cut off."""

SCRATCH_PREFIX = "_tmp/"
"""The scratch area under the local data directory: never an object."""

STATE_PREFIX = "_state/"
"""Local state under ``data_dir`` kept across restarts (the SQLite catalog): never an object."""

LOCAL_ONLY_PREFIXES = (SCRATCH_PREFIX, STATE_PREFIX)
"""Directories under a local data root that hold no objects: not listed, not readable."""

UPLOAD_PREFIXES = (DATASETS_PREFIX, CATALOG_PREFIX)
"""Where the lakehouse's own writes go: the sweep aborts stale multipart uploads only
under these (in a shared bucket, other tools' uploads are not ours to abort)."""

RESERVED_PREFIXES = (CATALOG_PREFIX, SCRATCH_PREFIX, STATE_PREFIX)
"""Key prefixes only the lakehouse itself writes: the raw storage API refuses them
(a bad manifest there would hide a dataset)."""

IN_PROGRESS_PREFIX = ".tmp-"
"""First characters of a file being written (temp-then-rename) or spooled."""

SPOOL_PREFIX = f"{IN_PROGRESS_PREFIX}ingest-"
"""First characters of an ingest's spool files in its scratch directory."""


def dataset_prefix(name: str) -> str:
    """The prefix every object of dataset ``name`` starts with (names are case-insensitive)."""
    return f"{DATASETS_PREFIX}{name}/"


def data_key(name: str) -> str:
    """A new, never used key for one Parquet data file of dataset ``name``."""
    return f"{dataset_prefix(name.lower())}data/{uuid.uuid4().hex}.parquet"


def catalog_database(data_dir: str | Path) -> Path:
    """The default (SQLite) catalog database, under the local data directory."""
    return Path(data_dir) / STATE_PREFIX / "catalog.db"


def manifest_key(name: str) -> str:
    """The key of the manifest of dataset ``name``."""
    return f"{MANIFEST_PREFIX}{name.lower()}{MANIFEST_SUFFIX}"


def scratch_dir(data_dir: str | Path, purpose: str) -> Path:
    """``data_dir/_tmp/<purpose>``: local scratch space on the data's disk rather than a
    small system /tmp, whatever the storage backend."""
    return Path(data_dir) / SCRATCH_PREFIX.rstrip("/") / purpose


def spool_paths(directory: Path) -> tuple[Path, Path]:
    """A fresh pair of (upload, Parquet) spool files in ``directory``."""
    token = uuid.uuid4().hex
    return (
        directory / f"{SPOOL_PREFIX}{token}.csv",
        directory / f"{SPOOL_PREFIX}{token}.parquet",
    )
