"""The ObjectStore contract: what every implementation does, whatever its backend.

Written once against the protocol (lakehouse/storage/interface.py) and run over
every implementation by the ``store_backend`` fixture (tests/contracts/conftest.py):
local, S3 on the real moto server, and the failure-injecting store unit tests use.
What only one backend does (a local key that is also a prefix, S3 errors,
DuckDB addressing) is tested beside that backend, not here.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from lakehouse.config import MiB
from lakehouse.storage import (
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
    S3ObjectStore,
)
from tests.support.backends import StoreBackend
from tests.support.storage import astream, digest, pattern

# Bigger than one S3 part (5 MiB in these tests), so a stream this long has
# really started a multipart upload, not just filled a buffer.
OVER_ONE_PART = 6 * MiB


async def listed_keys(store: ObjectStore, prefix: str = "") -> list[str]:
    return [info.key for info in await store.list(prefix)]


# -- round trip, multipart, paged listing (from the old tests/test_storage.py) -----


async def test_store_round_trip_and_listing(store: ObjectStore) -> None:
    info = await store.put("datasets/a/1.parquet", b"hello")
    assert (info.key, info.size) == ("datasets/a/1.parquet", 5)
    await store.put("datasets/a/2.parquet", astream(iter([b"wor", b"", b"ld!"])))
    await store.put("datasets/b/1.parquet", b"x")
    await store.put("_catalog/manifests/a.parquet", b"m")

    assert await store.get("datasets/a/1.parquet") == b"hello"
    assert b"".join([c async for c in store.open_read("datasets/a/2.parquet", 2)]) == b"world!"
    head = await store.head("datasets/a/2.parquet")
    assert head.size == 6
    assert head.etag

    listed = await store.list("datasets/a/")
    assert [(i.key, i.size) for i in listed] == [
        ("datasets/a/1.parquet", 5),
        ("datasets/a/2.parquet", 6),
    ]
    assert [i.key for i in await store.list("datasets/")] == [
        "datasets/a/1.parquet",
        "datasets/a/2.parquet",
        "datasets/b/1.parquet",
    ]
    assert len(await store.list()) == 4
    assert await store.list("nothing/") == []

    # Overwrite replaces the object and changes its etag.
    replaced = await store.put("datasets/a/1.parquet", b"hello again")
    assert replaced.size == 11
    assert replaced.etag != info.etag
    assert await store.get("datasets/a/1.parquet") == b"hello again"

    await store.delete("datasets/a/1.parquet")
    with pytest.raises(ObjectNotFound):
        await store.get("datasets/a/1.parquet")
    with pytest.raises(ObjectNotFound):
        await store.head("datasets/a/1.parquet")
    with pytest.raises(ObjectNotFound):
        await store.delete("datasets/a/1.parquet")
    await store.delete("datasets/a/1.parquet", missing_ok=True)
    with pytest.raises(ObjectNotFound):
        await anext(store.open_read("datasets/a/1.parquet"))
    # A prefix is not an object.
    with pytest.raises(ObjectNotFound):
        await store.get("datasets/a")


async def test_multipart_put_file_and_aborted_oversized_stream(
    store_backend: StoreBackend, tmp_path: Path
) -> None:
    """Objects larger than one part stream as several parts (S3) and come back
    whole; a stream cut by the size cap leaves no object and no upload."""
    store = store_backend.store
    source = tmp_path / "big.bin"
    with source.open("wb") as out:
        for chunk in pattern(11 * MiB + 123):
            out.write(chunk)
    info = await store.put_file("big/file.bin", source)
    assert info.size == 11 * MiB + 123
    got = hashlib.sha256()
    async for chunk in store.open_read("big/file.bin"):
        got.update(chunk)
    assert got.hexdigest() == digest(pattern(11 * MiB + 123))

    with pytest.raises(ObjectTooLarge):
        await store.put("big/too.bin", astream(pattern(16 * MiB)), max_bytes=12 * MiB)
    assert await store_backend.leftovers("big/too") == []
    # Exactly at the cap is fine.
    at_cap = await store.put("big/cap.bin", astream(pattern(6 * MiB)), max_bytes=6 * MiB)
    assert at_cap.size == 6 * MiB


async def test_listing_spans_pages(store: ObjectStore) -> None:
    if isinstance(store, S3ObjectStore):
        store.list_page_size = 2  # five keys take three ListObjectsV2 pages
    keys = [f"paged/{i}" for i in range(5)]
    await asyncio.gather(*(store.put(key, key.encode()) for key in keys))
    await store.put("paged-not/x", b"")
    assert [info.key for info in await store.list("paged/")] == keys
