"""ManifestCatalog: the Catalog protocol over an ObjectStore (ADR 0003).

Each dataset is one single-row Parquet file at
``_catalog/manifests/<lower-case name>.parquet``. The in-memory index (keyed by
the lower-case name) is the read path; storage is the source of truth, read
back by ``load()`` at start-up. Registers and deletes are serialized by one
lock and write storage first, so a failed write leaves both the previous
manifest and the index as they were.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import re
import uuid
from collections.abc import Iterable

import msgspec

from lakehouse.catalog._codec import ManifestDecodeError, decode_manifest, encode_manifest
from lakehouse.catalog.errors import (
    DatasetNotFound,
    InvalidDatasetName,
    InvalidRegistration,
    MissingObjects,
    SchemaConflict,
)
from lakehouse.catalog.interface import (
    Column,
    Manifest,
    RegisterRequest,
    Registration,
)
from lakehouse.layout import DATASETS_PREFIX, MANIFEST_PREFIX, MANIFEST_SUFFIX, manifest_key
from lakehouse.storage import InvalidKey, ObjectNotFound, ObjectStore, validate_key

log = logging.getLogger("lakehouse.catalog")

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# How many manifests load() fetches from storage at once.
_LOAD_CONCURRENCY = 8
# How many objects register() checks for existence at once.
_HEAD_CONCURRENCY = 8
_MAX_ROW_COUNT = 2**63 - 1  # stored as int64


def validate_dataset_name(name: str) -> str:
    """Return ``name`` if it is a valid dataset name, else raise ``InvalidDatasetName``.

    Valid: an ASCII letter or underscore, then up to 127 letters, digits or
    underscores, so every dataset name is a plain SQL identifier.
    """
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
        raise InvalidDatasetName(
            f"invalid dataset name {name!r}: use a letter or '_' followed by up to 127 "
            "letters, digits or '_'",
            details={"name": name, "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,127}$"},
        )
    return name


def schema_fingerprint(columns: Iterable[Column]) -> str:
    """sha256 (hex) of the ordered (name, type) pairs.

    The hashed bytes are the compact JSON array ``[["name","TYPE"],...]``
    (UTF-8), which is unambiguous whatever characters names or types hold.
    Names and types are hashed exactly as given: order matters, case matters.
    """
    pairs = [[column.name, column.type] for column in columns]
    return hashlib.sha256(msgspec.json.encode(pairs)).hexdigest()


def manifest_etag(manifest: Manifest) -> str:
    """A strong etag of one manifest's content (changes on every register of it)."""
    return hashlib.sha256(msgspec.json.encode(manifest)).hexdigest()[:32]


