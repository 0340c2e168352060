"""Helpers for storage tests: what a backend really holds, generated streams,
and stores the tests can make fail."""

# ``leftovers`` inspects the test's own temp directory with plain pathlib
# calls; blocking the test's event loop for that is harmless.
# ruff: noqa: ASYNC240

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

from aiobotocore.session import get_session

from lakehouse.config import MiB, Settings
from lakehouse.layout import STATE_PREFIX
from lakehouse.storage import (
    LocalObjectStore,
    ObjectInfo,
    ObjectStore,
    StorageUnavailable,
    default_secrets_provider,
    open_store,
)
from tests.support.settings import TEST_ACCESS_KEY, TEST_SECRET_KEY


def new_store(settings: Settings) -> ObjectStore:
    """The (not yet started) store the app would open for ``settings``."""
    return open_store(settings.storage, default_secrets_provider(settings.secrets.file))


async def leftovers(settings: Settings, prefix: str = "") -> list[str]:
    """Everything a failed write could have left: files (temp files too) under
    the local root but the server's own state (the SQLite catalog), or objects and
    unfinished multipart uploads in the bucket."""
    if settings.storage.backend == "local":
        root = Path(settings.storage.data_dir)
        return sorted(
            key
            for p in root.rglob("*")
            if p.is_file()
            and (key := p.relative_to(root).as_posix()).startswith(prefix)
            and not key.startswith(STATE_PREFIX)
        )
    s3 = settings.storage.s3
    async with get_session().create_client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name=s3.region,
        aws_access_key_id=TEST_ACCESS_KEY,
        aws_secret_access_key=TEST_SECRET_KEY,
    ) as client:
        objects = await client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
        uploads = await client.list_multipart_uploads(Bucket=s3.bucket, Prefix=prefix)
    return sorted(
        [item["Key"] for item in objects.get("Contents", [])]
        + [f"upload:{item['Key']}" for item in uploads.get("Uploads", [])]
    )


def pattern(size: int, seed: int = 0, chunk: int = MiB) -> Iterator[bytes]:
    """``size`` deterministic, non-repeating-per-chunk bytes, generated lazily."""
    sent = 0
    index = 0
    while sent < size:
        block = hashlib.sha256(f"{seed}:{index}".encode()).digest() * (chunk // 32 + 1)
        piece = block[: min(chunk, size - sent)]
        sent += len(piece)
        index += 1
        yield piece


def digest(chunks: Iterator[bytes]) -> str:
    sha = hashlib.sha256()
    for chunk in chunks:
        sha.update(chunk)
    return sha.hexdigest()


async def astream(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check()`` until it is true; the deadline only guards a hang."""
    for _ in range(600):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


class FlakyStore(LocalObjectStore):
    """A LocalObjectStore whose operations on keys under ``failing_prefix`` (every key
    by default) raise StorageUnavailable while ``failing`` is set, as a store whose
    disk or network failed.

    While ``failing`` is off it is a LocalObjectStore, and the ObjectStore
    contract suite checks that it still honours the protocol.
    """

    failing = False
    failing_prefix = ""

    def _check(self, key: str) -> None:
        if self.failing and key.startswith(self.failing_prefix):
            raise StorageUnavailable("disk on fire (test)")

    async def put(
        self, key: str, data: bytes | AsyncIterable[bytes], *, max_bytes: int | None = None
    ) -> ObjectInfo:
        self._check(key)
        return await super().put(key, data, max_bytes=max_bytes)

    async def put_file(self, key: str, path: Path) -> ObjectInfo:
        self._check(key)
        return await super().put_file(key, path)

    async def get(self, key: str) -> bytes:
        self._check(key)
        return await super().get(key)

    async def head(self, key: str) -> ObjectInfo:
        self._check(key)
        return await super().head(key)

    async def delete(self, key: str, *, missing_ok: bool = False) -> None:
        self._check(key)
        await super().delete(key, missing_ok=missing_ok)
