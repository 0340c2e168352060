"""The Catalog contract: what every implementation does, whatever stores its tables.

Written once against the protocol (lakehouse/catalog/interface.py) and run over
every implementation by the ``catalog_backend`` fixture (tests/contracts/conftest.py):
IcebergCatalog over the local store and over S3 on the real moto server. The data
objects are real Parquet files (tests/support/catalog.py), as the catalog checks.
G0 manifest conversion: tests/integration/test_g0_migration.py; the HTTP routes:
tests/integration/test_catalog.py and tests/integration/test_datasets_api.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from collections.abc import Iterator

import msgspec
import pytest

from lakehouse.catalog import (
    Catalog,
    Column,
    ColumnTyping,
    CommitMode,
    DatasetExists,
    DatasetNotFound,
    DatasetVersion,
    InvalidDatasetName,
    InvalidRegistration,
    MissingObjects,
    RegisterRequest,
    SchemaConflict,
    SourceFile,
    VersionNotFound,
    schema_fingerprint,
)
from lakehouse.layout import data_key, dataset_prefix
from lakehouse.storage import ObjectStore
from tests.support.backends import CatalogBackend
from tests.support.catalog import (
    COLUMNS,
    OTHER_COLUMNS,
    ROWS,
    commit_file,
    commit_request,
    parquet_bytes,
    put_objects,
    read_rows,
    register_request,
    schema_json,
)

EXTRA = Column("extra", "DOUBLE")
APPEND, CREATE, REPLACE = CommitMode.APPEND, CommitMode.CREATE, CommitMode.REPLACE


async def keys_under(store: ObjectStore, prefix: str) -> list[str]:
    return [info.key for info in await store.list(prefix)]


# -- register (G0's POST /catalog/register: mode auto, row count checked) ---------------


async def test_register_creates_a_dataset_at_version_1(catalog_backend: CatalogBackend) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    assert isinstance(catalog, Catalog)
    objects = await put_objects(store, "datasets/workers/a.parquet", "datasets/workers/b.parquet")
    registration = await catalog.register(register_request("Workers", objects, rows=2 * ROWS))
    assert registration.created is True
    assert registration.replaced_objects == []
    manifest = registration.manifest
    assert manifest.name == "Workers"
    assert manifest.schema == COLUMNS
    assert manifest.schema_fingerprint == schema_fingerprint(COLUMNS)
    assert sorted(manifest.objects) == objects  # the keys as given: no copy
    assert manifest.row_count == 2 * ROWS
    assert manifest.bytes == sum([(await store.head(key)).size for key in objects])
    assert manifest.version == 1
    assert manifest.snapshot_id is not None
    assert manifest.dataset_id
    assert manifest.created_at.tzinfo is not None
    assert manifest.created_at <= manifest.updated_at
    assert await catalog.get("Workers") == manifest
    assert await catalog.list() == [manifest]


async def test_register_again_with_the_same_schema_replaces_the_objects(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    old = await put_objects(store, *(f"datasets/w/{i}.parquet" for i in range(3)))
    [new] = await put_objects(store, "datasets/w/new.parquet", rows=5)
    first = (await catalog.register(register_request("w", old))).manifest

    again = await catalog.register(register_request("W", [old[1], new], rows=ROWS + 5))
    assert again.created is False
    assert old[0] in again.replaced_objects
    assert old[2] in again.replaced_objects
    manifest = again.manifest
    assert manifest.dataset_id == first.dataset_id
    assert manifest.name == "w"  # the name as first registered
    assert sorted(manifest.objects) == sorted([old[1], new])
    assert manifest.row_count == ROWS + 5
    assert manifest.version == 2
    assert manifest.created_at == first.created_at
    assert manifest.updated_at > first.updated_at
    assert await catalog.get("w") == manifest
    assert await catalog.list() == [manifest]
    # The same objects once more: still an update, a new version.
    same = await catalog.register(register_request("w", [old[1], new], rows=ROWS + 5))
    assert same.created is False
    assert same.manifest.version == 3
    assert same.manifest.updated_at > manifest.updated_at


async def test_replaced_objects_are_only_the_keys_the_new_version_drops(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    old = await put_objects(store, *(f"datasets/w/{i}.parquet" for i in range(3)))
    [new] = await put_objects(store, "datasets/w/new.parquet")
    await catalog.register(register_request("w", old))
    again = await catalog.register(register_request("w", [old[1], new]))
    # A caller that deletes replaced objects must not delete old[1]: it is still live.
    assert sorted(again.replaced_objects) == [old[0], old[2]]
    same = await catalog.register(register_request("w", [old[1], new]))
    assert same.replaced_objects == []


async def test_another_schema_is_a_schema_conflict_showing_both(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    objects = await put_objects(store, "datasets/s/1.parquet")
    others = await put_objects(store, "datasets/s/other.parquet", columns=OTHER_COLUMNS)
    existing = (await catalog.register(register_request("s", objects))).manifest
    version = await catalog.version()
    metadata = await keys_under(store, dataset_prefix("s") + "metadata/")
    with pytest.raises(SchemaConflict) as caught:
        await catalog.register(register_request("S", others, OTHER_COLUMNS))
    details = caught.value.details
    assert caught.value.status_code == 409
    assert details["existing"] == {
        "schema_fingerprint": schema_fingerprint(COLUMNS),
        "schema": schema_json(COLUMNS),
    }
    assert details["offered"] == {
        "schema_fingerprint": schema_fingerprint(OTHER_COLUMNS),
        "schema": schema_json(OTHER_COLUMNS),
    }
    # The conflict changed nothing, here, in storage or after a restart.
    assert await catalog.get("s") == existing
    assert (await catalog.version()) == version
    assert await keys_under(store, dataset_prefix("s") + "metadata/") == metadata
    assert await (await catalog_backend.reopen()).get("s") == existing


async def test_missing_objects_are_refused_naming_them(catalog_backend: CatalogBackend) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    [present] = await put_objects(store, "datasets/m/here.parquet")
    absent = ["datasets/m/gone-1.parquet", "datasets/m/gone-2.parquet"]
    with pytest.raises(MissingObjects) as caught:
        await catalog.register(register_request("m", [absent[0], present, absent[1]]))
    assert sorted(caught.value.details["missing"]) == absent
    assert await catalog.list() == []
    with pytest.raises(DatasetNotFound):
        await catalog.get("m")


@pytest.mark.parametrize(
    "name",
    ["", "1abc", "a-b", "a b", "a.b", "../etc", "a" * 129, "café", "a\n", "über", "x;drop"],
)
async def test_invalid_dataset_names_are_refused(
    catalog_backend: CatalogBackend, name: str
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    objects = await put_objects(store, "datasets/n/1.parquet")
    with pytest.raises(InvalidDatasetName) as caught:
        await catalog.register(register_request(name, objects))
    assert caught.value.details["name"] == name
    for call in (
        catalog.commit(commit_request(name, objects, APPEND)),
        catalog.get(name),
        catalog.history(name),
        catalog.as_of(name, version=1),
        catalog.rollback(name, 1),
        catalog.compact(name),
        catalog.delete(name),
    ):
        with pytest.raises(InvalidDatasetName):
            await call
    assert await catalog.list() == []


async def test_names_at_the_limits_are_accepted(catalog_backend: CatalogBackend) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    objects = await put_objects(store, "datasets/n/1.parquet")
    for name in ("_", "A_1", "a" * 128, "z9"):
        assert (await catalog.register(register_request(name, objects))).created, name
    assert [m.name for m in await catalog.list()] == ["_", "A_1", "a" * 128, "z9"]


@pytest.mark.parametrize(
    ("columns", "objects", "rows"),
    [
        (COLUMNS, ["datasets/r/1.parquet"], -1),
        ([], ["datasets/r/1.parquet"], 1),
        ([Column("", "BIGINT")], ["datasets/r/1.parquet"], 1),
        ([Column("a", "")], ["datasets/r/1.parquet"], 1),
        ([Column("a", "BIGINT"), Column("A", "BIGINT")], ["datasets/r/1.parquet"], 1),
        ([Column("a", "HUGEINT")], ["datasets/r/1.parquet"], 1),
        (COLUMNS, ["datasets/r/1.parquet", "datasets/r/1.parquet"], 1),
        (COLUMNS, ["datasets/../escape"], 1),
        (COLUMNS, ["datasets//r"], 1),
    ],
    ids=["negative-rows", "no-columns", "unnamed-column", "untyped-column", "column-twice",
         "unsupported-type", "object-twice", "dot-dot-key", "empty-segment"],
)  # fmt: skip
async def test_nonsensical_registrations_are_invalid_registration(
    catalog_backend: CatalogBackend, columns: list[Column], objects: list[str], rows: int
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    await put_objects(store, "datasets/r/1.parquet")
    with pytest.raises(InvalidRegistration) as caught:
        await catalog.register(
            RegisterRequest(name="r", schema=columns, objects=objects, row_count=rows)
        )
    assert caught.value.status_code == 400
    if rows >= 0:  # a commit has no row count: every other problem applies to it too
        with pytest.raises(InvalidRegistration):
            await catalog.commit(commit_request("r", objects, CREATE, columns))
    assert await catalog.list() == []


@pytest.mark.parametrize("key", ["elsewhere/1.parquet", "_catalog/manifests/x.parquet"])
async def test_objects_outside_datasets_are_refused(
    catalog_backend: CatalogBackend, key: str
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    await store.put(key, parquet_bytes())
    with pytest.raises(InvalidRegistration, match="not under 'datasets/'"):
        await catalog.register(register_request("x", [key]))
    with pytest.raises(InvalidRegistration, match="not under 'datasets/'"):
        await catalog.commit(commit_request("x", [key], CREATE))
    assert await catalog.list() == []


BAD_FILES = {
    "garbage": b"this is not parquet",
    "empty": b"",
    "csv": b"id,zip\n1,00001\n",
    "truncated": parquet_bytes()[:-12],
    "other-names": parquet_bytes([Column("id", "BIGINT"), Column("city", "VARCHAR")]),
    "other-types": parquet_bytes(OTHER_COLUMNS),
    "reordered": parquet_bytes(list(reversed(COLUMNS))),
    "extra-column": parquet_bytes([*COLUMNS, EXTRA]),
    "missing-column": parquet_bytes(COLUMNS[:1]),
}


@pytest.mark.parametrize("bad", list(BAD_FILES))
async def test_a_file_that_is_not_parquet_with_the_requested_columns_is_refused(
    catalog_backend: CatalogBackend, bad: str
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    existing = (await commit_file(catalog, store, "f")).manifest
    version = await catalog.version()
    [good] = await put_objects(store, "datasets/f/good.parquet")
    await store.put("datasets/f/bad.parquet", BAD_FILES[bad])
    for request in (
        register_request("f", [good, "datasets/f/bad.parquet"]),
        register_request("fresh", ["datasets/f/bad.parquet"]),
    ):
        with pytest.raises(InvalidRegistration) as caught:
            await catalog.register(request)
        assert any("datasets/f/bad.parquet" in p for p in caught.value.details["problems"])
    for mode in (APPEND, REPLACE):
        with pytest.raises(InvalidRegistration):
            await catalog.commit(commit_request("f", ["datasets/f/bad.parquet", good], mode))
    # One bad file, and none of the request's files were committed.
    assert await catalog.get("f") == existing
    assert [m.name for m in await catalog.list()] == ["f"]
    assert (await catalog.version()) == version


async def test_register_row_count_must_match_the_files(catalog_backend: CatalogBackend) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    objects = await put_objects(store, "datasets/c/1.parquet", "datasets/c/2.parquet", rows=4)
    for wrong in (0, 7, 9, 800):
        with pytest.raises(InvalidRegistration, match="row_count") as caught:
            await catalog.register(register_request("c", objects, rows=wrong))
        assert caught.value.status_code == 400
    assert await catalog.list() == []
    registration = await catalog.register(register_request("c", objects, rows=8))
    assert registration.manifest.row_count == 8


async def test_a_dataset_without_objects_can_be_registered(
    catalog_backend: CatalogBackend,
) -> None:
    """An empty dataset (a header-only CSV) has columns and no objects."""
    registration = await catalog_backend.catalog.register(register_request("e", [], rows=0))
    assert (registration.created, registration.manifest.objects) == (True, [])
    manifest = await catalog_backend.catalog.get("E")
    assert (manifest.row_count, manifest.schema, manifest.version) == (0, COLUMNS, 1)


async def test_concurrent_registers_of_one_name_are_serialized(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    # Half offer one schema, half another; exactly one creates the dataset.
    columns = [COLUMNS, [Column("other", "DOUBLE")]]
    objects = [
        (await put_objects(store, f"datasets/race/{i}.parquet", columns=columns[i % 2]))[0]
        for i in range(10)
    ]
    results = await asyncio.gather(
        *(
            catalog.register(register_request("race", [key], columns[i % 2]))
            for i, key in enumerate(objects)
        ),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException) and r.created]
    assert len(created) == 1
    winner = created[0].manifest
    # Exactly the five offering the other schema than the winner's are conflicts.
    conflicts = [i for i, r in enumerate(results) if isinstance(r, SchemaConflict)]
    assert conflicts == [i for i in range(10) if columns[i % 2] != winner.schema]
    assert len(conflicts) == 5
    for result in results:
        if not isinstance(result, SchemaConflict):
            assert not isinstance(result, BaseException), result
            assert result.manifest.dataset_id == winner.dataset_id
    landed = [r for r in results if not isinstance(r, BaseException)]
    assert sorted(r.manifest.version for r in landed) == list(range(1, len(landed) + 1))
    stored = await catalog_backend.reopen()
    assert await stored.list() == await catalog.list()


# -- commit modes ----------------------------------------------------------------------


async def test_versions_are_1_2_3_per_dataset(catalog_backend: CatalogBackend) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    seen: dict[str, list[int]] = {"a": [], "b": []}
    for name, mode in [("a", CREATE), ("b", CREATE), ("a", APPEND), ("a", REPLACE), ("b", APPEND)]:
        registration = await commit_file(catalog, store, name, mode)
        seen[name].append(registration.manifest.version)
    assert seen == {"a": [1, 2, 3], "b": [1, 2]}
    assert [(m.name, m.version) for m in await catalog.list()] == [("a", 3), ("b", 2)]
    assert [v.version for v in await catalog.history("a")] == [1, 2, 3]
    assert len({v.snapshot_id for v in await catalog.history("a")}) == 3


async def test_create_of_an_existing_name_is_dataset_exists(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    first = await commit_file(catalog, store, "Sales", CREATE)
    assert (first.created, first.manifest.version) == (True, 1)
    version = await catalog.version()
    for spelling in ("Sales", "sales", "SALES"):
        with pytest.raises(DatasetExists) as caught:
            await commit_file(catalog, store, spelling, CREATE)
        assert caught.value.status_code == 409
        assert caught.value.details["name"] == spelling
    # Even with another schema it is "exists", not a schema conflict.
    with pytest.raises(DatasetExists):
        await commit_file(catalog, store, "sales", CREATE, OTHER_COLUMNS)
    assert await catalog.get("sales") == first.manifest
    assert len(await catalog.history("sales")) == 1
    assert (await catalog.version()) == version


async def test_append_adds_rows_and_a_new_column_evolves_the_schema(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    v1 = (await commit_file(catalog, store, "w", CREATE)).manifest
    appended = await commit_file(catalog, store, "W", APPEND, rows=4, start=100)
    v2 = appended.manifest
    assert (appended.created, appended.replaced_objects) == (False, [])
    assert (v2.version, v2.row_count, v2.schema) == (2, ROWS + 4, COLUMNS)
    assert v2.dataset_id == v1.dataset_id
    assert set(v1.objects) < set(v2.objects)
    assert len(v2.objects) == 2

    widened = await commit_file(catalog, store, "w", APPEND, [*COLUMNS, EXTRA], start=200)
    v3 = widened.manifest
    assert v3.version == 3
    assert v3.schema == [*COLUMNS, EXTRA]  # the new column comes last
    assert v3.schema_fingerprint == schema_fingerprint([*COLUMNS, EXTRA])
    assert v3.row_count == ROWS + 4 + ROWS
    assert set(v2.objects) < set(v3.objects)
    assert len(v3.objects) == 3
    # The older versions keep their own schema.
    assert (await catalog.as_of("w", version=2)).schema == COLUMNS
    # Every row ever appended is in one of the current files, untouched.
    ids = sorted(row["id"] for row in await read_rows(store, v3.objects))
    assert ids == [0, 1, 2, 100, 101, 102, 103, 200, 201, 202]
    # A file without the new column can still be appended (it reads NULL there).
    later = await commit_file(catalog, store, "w", APPEND, start=300)
    assert later.manifest.schema == [*COLUMNS, EXTRA]
    assert later.manifest.row_count == v3.row_count + ROWS


async def test_append_with_a_changed_column_type_is_a_schema_conflict_writing_nothing(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    await commit_file(catalog, store, "w", CREATE)
    before = (await commit_file(catalog, store, "w", APPEND, [*COLUMNS, EXTRA])).manifest
    history = await catalog.history("w")
    version = await catalog.version()
    metadata = await keys_under(store, dataset_prefix("w") + "metadata/")
    offered = [Column("id", "VARCHAR"), Column("zip", "VARCHAR"), Column("more", "BIGINT")]
    with pytest.raises(SchemaConflict) as caught:
        await commit_file(catalog, store, "w", APPEND, offered)
    error = caught.value
    assert error.status_code == 409
    assert "id" in error.message
    assert error.details["existing"] == {
        "schema_fingerprint": before.schema_fingerprint,
        "schema": schema_json(before.schema),
    }
    assert error.details["offered"] == {
        "schema_fingerprint": schema_fingerprint(offered),
        "schema": schema_json(offered),
    }
    # Nothing written: no new column "more", no version, no metadata file.
    assert await catalog.get("w") == before
    assert await catalog.history("w") == history
    assert (await catalog.version()) == version
    assert await keys_under(store, dataset_prefix("w") + "metadata/") == metadata
    assert await (await catalog_backend.reopen()).get("w") == before


async def test_replace_makes_the_files_the_whole_dataset_and_keeps_the_history(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    await commit_file(catalog, store, "w", CREATE, [*COLUMNS, EXTRA])
    v2 = (await commit_file(catalog, store, "w", APPEND, [*COLUMNS, EXTRA], start=10)).manifest
    narrower = [Column("id", "BIGINT"), Column("note", "VARCHAR")]
    replaced = await commit_file(catalog, store, "w", REPLACE, narrower, rows=5, start=50)
    v3 = replaced.manifest
    assert replaced.created is False
    assert sorted(replaced.replaced_objects) == sorted(v2.objects)
    assert v3.version == 3
    assert v3.dataset_id == v2.dataset_id
    assert v3.schema == narrower  # zip and extra are gone, note is new
    assert v3.row_count == 5
    assert len(v3.objects) == 1
    assert not set(v3.objects) & set(v2.objects)
    assert [row["id"] for row in await read_rows(store, v3.objects)] == [50, 51, 52, 53, 54]
    # The history is kept, with the old rows and columns reachable.
    assert [v.version for v in await catalog.history("w")] == [1, 2, 3]
    old = await catalog.as_of("w", version=2)
    assert (old.schema, sorted(old.objects)) == ([*COLUMNS, EXTRA], sorted(v2.objects))


async def test_replace_may_change_a_column_type(catalog_backend: CatalogBackend) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    await commit_file(catalog, store, "w", CREATE)
    replaced = await commit_file(catalog, store, "w", REPLACE, OTHER_COLUMNS)
    assert replaced.manifest.schema == OTHER_COLUMNS
    assert (await catalog.as_of("w", version=1)).schema == COLUMNS


async def test_concurrent_appends_all_land_with_distinct_versions(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    await commit_file(catalog, store, "c", CREATE)
    keys = [(await put_objects(store, data_key("c"), start=10 * i))[0] for i in range(1, 9)]
    results = await asyncio.gather(
        *(catalog.commit(commit_request("c", [key], APPEND)) for key in keys)
    )
    assert sorted(r.manifest.version for r in results) == list(range(2, 10))
    current = await catalog.get("c")
    assert current.version == 9
    assert current.row_count == 9 * ROWS
    assert set(keys) < set(current.objects)
    history = await catalog.history("c")
    assert [v.total_rows for v in history] == [ROWS * n for n in range(1, 10)]


async def test_concurrent_appends_from_two_replicas_all_land(
    catalog_backend: CatalogBackend,
) -> None:
    """Two catalogs over one store and catalog database (two replicas): commits race in
    the database, and the loser retries against the winner's version."""
    first, store = catalog_backend.catalog, catalog_backend.store
    second = await catalog_backend.reopen()
    await commit_file(first, store, "c", CREATE)
    keys = [(await put_objects(store, data_key("c"), start=10 * i))[0] for i in range(1, 13)]
    replicas = [first, second]
    results = await asyncio.gather(
        *(replicas[i % 2].commit(commit_request("c", [key], APPEND)) for i, key in enumerate(keys))
    )
    assert sorted(r.manifest.version for r in results) == list(range(2, 14))
    fresh = await catalog_backend.reopen()
    current = await fresh.get("c")
    assert current.row_count == 13 * ROWS
    assert set(keys) < set(current.objects)
    assert [v.version for v in await fresh.history("c")] == list(range(1, 14))
    ids = sorted(row["id"] for row in await read_rows(store, current.objects))
    assert ids == sorted(10 * i + j for i in range(13) for j in range(ROWS))