class ManifestCatalog:
    """The catalog: manifests as Parquet in an ObjectStore, indexed in memory."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._index: dict[str, Manifest] = {}
        self._lock = asyncio.Lock()
        self._version = _content_version(self._index)
        self._unreadable: list[str] = []

    def __repr__(self) -> str:
        return f"ManifestCatalog(store={self._store!r}, datasets={len(self._index)})"

    # -- start-up -------------------------------------------------------------

    async def load(self) -> None:
        """Rebuild the index from storage.

        A manifest that cannot be decoded is logged with its key and skipped.
        Storage errors (backend down) propagate: starting with a partial
        index would let a register overwrite a dataset we failed to read.
        """
        infos = await self._store.list(MANIFEST_PREFIX)
        keys = [info.key for info in infos]
        limit = asyncio.Semaphore(_LOAD_CONCURRENCY)

        async def read(key: str) -> Manifest | None:
            async with limit:
                return await self._read_manifest(key)

        loaded = await asyncio.gather(*(read(key) for key in keys))
        index = {m.name.lower(): m for m in loaded if m is not None}
        unreadable = [
            key[len(MANIFEST_PREFIX) : -len(MANIFEST_SUFFIX)].lower()
            for key, manifest in zip(keys, loaded, strict=True)
            if manifest is None and key.endswith(MANIFEST_SUFFIX)
        ]
        async with self._lock:
            self._index = index
            self._version = _content_version(index)
            self._unreadable = [name for name in unreadable if name not in index]
        log.info("catalog loaded", extra={"datasets": len(index), "manifest_files": len(keys)})

    async def unreadable(self) -> list[str]:
        return list(self._unreadable)

    async def _read_manifest(self, key: str) -> Manifest | None:
        relative = key[len(MANIFEST_PREFIX) :]
        if "/" in relative or not relative.endswith(MANIFEST_SUFFIX):
            log.warning("ignoring a file that is not a manifest", extra={"key": key})
            return None
        try:
            data = await self._store.get(key)
        except ObjectNotFound:
            return None  # deleted between list and get
        try:
            manifest = await asyncio.to_thread(decode_manifest, data)
            validate_dataset_name(manifest.name)
            if manifest_key(manifest.name) != key:
                raise ManifestDecodeError(
                    f"manifest of {manifest.name!r} is stored under the wrong key"
                )
            if problems := _object_key_problems(manifest.objects):
                raise ManifestDecodeError("; ".join(problems))
        except (ManifestDecodeError, InvalidDatasetName) as exc:
            log.error(
                "skipping unreadable catalog manifest %s: %s",
                key,
                getattr(exc, "message", str(exc)),
                extra={"key": key},
            )
            return None
        return manifest

    # -- reads ----------------------------------------------------------------

    async def get(self, name: str) -> Manifest:
        validate_dataset_name(name)
        manifest = self._index.get(name.lower())
        if manifest is None:
            raise DatasetNotFound(f"no dataset named {name!r}", details={"name": name})
        return manifest

    async def list(self) -> list[Manifest]:
        return sorted(self._index.values(), key=lambda m: m.name.lower())

    async def version(self) -> str:
        return self._version

    # -- writes ---------------------------------------------------------------

    async def register(self, request: RegisterRequest) -> Registration:
        validate_dataset_name(request.name)
        _validate_request(request)
        await _check_objects_exist(self._store, request.objects)
        fingerprint = schema_fingerprint(request.schema)
        key = manifest_key(request.name)
        async with self._lock:
            existing = self._index.get(request.name.lower())
            now = _now()
            if existing is None:
                manifest = Manifest(
                    dataset_id=str(uuid.uuid4()),
                    name=request.name,
                    schema_fingerprint=fingerprint,
                    schema=list(request.schema),
                    objects=list(request.objects),
                    row_count=request.row_count,
                    created_at=now,
                    updated_at=now,
                )
                replaced: list[str] = []
            else:
                if existing.schema_fingerprint != fingerprint:
                    raise _conflict(existing, request, fingerprint)
                # Strictly increasing, so every register changes the manifest and the version.
                updated_at = max(now, existing.updated_at + dt.timedelta(microseconds=1))
                manifest = msgspec.structs.replace(
                    existing,
                    objects=list(request.objects),
                    row_count=request.row_count,
                    updated_at=updated_at,
                )
                kept = set(request.objects)
                replaced = [key for key in existing.objects if key not in kept]
            data = await asyncio.to_thread(encode_manifest, manifest)
            # Storage first: if the put fails, the index still matches storage.
            await self._store.put(key, data)
            self._set(manifest.name.lower(), manifest)
        log.info(
            "dataset registered",
            extra={
                "dataset": manifest.name,
                "dataset_id": manifest.dataset_id,
                "new_dataset": existing is None,
                "objects": len(manifest.objects),
                "row_count": manifest.row_count,
            },
        )
        return Registration(manifest=manifest, created=existing is None, replaced_objects=replaced)

    async def delete(self, name: str) -> Manifest:
        validate_dataset_name(name)
        async with self._lock:
            manifest = self._index.get(name.lower())
            if manifest is None:
                raise DatasetNotFound(f"no dataset named {name!r}", details={"name": name})
            await self._store.delete(manifest_key(name), missing_ok=True)
            self._set(name.lower(), None)
        log.info(
            "dataset deleted", extra={"dataset": manifest.name, "dataset_id": manifest.dataset_id}
        )
        return manifest

    def _set(self, lower_name: str, manifest: Manifest | None) -> None:
        # A fresh dict per change: readers iterating the old one are never disturbed.
        index = dict(self._index)
        if manifest is None:
            index.pop(lower_name, None)
        else:
            index[lower_name] = manifest
        self._index = index
        self._version = _content_version(index)
        # A register or delete replaced whatever unreadable file stood under that name.
        self._unreadable = [name for name in self._unreadable if name != lower_name]


async def _check_objects_exist(store: ObjectStore, keys: list[str]) -> None:
    limit = asyncio.Semaphore(_HEAD_CONCURRENCY)

    async def missing(key: str) -> bool:
        try:
            async with limit:
                await store.head(key)
        except ObjectNotFound:
            return True
        return False

    results = await asyncio.gather(*(missing(key) for key in keys))
    absent = [key for key, is_missing in zip(keys, results, strict=True) if is_missing]
    if absent:
        raise MissingObjects(
            f"{len(absent)} of the objects do not exist in storage",
            details={"missing": absent},
        )


def _validate_request(request: RegisterRequest) -> None:
    problems: list[str] = []
    if not 0 <= request.row_count <= _MAX_ROW_COUNT:
        problems.append(f"row_count must be between 0 and {_MAX_ROW_COUNT}")
    if not request.schema:
        problems.append("schema must have at least one column")
    if any(not column.name or not column.type for column in request.schema):
        problems.append("every column needs a non-empty name and type")
    if len(set(request.objects)) != len(request.objects):
        problems.append("objects lists a key twice")
    problems.extend(_object_key_problems(request.objects))
    if problems:
        raise InvalidRegistration("; ".join(problems), details={"problems": problems})


def _object_key_problems(keys: list[str]) -> list[str]:
    """Data objects must be valid keys under ``datasets/`` (all the sandbox lets queries read)."""
    problems = []
    for key in keys:
        try:
            validate_key(key)
        except InvalidKey as exc:
            problems.append(exc.message)
            continue
        if not key.startswith(DATASETS_PREFIX):
            problems.append(f"object {key!r} is not under {DATASETS_PREFIX!r}")
    return problems


def _conflict(existing: Manifest, request: RegisterRequest, fingerprint: str) -> SchemaConflict:
    def describe(fp: str, columns: list[Column]) -> dict[str, object]:
        return {
            "schema_fingerprint": fp,
            "schema": [{"name": c.name, "type": c.type} for c in columns],
        }

    return SchemaConflict(
        f"dataset {existing.name!r} exists with another schema; delete it first or "
        "register under another name",
        details={
            "name": existing.name,
            "dataset_id": existing.dataset_id,
            "existing": describe(existing.schema_fingerprint, existing.schema),
            "offered": describe(fingerprint, request.schema),
        },
    )


def _content_version(index: dict[str, Manifest]) -> str:
    """A hash of the whole catalog: equal iff the set of manifests is equal.

    Every register bumps ``updated_at`` and every delete drops an entry, so
    every change yields a new value; a restart over the same storage yields
    the same value.
    """
    digest = hashlib.sha256()
    for lower_name in sorted(index):
        digest.update(msgspec.json.encode(index[lower_name]))
        digest.update(b"\n")
    return digest.hexdigest()[:32]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
