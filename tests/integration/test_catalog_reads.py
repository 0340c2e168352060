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
    # Every commit wrote a metadata JSON, a manifest list and manifests: each in one PUT ...
    one_put = "metadata files are not written in one plain PUT each"
    assert sum(path.endswith(".metadata.json") for path in written) == APPENDS, one_put
    assert sum("/snap-" in path for path in written) == APPENDS, one_put
    assert set(written.values()) == {1}, written
    # ... not a multipart upload (create, part, complete: three requests for a few KB).
    assert not [url for m, url in metadata if "uploads" in url.query or "uploadId" in url.query]
    # No HEAD before a file is written (its name is fresh), and none after it only to learn
    # the size of what was written: a HEAD of a manifest or manifest list starts a read of
    # it (then a GET; two reads may interleave) or pyarrow's delete (then a DELETE). The
    # metadata JSON's HEAD is also the check before each commit that it still exists.
    by_path: dict[str, list[str]] = {}
    for method, url in metadata:
        by_path.setdefault(url.path, []).append(method)
    headed_before_written = [p for p, methods in by_path.items() if "HEAD" in methods[:1]]
    assert headed_before_written == []
    size_only = {
        path: methods
        for path, methods in by_path.items()
        if not path.endswith(".metadata.json")
        and methods.count("HEAD") > methods.count("GET") + methods.count("DELETE")
    }
    assert size_only == {}
