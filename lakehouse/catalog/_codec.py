"""Manifest <-> Parquet bytes (one single-row file per dataset).

Blocking pyarrow work: callers run ``encode_manifest`` / ``decode_manifest``
in a worker thread.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.catalog.interface import Manifest

# Bumped if the layout below changes incompatibly; older files then need a migration.
FORMAT_VERSION = "1"

_TIMESTAMP = pa.timestamp("us", tz="UTC")

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("dataset_id", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("schema_fingerprint", pa.string(), nullable=False),
        pa.field(
            "schema",
            pa.list_(
                pa.struct(
                    [
                        pa.field("name", pa.string(), nullable=False),
                        pa.field("type", pa.string(), nullable=False),
                    ]
                )
            ),
            nullable=False,
        ),
        pa.field("objects", pa.list_(pa.string()), nullable=False),
        pa.field("row_count", pa.int64(), nullable=False),
        pa.field("created_at", _TIMESTAMP, nullable=False),
        pa.field("updated_at", _TIMESTAMP, nullable=False),
    ],
    metadata={"lakehouse.manifest.format": FORMAT_VERSION},
)


class ManifestDecodeError(ValueError):
    """The bytes are not a manifest this version can read."""


def encode_manifest(manifest: Manifest) -> bytes:
    """The manifest as a single-row Parquet file (bytes)."""
    row: dict[str, Any] = {
        "dataset_id": manifest.dataset_id,
        "name": manifest.name,
        "schema_fingerprint": manifest.schema_fingerprint,
        "schema": [{"name": c.name, "type": c.type} for c in manifest.schema],
        "objects": list(manifest.objects),
        "row_count": manifest.row_count,
        "created_at": manifest.created_at,
        "updated_at": manifest.updated_at,
    }
    table = pa.Table.from_pylist([row], schema=MANIFEST_SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def decode_manifest(data: bytes) -> Manifest:
    """Parse bytes written by ``encode_manifest``. Raises ``ManifestDecodeError``."""
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ManifestDecodeError(f"not a readable Parquet file: {exc}") from exc
    metadata = table.schema.metadata or {}
    version = metadata.get(b"lakehouse.manifest.format", b"").decode(errors="replace")
    if version != FORMAT_VERSION:
        raise ManifestDecodeError(f"unknown manifest format version {version!r}")
    if table.num_rows != 1:
        raise ManifestDecodeError(f"expected 1 row, found {table.num_rows}")
    try:
        [row] = table.cast(MANIFEST_SCHEMA).to_pylist()
        manifest = msgspec.convert(row, type=Manifest)
    except (pa.ArrowException, msgspec.ValidationError, ValueError) as exc:
        raise ManifestDecodeError(f"manifest columns do not match: {exc}") from exc
    return msgspec.structs.replace(
        manifest, created_at=_utc(manifest.created_at), updated_at=_utc(manifest.updated_at)
    )


def _utc(value: dt.datetime) -> dt.datetime:
    # pyarrow hands back zoneinfo UTC; normalise so decoded == encoded, field for field.
    return value.astimezone(dt.UTC)
