"""Local filesystem backend: objects are files under one root directory."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime as dt
import errno
import hashlib
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Sequence
from functools import partial
from pathlib import Path

from lakehouse.layout import IN_PROGRESS_PREFIX, LOCAL_ONLY_PREFIXES
from lakehouse.limits import capped
from lakehouse.storage.errors import (
    InvalidKey,
    KeyConflict,
    ObjectNotFound,
    ObjectTooLarge,
    StorageMisconfigured,
    StorageUnavailable,
)
from lakehouse.storage.interface import DuckDBGrant, FileIOGrant, ObjectInfo
from lakehouse.storage.keys import validate_key, validate_prefix

log = logging.getLogger("lakehouse.storage")


class LocalObjectStore:
    """Objects as files under ``root``; writes are temp file + fsync + rename."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"LocalObjectStore(root={str(self.root)!r})"

    async def start(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        # At start-up no write of this process is in flight, and no other process
        # writes under this root: every temp file is a crash's leftover.
        removed = await asyncio.to_thread(self._remove_stale_temp_files, None)
        if removed:
            log.info("removed %d temp file(s) of interrupted writes", len(removed))

    async def probe(self) -> None:
        with _translate_os_errors(""):
            if not await asyncio.to_thread(os.access, self.root, os.R_OK | os.W_OK | os.X_OK):
                raise StorageUnavailable(
                    "local storage failed: the root is not readable and writable",
                    details={"reason": "EACCES"},
                )

    async def abort_stale_uploads(
        self, started_before: dt.datetime, prefixes: Sequence[str]
    ) -> builtins.list[str]:
        return await asyncio.to_thread(self._remove_stale_temp_files, started_before, prefixes)

    def _remove_stale_temp_files(
        self, started_before: dt.datetime | None, prefixes: Sequence[str] = ("",)
    ) -> builtins.list[str]:
        """Remove the temp files of writes under ``prefixes`` (older than
        ``started_before``, if given); return their paths under the root.

        The top-level local-only directories (``_tmp/``: ingest spool, DuckDB
        spill; ``_state/``: the SQLite catalog) are not walked: their users clean
        their own files.
        """
        cutoff = started_before.timestamp() if started_before is not None else None
        removed = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            if dirpath == str(self.root):
                dirnames[:] = [d for d in dirnames if f"{d}/" not in LOCAL_ONLY_PREFIXES]
            for name in filenames:
                if not name.startswith(IN_PROGRESS_PREFIX):
                    continue
                path = Path(dirpath) / name
                if not path.relative_to(self.root).as_posix().startswith(tuple(prefixes)):
                    continue
                try:
                    if cutoff is not None and path.stat().st_mtime >= cutoff:
                        continue
                    path.unlink()
                except FileNotFoundError:
                    continue  # its write finished meanwhile
                removed.append(path.relative_to(self.root).as_posix())
        return sorted(removed)

    async def close(self) -> None:
        return None

    # -- paths ---------------------------------------------------------------

    def _path(self, key: str) -> Path:
        """The file for ``key``, guaranteed to be inside the root (symlinks too).

        Blocking (resolving follows symlinks on disk): call it in a worker thread.
        """
        validate_key(key)
        if key.startswith(LOCAL_ONLY_PREFIXES):
            raise InvalidKey(f"object key {key!r} names this server's local files, not an object")
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidKey(f"object key {key!r} resolves outside the storage root")
        return path

    def _make_temp(self, key: str) -> tuple[Path, int, str]:
        """``key``'s file, and a temp file beside it (same filesystem, so the
        rename is atomic) as (fd, name). Blocking."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=IN_PROGRESS_PREFIX, dir=path.parent)
        return path, fd, tmp_name

    def duckdb_grant(self, read_prefixes: Sequence[str]) -> DuckDBGrant:
        return DuckDBGrant(root=str(self.root) + os.sep, read_prefixes=tuple(read_prefixes))

    def fileio_grant(self) -> FileIOGrant:
        return FileIOGrant(root=str(self.root) + os.sep)

    # -- writes --------------------------------------------------------------

    async def put(
        self,
        key: str,
        data: bytes | AsyncIterable[bytes],
        *,
        max_bytes: int | None = None,
    ) -> ObjectInfo:
        validate_key(key)
        with _translate_os_errors(key):
            path, fd, tmp_name = await asyncio.to_thread(self._make_temp, key)
        tmp = Path(tmp_name)
        if isinstance(data, bytes | bytearray | memoryview):
            chunks: AsyncIterable[bytes] = _one_chunk(bytes(data))
        else:
            chunks = data
        if max_bytes is not None:
            chunks = capped(chunks, max_bytes, partial(ObjectTooLarge.over, max_bytes))
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    await asyncio.to_thread(out.write, chunk)
                await asyncio.to_thread(_flush_and_sync, out)
            await asyncio.to_thread(os.replace, tmp, path)
        except BaseException as exc:
            # Synchronous on purpose: it must run even when we are being cancelled.
            tmp.unlink(missing_ok=True)  # noqa: ASYNC240
            if isinstance(exc, OSError):
                raise os_error(key, exc) from exc
            raise
        return await self.head(key)

    async def put_file(self, key: str, path: Path) -> ObjectInfo:
        validate_key(key)

        def copy() -> None:
            target, fd, tmp_name = self._make_temp(key)
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
                    shutil.copyfileobj(src, out, 1024 * 1024)
                    _flush_and_sync(out)
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

        with _translate_os_errors(key):
            await asyncio.to_thread(copy)
        return await self.head(key)

    async def delete(self, key: str, *, missing_ok: bool = False) -> None:
        validate_key(key)
        await asyncio.to_thread(self._delete_sync, key, missing_ok)

    def _delete_sync(self, key: str, missing_ok: bool) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
            # unlink of a directory is EISDIR (or EPERM on some systems): not an object.
            if isinstance(exc, PermissionError) and not path.is_dir():
                raise os_error(key, exc) from exc
            if not missing_ok:
                raise ObjectNotFound(f"no object {key!r}") from exc
            return
        except OSError as exc:
            raise os_error(key, exc) from exc
        self._prune_empty_dirs(path.parent)

    def _prune_empty_dirs(self, directory: Path) -> None:
        while directory != self.root:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    # -- reads ---------------------------------------------------------------

    async def get(self, key: str) -> bytes:
        validate_key(key)
        try:
            return await asyncio.to_thread(lambda: self._path(key).read_bytes())
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"no object {key!r}") from exc
        except OSError as exc:
            raise os_error(key, exc) from exc

    async def open_read(self, key: str, chunk_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
        validate_key(key)
        try:
            # Closed in the finally below: the generator outlives any with block.
            handle = await asyncio.to_thread(lambda: open(self._path(key), "rb"))  # noqa: SIM115
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"no object {key!r}") from exc
        except OSError as exc:
            raise os_error(key, exc) from exc
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    async def head(self, key: str) -> ObjectInfo:
        validate_key(key)
        try:
            info = await asyncio.to_thread(lambda: self._path(key).stat())
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"no object {key!r}") from exc
        except OSError as exc:
            raise os_error(key, exc) from exc
        if not _is_regular_file(info):
            raise ObjectNotFound(f"no object {key!r}")
        return _info(key, info)

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        validate_prefix(prefix)
        with _translate_os_errors(prefix):
            return await asyncio.to_thread(self._list_sync, prefix)

    def _list_sync(self, prefix: str) -> builtins.list[ObjectInfo]:
        # Walk only the deepest directory the prefix names, not the whole root.
        start_dir = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        if not start_dir.resolve().is_relative_to(self.root) or not start_dir.is_dir():
            return []
        found = []
        for dirpath, dirnames, filenames in os.walk(start_dir):
            dirnames.sort()
            for name in filenames:
                full = Path(dirpath) / name
                # Objects are only ever regular files we wrote; a symlink (which
                # reads would refuse if it leads outside the root) is not one.
                if name.startswith(IN_PROGRESS_PREFIX) or full.is_symlink():
                    continue
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix) and not key.startswith(LOCAL_ONLY_PREFIXES):
                    try:
                        found.append(_info(key, full.stat()))
                    except FileNotFoundError:
                        continue  # deleted while we listed
        found.sort(key=lambda info: info.key)
        return found


def _is_regular_file(info: os.stat_result) -> bool:
    return stat.S_ISREG(info.st_mode)


@contextlib.contextmanager
def _translate_os_errors(key: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise os_error(key, exc) from exc


def os_error(key: str, exc: OSError) -> InvalidKey | KeyConflict | StorageUnavailable:
    """An OSError as one of ours; the message names the key, not the disk path."""
    if exc.errno == errno.ENAMETOOLONG:
        # The client's key, not the disk, is at fault: a 400 like any other bad key.
        return InvalidKey(
            f"object key {key!r} has a segment longer than the local filesystem allows "
            "(255 bytes per segment on the local backend)"
        )
    if exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
        return KeyConflict(
            f"object key {key!r} collides with another object: on the local backend "
            "a key cannot be both an object and a prefix of other objects"
        )
    reason = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    # Permissions and a read-only mount are the operator's to fix: retrying does not help.
    operator = exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)
    kind = StorageMisconfigured if operator else StorageUnavailable
    return kind(f"local storage failed for {key!r}: {reason}", details={"reason": reason})


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _flush_and_sync(handle: object) -> None:
    handle.flush()  # type: ignore[attr-defined]
    os.fsync(handle.fileno())  # type: ignore[attr-defined]


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    # An etag that changes whenever the file is replaced: inode, size, mtime.
    tag = hashlib.blake2b(
        f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}".encode(), digest_size=12
    ).hexdigest()
    return ObjectInfo(
        key=key,
        size=st.st_size,
        etag=tag,
        last_modified=dt.datetime.fromtimestamp(st.st_mtime, dt.UTC),
    )
