"""The catalog's rules, whatever stores the tables: valid names, schema
fingerprints, what a commit request may hold, how a conflict is described."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Iterable

import msgspec

from lakehouse.catalog._types import struct_growth
from lakehouse.catalog.errors import (
    DatasetExists,
    InvalidDatasetName,
    InvalidRegistration,
    MissingObjects,
    SchemaConflict,
)
from lakehouse.catalog.interface import (
    Column,
    ColumnTyping,
    CommitMode,
    CommitRequest,
    DatasetVersion,
    DescribedColumn,
    Manifest,
    RegisterRequest,
)
from lakehouse.layout import DATASETS_PREFIX
from lakehouse.storage import InvalidKey, ObjectNotFound, ObjectStore, validate_key

log = logging.getLogger("lakehouse.catalog")

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
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


async def check_objects_exist(store: ObjectStore, keys: list[str]) -> None:
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


def validate_request(
    request: CommitRequest | RegisterRequest, row_count: int | None = None
) -> None:
    """Raise ``InvalidRegistration`` naming every problem of a nonsensical request;
    ``row_count``: the rows a register announces (a commit announces none)."""
    problems: list[str] = []
    if row_count is not None and not 0 <= row_count <= _MAX_ROW_COUNT:
        problems.append(f"row_count must be between 0 and {_MAX_ROW_COUNT}")
    if not request.schema:
        problems.append("schema must have at least one column")
    if any(not column.name or not column.type for column in request.schema):
        problems.append("every column needs a non-empty name and type")
    names = [column.name.lower() for column in request.schema]
    if len(set(names)) != len(names):
        problems.append("a column name appears twice (names are case-insensitive)")
    if len(set(request.objects)) != len(request.objects):
        problems.append("objects lists a key twice")
    problems.extend(object_key_problems(request.objects))
    if problems:
        raise InvalidRegistration("; ".join(problems), details={"problems": problems})


def object_key_problems(keys: list[str]) -> list[str]:
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


def check_commit(name: str, existing: Manifest, offered: list[Column], mode: CommitMode) -> None:
    """Raise what committing files of schema ``offered`` as ``name`` (as the request
    spells it) to the existing dataset in ``mode`` is refused with; the commit applies
    it, and a dry run without committing."""
    if mode == CommitMode.CREATE:
        raise DatasetExists(
            f"dataset {name!r} exists; use mode=append or mode=replace", details={"name": name}
        )
    if mode == CommitMode.AUTO and existing.schema != offered:
        raise schema_conflict(
            existing, offered, "ingest with mode=append or mode=replace to change it"
        )
    replace = mode in (CommitMode.AUTO, CommitMode.REPLACE)
    conflict = evolution_conflict(existing, offered, drop_missing=replace)
    if conflict is not None:
        raise conflict


def evolution_conflict(
    existing: Manifest, offered: list[Column], *, drop_missing: bool
) -> SchemaConflict | None:
    """Why the dataset's schema cannot evolve to ``offered``: a column spelled another
    way, or (unless the rows are replaced) one that changes its type other than by
    struct fields added at the end (``retyped``)."""
    current = {c.name.lower(): c for c in existing.schema}
    respelled = [
        f"{c.name} is spelled {current[c.name.lower()].name} in the dataset"
        for c in offered
        if c.name.lower() in current and current[c.name.lower()].name != c.name
    ]
    if respelled:
        return schema_conflict(existing, offered, "; ".join(respelled))
    retyped = retyped_columns(existing, offered)
    if retyped and not drop_missing:
        changed = "; ".join(
            f"{c.name}: {current[c.name.lower()].type} -> {c.type}" for c in retyped
        )
        return schema_conflict(
            existing,
            offered,
            f"a column cannot change its type when rows are appended ({changed}); use mode=replace",
        )
    return None


def retyped_columns(existing: Manifest, offered: list[Column]) -> list[Column]:
    """The offered columns that change an existing column's type, other than a struct
    gaining fields (a schema evolution like a new column)."""
    current = {c.name.lower(): c.type for c in existing.schema}
    return [
        c
        for c in offered
        if c.name.lower() in current
        and current[c.name.lower()] != c.type
        and struct_growth(current[c.name.lower()], c.type) is None
    ]


def schema_conflict(existing: Manifest, offered: list[Column], reason: str) -> SchemaConflict:
    """The 409 for columns that cannot be combined with a dataset's: ``details`` hold
    both schemas, each with its fingerprint."""

    def describe(columns: list[Column]) -> dict[str, object]:
        return {
            "schema_fingerprint": schema_fingerprint(columns),
            "schema": [{"name": c.name, "type": c.type} for c in columns],
        }

    return SchemaConflict(
        f"dataset {existing.name!r} exists with another schema: {reason}",
        details={
            "name": existing.name,
            "dataset_id": existing.dataset_id,
            "existing": describe(existing.schema),
            "offered": describe(offered),
        },
    )


def described_columns(manifest: Manifest, history: list[DatasetVersion]) -> list[DescribedColumn]:
    """The current columns of a dataset, each with how ingest typed it when it last
    wrote it with that type (``history`` oldest first, as ``Catalog.history`` gives it)."""
    typed: dict[str, ColumnTyping] = {}
    for version in history:  # oldest first: the latest typing wins
        typed |= {column.name.lower(): column for column in version.typing}
    columns = []
    for column in manifest.schema:
        typing = typed.get(column.name.lower())
        recorded = typing is not None and typing.type == column.type
        columns.append(
            DescribedColumn(
                name=column.name,
                type=column.type,
                source=typing.source if recorded and typing else None,
                reason=typing.reason if recorded and typing else None,
            )
        )
    return columns
