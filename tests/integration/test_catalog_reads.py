"""What appends cost in storage requests (ADR 0014, "Commit cost"): a table's metadata
files, manifest lists and manifests never change once written, so a replica whose view of
the table is current does not read them again on every commit; and each of them is
written in one request, without asking first whether it exists. Counted on the S3
requests the catalog sends, through the fault proxy in front of moto."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from lakehouse.catalog import CommitMode
from lakehouse.config import Settings
from tests.support.backends import iceberg_catalog_opener
from tests.support.catalog import ROWS, commit_file
from tests.support.fault_proxy import FaultProxy
from tests.support.servers import MotoServer
from tests.support.settings import make_settings
from tests.support.storage import new_store

APPENDS = 12


async def _append(settings: Settings) -> None:
    """``APPENDS`` commits to one table, through ``settings``' endpoint."""
    store = new_store(settings)
    await store.start()
    catalog = iceberg_catalog_opener(settings)(store)
    await catalog.load()
    try:
        for i in range(APPENDS):
            mode = CommitMode.APPEND if i else CommitMode.CREATE
            await commit_file(catalog, store, "events", mode, start=i * ROWS)
        manifest = await catalog.get("events")
    finally:
        await catalog.close()
        await store.close()
    assert (manifest.version, manifest.row_count) == (APPENDS, APPENDS * ROWS)


def _through(fault_proxy: FaultProxy, moto: MotoServer, tmp_path: Path) -> Settings:
    settings = make_settings("s3", tmp_path, moto)
    settings.storage.s3.endpoint_url = fault_proxy.endpoint_url
    return settings


async def test_appends_do_not_read_the_tables_files_again_on_every_commit(
    moto: MotoServer, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    await _append(_through(fault_proxy, moto, tmp_path))

    gets = Counter(urlsplit(target).path for method, target in fault_proxy.seen if method == "GET")
    metadata = {path: n for path, n in gets.items() if "/events/metadata/" in path}
    # The metadata JSON this catalog committed is in hand: it reads none of them.
    assert not [path for path in metadata if path.endswith(".metadata.json")]
    # A manifest list or manifest is read a fixed few times (once by the catalog; by
    # pyiceberg when the next append lists the parent's manifests, or a merge reads the
    # ones it merges), not again on every commit for as long as it stays current.
    assert metadata
    assert max(metadata.values()) <= 3, sorted(metadata.values())


async def test_each_metadata_file_is_written_in_one_request_without_asking_first(
    moto: MotoServer, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    await _append(_through(fault_proxy, moto, tmp_path))

    requests = [(method, urlsplit(target)) for method, target in fault_proxy.seen]
    metadata = [(m, url) for m, url in requests if "/events/metadata/" in url.path]
    written = Counter(url.path for m, url in metadata if m == "PUT" and not url.query)
    # Every commit wrote a metadata JSON, a manifest list and manifests: each one PUT ...
    assert sum(path.endswith(".metadata.json") for path in written) == APPENDS
    assert sum("/snap-" in path for path in written) == APPENDS
    assert set(written.values()) == {1}, written
    # ... not a multipart upload (create, part, complete: three requests for a few KB).
    assert not [url for m, url in metadata if "uploads" in url.query or "uploadId" in url.query]
    # No HEAD before a file is written (its name is fresh), and none after it just to learn
    # the size of what was written: every HEAD of a file is the start of a read of it.
    heads = Counter(url.path for m, url in metadata if m == "HEAD")
    gets = Counter(url.path for m, url in metadata if m == "GET")
    commit_checks = {p for p in heads if p.endswith(".metadata.json")}  # before each commit
    assert {p: n for p, n in heads.items() if p not in commit_checks and n > gets[p]} == {}
    first_write = {}
    for index, (m, url) in enumerate(metadata):
        if m == "PUT":
            first_write.setdefault(url.path, index)
    early = [
        url.path
        for i, (m, url) in enumerate(metadata)
        if m == "HEAD" and i < first_write.get(url.path, -1)
    ]
    assert early == []
