"""Helpers for the ingest tests: read back what an ingest stored, check nothing leaked."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from litestar.testing import AsyncTestClient

from lakehouse.config import Settings
from lakehouse.layout import scratch_dir
from lakehouse.storage import ObjectStore


def spool_dir(settings: Settings) -> Path:
    return scratch_dir(settings.storage.data_dir, "ingest")


async def read_dataset(store: ObjectStore, body: dict[str, Any]) -> pa.Table:
    """The Parquet object(s) an ingest response names, read back with pyarrow."""
    tables = [pq.read_table(io.BytesIO(await store.get(key))) for key in body["objects"]]
    return pa.concat_tables(tables)


async def assert_nothing_left(
    client: AsyncTestClient,  # type: ignore[type-arg]
    store: ObjectStore,
    settings: Settings,
    datasets: int = 0,
) -> None:
    """No (extra) catalog entry, no data file under datasets/ but the current
    versions' (one each), no file of a dataset that does not exist, no spool file."""
    listing = (await client.get("/catalog/list")).json()
    assert len(listing["datasets"]) == datasets
    keys = [info.key for info in await store.list("datasets/")]
    data_files = sorted(key for key in keys if "/metadata/" not in key)
    assert data_files == sorted(o for m in listing["datasets"] for o in m["objects"]), keys
    assert len(data_files) == datasets, keys
    names = {m["name"].lower() for m in listing["datasets"]}
    assert {key.split("/")[1] for key in keys} <= names, keys
    spool = spool_dir(settings)
    assert not spool.exists() or list(spool.iterdir()) == []
