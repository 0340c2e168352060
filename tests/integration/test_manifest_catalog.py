"""ManifestCatalog beyond the Catalog contract, on both backends: what it does
with manifest files it cannot trust (unreadable, misplaced, pointing outside
datasets/). The contract itself: tests/contracts/test_catalog.py."""

from __future__ import annotations

import logging

import pytest

from lakehouse.catalog import (
    ManifestCatalog,
)
from lakehouse.layout import MANIFEST_PREFIX, manifest_key
from lakehouse.storage import ObjectStore
from tests.support.catalog import put_objects, register_request

# -- manifest files at load -------------------------------------------------------


async def test_load_skips_unreadable_and_misplaced_manifests(
    store: ObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    catalog = ManifestCatalog(store)
    await catalog.load()
    await catalog.register(register_request("good", await put_objects(store, "datasets/g.parquet")))
    good_bytes = await store.get(manifest_key("good"))
    await store.put(f"{MANIFEST_PREFIX}copy.parquet", good_bytes)  # claims to be "good"
    await store.put(f"{MANIFEST_PREFIX}empty.parquet", b"")
    await store.put(f"{MANIFEST_PREFIX}notes.txt", b"left by a human")

    with caplog.at_level(logging.WARNING, logger="lakehouse.catalog"):
        reloaded = ManifestCatalog(store)
        await reloaded.load()
    assert [m.name for m in await reloaded.list()] == ["good"]
    logged_keys = {getattr(r, "key", None) for r in caplog.records}
    assert {
        f"{MANIFEST_PREFIX}copy.parquet",
        f"{MANIFEST_PREFIX}empty.parquet",
        f"{MANIFEST_PREFIX}notes.txt",
    } <= logged_keys


async def test_manifest_pointing_outside_datasets_is_skipped_and_its_name_remembered(
    store: ObjectStore,
) -> None:
    """A manifest whose objects are not under datasets/ (the only place queries may
    read) is unreadable: skipped at load, and reported so the sweep spares its data."""
    import msgspec

    from lakehouse.catalog._codec import encode_manifest

    catalog = ManifestCatalog(store)
    await catalog.load()
    registration = await catalog.register(
        register_request("evil", await put_objects(store, "datasets/evil/1.parquet"))
    )
    tampered = msgspec.structs.replace(
        registration.manifest, objects=["a/../../etc/passwd", "_catalog/x.parquet"]
    )
    await store.put(manifest_key("evil"), encode_manifest(tampered))
    reloaded = ManifestCatalog(store)
    await reloaded.load()
    assert await reloaded.list() == []
    assert (await reloaded.unreadable()) == ["evil"]
    # Registering the name again replaces the bad file: no longer unreadable.
    await reloaded.register(register_request("evil", ["datasets/evil/1.parquet"]))
    assert (await reloaded.unreadable()) == []
