"""The ObjectStore contract: what every implementation does, whatever its backend.

Written once against the protocol (lakehouse/storage/interface.py) and run over
every implementation by the ``store_backend`` fixture (tests/contracts/conftest.py):
local, S3 on the real moto server, and the failure-injecting store unit tests use.
What only one backend does (a local key that is also a prefix, S3 errors,
DuckDB addressing) is tested beside that backend, not here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lakehouse.config import MiB
from lakehouse.storage import (
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
    S3ObjectStore,
)
from tests.support.backends import StoreBackend
from tests.support.storage import astream, digest, eventually, pattern

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


# -- put and get -------------------------------------------------------------------


async def test_put_returns_the_info_head_and_list_report(store: ObjectStore) -> None:
    started = dt.datetime.now(dt.UTC)
    info = await store.put("c/one.bin", bytes(range(256)))
    assert (info.key, info.size) == ("c/one.bin", 256)
    assert info.etag
    assert info.last_modified.tzinfo is not None
    slack = dt.timedelta(minutes=5)  # clock granularity only: the object is brand new
    assert started - slack < info.last_modified < dt.datetime.now(dt.UTC) + slack
    head = await store.head("c/one.bin")
    assert (head.key, head.size, head.etag) == (info.key, info.size, info.etag)
    [listed] = await store.list("c/")
    assert (listed.key, listed.size, listed.etag) == (info.key, info.size, info.etag)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00\xff\r\n" * 3, bytes(range(256)) * 4096],
    ids=["empty", "binary", "one-mib"],
)
async def test_put_then_get_and_open_read_give_the_same_bytes(
    store: ObjectStore, data: bytes
) -> None:
    info = await store.put("c/data", data)
    assert info.size == len(data)
    assert await store.get("c/data") == data
    assert b"".join([chunk async for chunk in store.open_read("c/data")]) == data
    assert (await store.head("c/data")).size == len(data)


VALID_KEYS = [
    "top",
    "a/b/c/d/e/f.parquet",
    "dir with space/ünïcode ✓.bin",
    "x/.hidden",
    "x/..dots",
    "x/a.tmp-not-at-the-start",
    "x/%2e%2e",
    "k" * 200,
    ("s" * 99 + "/") * 10 + "e" * 24,  # 1024 bytes, the longest key allowed
]


async def test_every_valid_key_round_trips(store: ObjectStore) -> None:
    assert len(VALID_KEYS[-1].encode()) == 1024
    for index, key in enumerate(VALID_KEYS):
        assert (await store.put(key, str(index).encode())).key == key
    for index, key in enumerate(VALID_KEYS):
        assert await store.get(key) == str(index).encode(), key
        assert (await store.head(key)).key == key
    assert await listed_keys(store) == sorted(VALID_KEYS)


async def test_put_streams_an_async_iterable(store: ObjectStore) -> None:
    """Empty chunks, tiny chunks and enough data for several S3 parts, in one stream."""
    chunks = [b"", b"a", b"", *pattern(11 * MiB + 5, seed=3, chunk=256 * 1024), b""]
    info = await store.put("c/stream.bin", astream(iter(chunks)))
    assert info.size == sum(len(chunk) for chunk in chunks)
    got = hashlib.sha256()
    async for chunk in store.open_read("c/stream.bin"):
        got.update(chunk)
    assert got.hexdigest() == digest(iter(chunks))


async def test_put_file_stores_a_local_file(store: ObjectStore, tmp_path: Path) -> None:
    content = b"id,city\n1,Chicago\n"
    small = tmp_path / "small.csv"
    small.write_bytes(content)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert (await store.put_file("c/small.csv", small)).size == len(content)
    assert (await store.put_file("c/empty.csv", empty)).size == 0
    assert await store.get("c/small.csv") == content
    assert await store.get("c/empty.csv") == b""
    assert await listed_keys(store, "c/") == ["c/empty.csv", "c/small.csv"]


# -- max_bytes -----------------------------------------------------------------------


@pytest.mark.parametrize("as_stream", [False, True], ids=["bytes", "stream"])
async def test_over_max_bytes_is_object_too_large_and_leaves_nothing(
    store_backend: StoreBackend, as_stream: bool
) -> None:
    """Over the cap after more than one S3 part was sent: the upload is aborted."""
    store = store_backend.store
    data = b"".join(pattern(OVER_ONE_PART + MiB, seed=4))
    cap = OVER_ONE_PART
    payload = astream(pattern(len(data), seed=4)) if as_stream else data
    with pytest.raises(ObjectTooLarge) as caught:
        await store.put("c/too-big", payload, max_bytes=cap)
    assert caught.value.status_code == 413
    assert caught.value.details == {"max_bytes": cap}
    assert await store_backend.leftovers("c/") == []
    with pytest.raises(ObjectNotFound):
        await store.head("c/too-big")
    # Exactly at the cap is fine, whichever way the bytes come.
    at_cap = data[:cap]
    payload = astream(iter([at_cap[:MiB], at_cap[MiB:]])) if as_stream else at_cap
    assert (await store.put("c/at-cap", payload, max_bytes=cap)).size == cap
    assert await store_backend.leftovers("c/") == ["c/at-cap"]


# -- reads -----------------------------------------------------------------------------


async def test_open_read_yields_chunks_of_at_most_chunk_size(store: ObjectStore) -> None:
    data = b"".join(pattern(3 * MiB + 7, seed=5))
    await store.put("c/chunks", data)
    chunks = [chunk async for chunk in store.open_read("c/chunks", chunk_size=256 * 1024)]
    assert b"".join(chunks) == data
    assert all(0 < len(chunk) <= 256 * 1024 for chunk in chunks)


async def test_missing_objects_and_prefixes_are_object_not_found(store: ObjectStore) -> None:
    """Reads of a key that names nothing, or only a prefix of other keys, fail the
    same way; open_read fails on its first chunk, before yielding anything."""
    await store.put("r/inside/x", b"1")
    for missing in ("r/none", "r/inside", "r", "r/inside/x/deeper"):
        with pytest.raises(ObjectNotFound):
            await store.get(missing)
        with pytest.raises(ObjectNotFound):
            await store.head(missing)
        reader = store.open_read(missing)
        with pytest.raises(ObjectNotFound):
            await anext(reader)


# -- listing ---------------------------------------------------------------------------


async def test_list_is_sorted_by_key_and_filtered_by_any_prefix(store: ObjectStore) -> None:
    for key in ["p/b", "p/a/2", "q", "p/a/10", "p-x", "p/c"]:
        await store.put(key, key.encode())
    assert await listed_keys(store) == ["p-x", "p/a/10", "p/a/2", "p/b", "p/c", "q"]
    assert await listed_keys(store, "p/") == ["p/a/10", "p/a/2", "p/b", "p/c"]
    # A prefix is a string prefix of the key, not a directory.
    assert await listed_keys(store, "p") == ["p-x", "p/a/10", "p/a/2", "p/b", "p/c"]
    assert await listed_keys(store, "p/a") == ["p/a/10", "p/a/2"]
    assert await listed_keys(store, "p/a/1") == ["p/a/10"]
    assert await listed_keys(store, "p/a/10") == ["p/a/10"]
    assert await listed_keys(store, "r/") == []
    assert [(i.key, i.size) for i in await store.list("p/a/")] == [("p/a/10", 6), ("p/a/2", 5)]


class PutInProgress:
    """A put of ``w/new`` (more than one S3 part) held open before its last bytes
    until ``release`` is set: the backend holds its temp file or multipart upload."""

    def __init__(self, store_backend: StoreBackend) -> None:
        self.backend = store_backend
        self.release = asyncio.Event()
        self.task: asyncio.Task[ObjectInfo] | None = None

    async def body(self) -> AsyncIterator[bytes]:
        yield b"".join(pattern(OVER_ONE_PART, seed=6))
        await self.release.wait()
        yield b"the end"

    async def __aenter__(self) -> asyncio.Task[ObjectInfo]:
        self.task = asyncio.create_task(self.backend.store.put("w/new", self.body()))

        async def started() -> bool:
            return bool(await self.backend.leftovers("w/"))

        await eventually(started, "the write reached the backend")
        return self.task

    async def __aexit__(self, *exc_info: object) -> None:
        self.release.set()
        assert self.task is not None
        await asyncio.gather(self.task, return_exceptions=True)


async def test_a_write_in_progress_is_invisible_until_it_completes(
    store_backend: StoreBackend,
) -> None:
    """While a put is under way the backend holds its temp file or multipart
    upload, yet no listing, head or get shows the key."""
    store = store_backend.store
    async with PutInProgress(store_backend) as writing:
        assert await store.list() == []
        assert await store.list("w/") == []
        with pytest.raises(ObjectNotFound):
            await store.head("w/new")
        with pytest.raises(ObjectNotFound):
            await store.get("w/new")
    info = writing.result()
    assert info.size == OVER_ONE_PART + 7
    assert await listed_keys(store) == ["w/new"]
    assert await store_backend.leftovers() == ["w/new"]


async def test_stale_writes_are_aborted_and_younger_ones_kept(
    store_backend: StoreBackend,
) -> None:
    """What a process that died mid-write left (an unfinished multipart upload, a temp
    file) goes once it started before the cutoff; a write younger than that is kept."""
    store = store_backend.store
    an_hour_from_now = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    async with PutInProgress(store_backend) as writing:
        in_progress = await store_backend.leftovers("w/")
        # moto reports every upload as started in 2010: a cutoff before that keeps it.
        long_ago = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        assert await store.abort_stale_uploads(long_ago, ["w/"]) == []
        assert await store_backend.leftovers("w/") == in_progress
        # Only the writes under the prefixes asked for (a shared bucket has others).
        assert await store.abort_stale_uploads(an_hour_from_now, ["other/"]) == []
        assert await store_backend.leftovers("w/") == in_progress

        aborted = await store.abort_stale_uploads(an_hour_from_now, ["other/", "w/"])
        assert len(aborted) == 1
        assert aborted[0].startswith("w/")
        assert await store_backend.leftovers("w/") == []
        assert await store.abort_stale_uploads(an_hour_from_now, ["w/"]) == []
        writing.cancel()  # the writer is gone, as a killed process is
    assert await store_backend.leftovers() == []


# -- overwrite -------------------------------------------------------------------------


async def test_an_overwrite_is_atomic(store_backend: StoreBackend) -> None:
    """Readers see the old object until the new one is complete, then only the new."""
    store = store_backend.store
    old = await store.put("w/obj", b"old version")
    new = b"".join(pattern(OVER_ONE_PART + 10, seed=7))
    release = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield new[:-10]
        await release.wait()
        yield new[-10:]

    writing = asyncio.create_task(store.put("w/obj", body()))
    try:

        async def started() -> bool:
            return len(await store_backend.leftovers("w/")) > 1

        await eventually(started, "the overwrite reached the backend")
        assert await store.get("w/obj") == b"old version"
        head = await store.head("w/obj")
        assert (head.size, head.etag) == (old.size, old.etag)
        assert [(i.key, i.size) for i in await store.list("w/")] == [("w/obj", old.size)]
    finally:
        release.set()
        info = await writing
    assert info.size == len(new)
    assert info.etag != old.etag
    assert await store.get("w/obj") == new
    assert await store_backend.leftovers("w/") == ["w/obj"]


@pytest.mark.parametrize("failure", ["too-large", "source-error"])
async def test_a_failed_overwrite_leaves_the_previous_object(
    store_backend: StoreBackend, failure: str
) -> None:
    store = store_backend.store
    old = await store.put("w/obj", b"old version")

    async def body() -> AsyncIterator[bytes]:
        yield b"".join(pattern(OVER_ONE_PART, seed=8))
        if failure == "source-error":
            raise RuntimeError("the source failed mid-stream (test)")
        yield b"one byte too many"

    expected = ObjectTooLarge if failure == "too-large" else RuntimeError
    with pytest.raises(expected):
        await store.put("w/obj", body(), max_bytes=OVER_ONE_PART)
    assert await store.get("w/obj") == b"old version"
    assert (await store.head("w/obj")).etag == old.etag
    assert await store_backend.leftovers("w/") == ["w/obj"]


# -- delete ----------------------------------------------------------------------------


async def test_delete_removes_one_object_and_missing_ok_allows_absence(
    store: ObjectStore,
) -> None:
    await store.put("d/a", b"1")
    await store.put("d/b", b"2")
    await store.delete("d/a")
    assert await listed_keys(store, "d/") == ["d/b"]
    with pytest.raises(ObjectNotFound):
        await store.get("d/a")
    with pytest.raises(ObjectNotFound):
        await store.delete("d/a")
    await store.delete("d/a", missing_ok=True)
    await store.delete("never/was", missing_ok=True)
    # A prefix is not an object: deleting it removes nothing.
    with pytest.raises(ObjectNotFound):
        await store.delete("d")
    await store.delete("d", missing_ok=True)
    assert await listed_keys(store) == ["d/b"]
    assert await store.get("d/b") == b"2"


# -- invalid keys ------------------------------------------------------------------------

INVALID_KEYS = [
    "",
    "/etc/passwd",
    "a//b",
    "a/",
    ".",
    "../x",
    "a/../../x",
    "a/./b",
    "a\\b",
    "a\x00b",
    "a\nb",
    "C:/x",
    "k" * 1025,
    ".tmp-x",
    "a/.tmp-x/b",
]


@pytest.mark.parametrize("key", INVALID_KEYS)
async def test_invalid_keys_are_refused_by_every_method(
    store_backend: StoreBackend, key: str, tmp_path: Path
) -> None:
    store = store_backend.store
    source = tmp_path / "source.bin"
    source.write_bytes(b"payload")
    with pytest.raises(InvalidKey):
        await store.put(key, b"payload")
    with pytest.raises(InvalidKey):
        await store.put(key, astream(iter([b"pay", b"load"])))
    with pytest.raises(InvalidKey):
        await store.put_file(key, source)
    with pytest.raises(InvalidKey):
        await store.get(key)
    with pytest.raises(InvalidKey):
        await store.head(key)
    with pytest.raises(InvalidKey):
        await anext(store.open_read(key))
    with pytest.raises(InvalidKey):
        await store.delete(key)
    with pytest.raises(InvalidKey):
        await store.delete(key, missing_ok=True)
    assert await store_backend.leftovers() == []
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "passwd").exists()


@pytest.mark.parametrize("prefix", ["../", "/abs", "a//", "a/../", ".tmp-", "a\x00"])
async def test_invalid_list_prefixes_are_refused(store: ObjectStore, prefix: str) -> None:
    await store.put("a/b", b"1")
    with pytest.raises(InvalidKey):
        await store.list(prefix)
