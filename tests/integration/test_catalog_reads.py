"""What appends cost in storage reads (ADR 0014, "Commit cost"): a table's metadata files,
manifest lists and manifests never change once written, so a replica whose view of the
table is current does not read them again on every commit. Counted on the S3 requests
the catalog sends, through the fault proxy in front of moto."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from lakehouse.catalog import CommitMode
from tests.support.backends import iceberg_catalog_opener
from tests.support.catalog import ROWS, commit_file
from tests.support.fault_proxy import FaultProxy
from tests.support.servers import MotoServer
from tests.support.settings import make_settings
from tests.support.storage import new_store

APPENDS = 12


async def test_appends_do_not_read_the_tables_files_again_on_every_commit(
    moto: MotoServer, fault_proxy: FaultProxy, tmp_path: Path
) -> None:
    settings = make_settings("s3", tmp_path, moto)
    settings.storage.s3.endpoint_url = fault_proxy.endpoint_url
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

    gets = Counter(urlsplit(target).path for method, target in fault_proxy.seen if method == "GET")
    metadata = {path: n for path, n in gets.items() if "/events/metadata/" in path}
    # The metadata JSON this catalog committed is in hand: it reads none of them.
    assert not [path for path in metadata if path.endswith(".metadata.json")]
    # A manifest list or manifest is read a fixed few times (once by the catalog; by
    # pyiceberg when the next append lists the parent's manifests, or a merge reads the
    # ones it merges), not again on every commit for as long as it stays current.
    assert metadata
    assert max(metadata.values()) <= 3, sorted(metadata.values())