# -- history and time travel -----------------------------------------------------------


async def test_history_records_every_version(catalog_backend: CatalogBackend) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    typing = [
        ColumnTyping("id", "BIGINT"),
        ColumnTyping("zip", "VARCHAR", "inferred", "leading zeros"),
    ]
    sha = "ab" * 32
    [key] = await put_objects(store, data_key("h"))
    await catalog.commit(
        commit_request("h", [key], CREATE, source=SourceFile("first.csv", sha), typing=typing)
    )
    await commit_file(catalog, store, "h", APPEND, rows=4, source=SourceFile("more.csv", "cd" * 32))
    await commit_file(catalog, store, "h", REPLACE, rows=2)

    history = await catalog.history("H")
    assert all(isinstance(v, DatasetVersion) for v in history)
    assert [v.version for v in history] == [1, 2, 3]
    assert [v.operation for v in history] == ["append", "append", "overwrite"]
    assert [(v.rows_added, v.rows_removed, v.total_rows) for v in history] == [
        (ROWS, 0, ROWS),
        (4, 0, ROWS + 4),
        (2, ROWS + 4, 2),
    ]
    assert [(v.source_file, v.source_sha256) for v in history] == [
        ("first.csv", sha),
        ("more.csv", "cd" * 32),
        (None, None),
    ]
    assert history[0].typing == typing
    assert history[1].typing == []
    assert all(v.rollback_of is None for v in history)
    assert len({v.snapshot_id for v in history}) == 3
    times = [v.committed_at for v in history]
    assert all(t.tzinfo is not None for t in times)
    assert times == sorted(times)
    assert times[-1] == (await catalog.get("h")).updated_at
    assert history[-1].snapshot_id == (await catalog.get("h")).snapshot_id
    # A restart reads the same history.
    assert await (await catalog_backend.reopen()).history("h") == history


