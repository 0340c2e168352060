"""LocalObjectStore beyond the ObjectStore contract: what only a filesystem does
(a key that is also a prefix, temp files left by a crash)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from lakehouse.config import Settings
from lakehouse.storage import KeyConflict, ObjectNotFound
from lakehouse.storage._local import os_error
from tests.support.storage import leftovers, new_store


async def test_local_key_that_is_also_a_prefix_is_a_conflict(local_settings: Settings) -> None:
    store = new_store(local_settings)
    await store.start()
    await store.put("a/b", b"1")
    with pytest.raises(KeyConflict):
        await store.put("a/b/c", b"2")
    with pytest.raises(KeyConflict):
        await store.put("a", b"3")
    with pytest.raises(ObjectNotFound):
        await store.delete("a")  # a directory, not an object
    assert await leftovers(local_settings) == ["a/b"]


async def test_local_store_start_removes_temp_files_of_interrupted_writes(tmp_path: Path) -> None:
    """A crash mid-write (an object or a manifest) leaves a .tmp- file; the next
    start removes it and leaves the objects alone, and the scratch area
    (``_tmp/``) to the modules that clean their own files there."""
    from lakehouse.layout import IN_PROGRESS_PREFIX as TMP_PREFIX
    from lakehouse.storage import LocalObjectStore

    root = tmp_path / "data"
    (root / "_catalog" / "manifests").mkdir(parents=True)
    (root / "datasets" / "a").mkdir(parents=True)
    stale = [
        root / "_catalog" / "manifests" / f"{TMP_PREFIX}x1",
        root / "datasets" / "a" / f"{TMP_PREFIX}x2",
    ]
    for path in stale:
        path.write_bytes(b"half written")
    (root / "datasets" / "a" / "1.parquet").write_bytes(b"PAR1 whole")
    scratch = root / "_tmp" / "other" / f"{TMP_PREFIX}in-use"
    scratch.parent.mkdir(parents=True)
    scratch.write_bytes(b"not the store's")
    store = LocalObjectStore(root)
    await store.start()
    assert not any(path.exists() for path in stale)
    assert scratch.exists()
    assert [info.key for info in await store.list()] == ["datasets/a/1.parquet"]


@pytest.mark.parametrize(
    ("number", "status", "code"),
    [
        (errno.EACCES, 502, "storage_misconfigured"),
        (errno.EROFS, 502, "storage_misconfigured"),
        (errno.ENOSPC, 503, "storage_unavailable"),
        (errno.EIO, 503, "storage_unavailable"),
    ],
)
def test_disk_errors_say_whether_an_operator_must_act(number: int, status: int, code: str) -> None:
    """A permission or a read-only mount is the operator's (502, no retry); a full or
    failing disk may pass (503); neither names the disk path."""
    error = os_error("a/b.bin", OSError(number, os.strerror(number), "/srv/lake/a/b.bin"))
    assert (error.status_code, error.code) == (status, code)
    assert "/srv" not in error.message