async def test_as_of_a_version_gives_that_version(catalog_backend: CatalogBackend) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    v1 = (await commit_file(catalog, store, "t", CREATE)).manifest
    v2 = (await commit_file(catalog, store, "t", APPEND, [*COLUMNS, EXTRA])).manifest
    v3 = (await commit_file(catalog, store, "t", REPLACE, [Column("id", "BIGINT")])).manifest
    for manifest in (v1, v2, v3):
        version = await catalog.as_of("T", version=manifest.version)
        assert version.name == "t"
        assert version.version == manifest.version
        assert version.snapshot_id == manifest.snapshot_id
        assert version.schema == manifest.schema
        assert sorted(version.objects) == sorted(manifest.objects)
    current = await catalog.as_of("t")
    assert (current.version, current.snapshot_id) == (3, v3.snapshot_id)


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone at UTC+14, so a naive time read as local time
    would be 14 hours off."""
    monkeypatch.setenv("TZ", "XXX-14")
    time.tzset()
    assert time.timezone == -14 * 3600
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("far_from_utc")
async def test_as_of_a_time_gives_the_version_current_then(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    for mode in (CREATE, APPEND, APPEND):
        await commit_file(catalog, store, "t", mode)
        await asyncio.sleep(0.02)  # commits at distinct milliseconds
    history = await catalog.history("t")
    first, second, third = (v.committed_at for v in history)
    between = first + (second - first) / 2
    assert first < between < second
    cases = {
        between: 1,
        between.replace(tzinfo=None): 1,  # naive: UTC
        between.astimezone(dt.timezone(dt.timedelta(hours=-7))): 1,
        second: 2,
        third: 3,
        third + dt.timedelta(days=365): 3,
    }
    for when, expected in cases.items():
        version = await catalog.as_of("t", timestamp=when)
        assert version.version == expected, when
        assert version.snapshot_id == history[expected - 1].snapshot_id


async def test_unknown_version_or_a_time_before_the_first_is_version_not_found(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    for mode in (CREATE, APPEND, APPEND):
        await commit_file(catalog, store, "t", mode)
    history = await catalog.history("t")
    expected = {
        "name": "t",
        "first_version": 1,
        "last_version": 3,
        "first_committed_at": history[0].committed_at.isoformat(),
        "last_committed_at": history[-1].committed_at.isoformat(),
    }
    before_first = history[0].committed_at - dt.timedelta(seconds=1)
    for call in (
        catalog.as_of("t", version=4),
        catalog.as_of("t", version=0),
        catalog.as_of("t", version=-1),
        catalog.as_of("t", timestamp=before_first),
        catalog.as_of("t", timestamp=before_first.replace(tzinfo=None)),
        catalog.rollback("t", 99),
    ):
        with pytest.raises(VersionNotFound) as caught:
            await call
        assert caught.value.status_code == 404
        assert caught.value.details == expected
    assert (await catalog.get("t")).version == 3


# -- rollback ----------------------------------------------------------------------------


async def test_rollback_is_a_new_version_equal_to_the_old_one(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    await commit_file(catalog, store, "r", CREATE)
    await commit_file(catalog, store, "r", APPEND, [*COLUMNS, EXTRA], start=10)
    v3 = (await commit_file(catalog, store, "r", REPLACE, [Column("id", "BIGINT")])).manifest
    version = await catalog.version()

    back = await catalog.rollback("R", 1)
    restored = back.manifest
    one = await catalog.as_of("r", version=1)
    assert back.created is False
    assert restored.version == 4
    assert restored.schema == one.schema == COLUMNS
    assert sorted(restored.objects) == sorted(one.objects)
    assert restored.row_count == ROWS
    assert restored.dataset_id == v3.dataset_id
    assert sorted(back.replaced_objects) == sorted(v3.objects)
    assert (await catalog.version()) != version

    # Rolling back to version 2 brings back its column "extra" and its rows.
    again = (await catalog.rollback("r", 2)).manifest
    two = await catalog.as_of("r", version=2)
    assert again.version == 5
    assert again.schema == two.schema == [*COLUMNS, EXTRA]
    assert sorted(again.objects) == sorted(two.objects)
    assert again.row_count == 2 * ROWS

    history = await catalog.history("r")
    assert [v.version for v in history] == [1, 2, 3, 4, 5]
    assert [v.rollback_of for v in history] == [None, None, None, 1, 2]
    assert history[3].total_rows == ROWS
    assert history[4].total_rows == 2 * ROWS
    # The versions rolled back over are still there.
    assert (await catalog.as_of("r", version=3)).schema == [Column("id", "BIGINT")]
    assert await (await catalog_backend.reopen()).get("r") == again


# -- compaction --------------------------------------------------------------------------


async def test_compact_merges_the_files_into_one_new_version(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    await commit_file(catalog, store, "k", CREATE)
    await commit_file(catalog, store, "k", APPEND, [*COLUMNS, EXTRA], rows=4, start=10)
    before = (await commit_file(catalog, store, "k", APPEND, start=20)).manifest
    rows_before = await read_rows(store, before.objects)

    compacted = await catalog.compact("K")
    assert compacted is not None
    after = compacted.manifest
    assert after.version == 4
    assert after.row_count == before.row_count == 2 * ROWS + 4
    assert after.schema == before.schema
    assert len(after.objects) == 1
    assert after.objects[0].startswith(dataset_prefix("k"))
    assert sorted(compacted.replaced_objects) == sorted(before.objects)
    merged = await read_rows(store, after.objects)
    assert len(merged) == len(rows_before)
    assert sorted(row["id"] for row in merged) == sorted(row["id"] for row in rows_before)
    assert {row["id"]: row["extra"] for row in merged if row["extra"] is not None} == {
        i: i + 0.5 for i in range(10, 14)
    }
    history = await catalog.history("k")
    assert [v.version for v in history] == [1, 2, 3, 4]
    assert (history[-1].rows_added, history[-1].rows_removed) == (2 * ROWS + 4,) * 2
    assert history[-1].total_rows == 2 * ROWS + 4
    assert sorted((await catalog.as_of("k", version=3)).objects) == sorted(before.objects)
    # One file left: nothing to merge, no new version.
    version = await catalog.version()
    assert await catalog.compact("k") is None
    assert (await catalog.get("k")).version == 4
    assert (await catalog.version()) == version


async def test_compact_of_a_single_file_or_an_empty_dataset_is_none(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    one = (await commit_file(catalog, store, "one", CREATE)).manifest
    empty = (await catalog.register(register_request("empty", [], rows=0))).manifest
    assert await catalog.compact("one") is None
    assert await catalog.compact("empty") is None
    assert await catalog.get("one") == one
    assert await catalog.get("empty") == empty


# -- what the orphan sweep must keep -----------------------------------------------------


async def test_referenced_keys_cover_every_retained_version_and_its_metadata(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    await commit_file(catalog, store, "w", CREATE)
    await commit_file(catalog, store, "w", APPEND)
    await commit_file(catalog, store, "w", REPLACE)
    await commit_file(catalog, store, "gone", CREATE)
    await commit_file(catalog, store, "gone", APPEND)
    await catalog.delete("gone")
    [orphan] = await put_objects(store, data_key("w"))  # written, never committed

    referenced = await catalog.referenced_keys()
    for version in await catalog.history("w"):
        assert set((await catalog.as_of("w", version=version.version)).objects) <= referenced
    on_disk = set(await keys_under(store, dataset_prefix("w")))
    assert referenced == on_disk - {orphan}
    assert any(k.endswith(".metadata.json") for k in referenced)
    assert not [k for k in referenced if k.startswith(dataset_prefix("gone"))]


async def test_expiry_drops_versions_past_the_policy_and_keeps_the_current_rows(
    catalog_backend: CatalogBackend,
) -> None:
    settings = catalog_backend.settings
    short = msgspec.structs.replace(
        settings, catalog=msgspec.structs.replace(settings.catalog, keep_versions=2, keep_days=0)
    )
    catalog, store = await catalog_backend.reopen(short), catalog_backend.store
    v1 = (await commit_file(catalog, store, "x", CREATE)).manifest
    await commit_file(catalog, store, "x", REPLACE, start=10)
    await commit_file(catalog, store, "x", APPEND, start=20)
    v4 = (await commit_file(catalog, store, "x", APPEND, start=30)).manifest

    history = await catalog.history("x")
    assert [v.version for v in history] == [3, 4]
    for gone in (1, 2):
        with pytest.raises(VersionNotFound) as caught:
            await catalog.as_of("x", version=gone)
        assert (caught.value.details["first_version"], caught.value.details["last_version"]) == (
            3,
            4,
        )
    with pytest.raises(VersionNotFound):
        await catalog.as_of("x", timestamp=v1.updated_at)
    with pytest.raises(VersionNotFound):
        await catalog.rollback("x", 1)
    current = await catalog.get("x")
    assert current == v4
    assert current.row_count == 3 * ROWS
    ids = sorted(row["id"] for row in await read_rows(store, current.objects))
    assert ids == [10, 11, 12, 20, 21, 22, 30, 31, 32]
    # Version 1's file is referenced by no retained version: the sweep may take it.
    referenced = await catalog.referenced_keys()
    assert not set(v1.objects) & referenced
    assert set(current.objects) <= referenced
    # Another replica (default policy) sees the same retained history.
    assert [v.version for v in await (await catalog_backend.reopen()).history("x")] == [3, 4]


# -- reads -------------------------------------------------------------------------------


async def test_get_is_case_insensitive_and_list_is_sorted_by_name(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    objects = await put_objects(store, "datasets/x/1.parquet")
    for name in ("Sales", "b", "A_1", "_"):
        await catalog.register(register_request(name, objects))
    for spelling in ("SALES", "sales", "sAlEs", "Sales"):
        assert (await catalog.get(spelling)).name == "Sales"
        assert [v.version for v in await catalog.history(spelling)] == [1]
    assert [m.name for m in await catalog.list()] == ["_", "A_1", "b", "Sales"]


async def test_unknown_names_are_dataset_not_found(catalog_backend: CatalogBackend) -> None:
    catalog = catalog_backend.catalog
    with pytest.raises(DatasetNotFound) as caught:
        await catalog.get("nobody")
    assert caught.value.status_code == 404
    for call in (
        catalog.history("nobody"),
        catalog.as_of("nobody", version=1),
        catalog.rollback("nobody", 1),
        catalog.compact("nobody"),
        catalog.delete("nobody"),
    ):
        with pytest.raises(DatasetNotFound):
            await call
    assert await catalog.list() == []


# -- delete ------------------------------------------------------------------------------


async def test_delete_removes_the_dataset_and_its_history_but_not_the_data(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    objects = await put_objects(store, "datasets/d/1.parquet")
    kept = (await catalog.register(register_request("keep", objects))).manifest
    await catalog.register(register_request("Gone", objects))
    gone = (await commit_file(catalog, store, "gone", APPEND)).manifest

    assert await catalog.delete("GONE") == gone
    for call in (catalog.get("gone"), catalog.history("gone"), catalog.delete("gone")):
        with pytest.raises(DatasetNotFound):
            await call
    assert await catalog.list() == [kept]
    # The data objects are left for the orphan sweep.
    assert set(gone.objects) <= set(await keys_under(store, "datasets/"))
    # The name is free again: a new dataset, history from version 1.
    others = await put_objects(store, "datasets/d/other.parquet", columns=OTHER_COLUMNS)
    again = await catalog.register(register_request("gone", others, OTHER_COLUMNS))
    assert again.created is True
    assert again.manifest.dataset_id != gone.dataset_id
    assert again.manifest.version == 1
    assert [v.version for v in await catalog.history("gone")] == [1]


# -- version -----------------------------------------------------------------------------


async def test_version_changes_on_every_commit_and_delete_and_only_then(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    objects = await put_objects(store, "datasets/v/1.parquet")
    others = await put_objects(store, "datasets/v/other.parquet", columns=OTHER_COLUMNS)
    await store.put("datasets/v/bad.parquet", b"not parquet")
    seen = [(await catalog.version())]

    async def unchanged_by_reads_and_refusals() -> None:
        before = await catalog.version()
        await catalog.list()
        await catalog.get("v")
        await catalog.history("v")
        await catalog.as_of("v", version=1)
        await catalog.referenced_keys()
        refusals = [
            (catalog.get("nope"), DatasetNotFound),
            (catalog.delete("nope"), DatasetNotFound),
            (catalog.register(register_request("v", others, OTHER_COLUMNS)), SchemaConflict),
            (catalog.commit(commit_request("v", others, APPEND, OTHER_COLUMNS)), SchemaConflict),
            (catalog.commit(commit_request("v", objects, CREATE)), DatasetExists),
            (catalog.register(register_request("1v", objects)), InvalidDatasetName),
            (catalog.register(register_request("v", ["datasets/v/no.parquet"])), MissingObjects),
            (catalog.register(register_request("v", objects, rows=-1)), InvalidRegistration),
            (catalog.register(register_request("v", objects, rows=99)), InvalidRegistration),
            (catalog.commit(commit_request("v", ["datasets/v/bad.parquet"])), InvalidRegistration),
            (catalog.as_of("v", version=99), VersionNotFound),
            (catalog.rollback("v", 99), VersionNotFound),
        ]
        for call, error in refusals:
            with pytest.raises(error):
                await call
        assert await catalog.compact("v") is None
        assert (await catalog.version()) == before

    await catalog.register(register_request("v", objects))  # create
    seen.append(await catalog.version())
    await unchanged_by_reads_and_refusals()
    await catalog.register(register_request("v", objects))  # update, same objects
    seen.append(await catalog.version())
    await unchanged_by_reads_and_refusals()
    await catalog.commit(commit_request("v", objects, APPEND))
    seen.append(await catalog.version())
    await catalog.commit(commit_request("v", objects, REPLACE))
    seen.append(await catalog.version())
    await catalog.rollback("v", 1)
    seen.append(await catalog.version())
    await catalog.register(register_request("other", objects))  # another dataset
    seen.append(await catalog.version())
    await catalog.delete("other")
    seen.append(await catalog.version())
    # Each commit and delete gave a version unlike the one before it (after the delete
    # the content is what it was before "other", and so may its version be).
    assert len(set(seen[:-1])) == len(seen) - 1, seen
    assert all(before != after for before, after in itertools.pairwise(seen)), seen


# -- load (a restart) --------------------------------------------------------------------


async def test_a_restart_sees_every_commit_and_delete(catalog_backend: CatalogBackend) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    objects = await put_objects(store, "datasets/a/1.parquet", "datasets/a/2.parquet")
    await catalog.register(register_request("Alpha", objects[:1]))
    await catalog.register(register_request("beta", objects[:1]))
    await catalog.register(register_request("ALPHA", objects[1:]))
    updated = (await catalog.commit(commit_request("alpha", objects[:1], APPEND))).manifest
    await catalog.delete("Beta")

    restarted = await catalog_backend.reopen()
    assert await restarted.list() == [updated]
    assert await restarted.get("alpha") == updated
    assert await restarted.history("alpha") == await catalog.history("alpha")
    with pytest.raises(DatasetNotFound):
        await restarted.get("beta")
    assert (await restarted.version()) == (await catalog.version())
    # The restarted instance carries on: same dataset, next version.
    again = await restarted.register(register_request("alpha", objects[:1]))
    assert again.manifest.dataset_id == updated.dataset_id
    assert again.manifest.version == 4
    assert objects[1] in again.replaced_objects


async def test_reload_gives_identical_manifests_and_version(
    catalog_backend: CatalogBackend,
) -> None:
    catalog, store = catalog_backend.catalog, catalog_backend.store
    timestamps = [Column("ü", "TIMESTAMP")]
    a = await put_objects(store, "datasets/a/1.parquet")
    b = await put_objects(store, "datasets/b/1.parquet", columns=timestamps, rows=0)
    await catalog.register(register_request("a", a))
    await catalog.register(register_request("B", b, timestamps, rows=0))

    reloaded = await catalog_backend.reopen()
    assert await reloaded.list() == await catalog.list()
    assert (await reloaded.version()) == (await catalog.version())
    assert (await reloaded.get("b")).schema == timestamps


async def test_load_of_empty_storage_is_an_empty_catalog(catalog_backend: CatalogBackend) -> None:
    fresh = await catalog_backend.reopen()
    assert isinstance(fresh, Catalog)
    assert await fresh.list() == []
    assert await fresh.unreadable() == []
    assert await fresh.referenced_keys() == set()
    assert (await fresh.version()) == (await catalog_backend.catalog.version())


async def test_another_replica_sees_a_commit(catalog_backend: CatalogBackend) -> None:
    """A commit made through one catalog shows on another over the same database
    (after its refresh), with a version that changed."""
    first, store = catalog_backend.catalog, catalog_backend.store
    second = await catalog_backend.reopen()
    version = await second.version()
    made = (await commit_file(first, store, "shared", CREATE)).manifest

    async def seen() -> bool:
        return [m.name for m in await second.list()] == ["shared"]

    for _ in range(200):
        if await seen():
            break
        await asyncio.sleep(0.02)
    assert await second.get("shared") == made
    assert (await second.version()) != version
    assert (await second.version()) == (await first.version())
