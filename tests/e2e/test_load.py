"""A short run of bench/load.py: 8 clients mixing ingests and queries, on each backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.load import print_report, run_load
from lakehouse.config import Settings
from tests.support.servers import LakehouseServer

MiB = 1024 * 1024

# The same code serves both backends; S3 adds the object store's round trips, so a
# shorter run there still mixes a few hundred requests.
SECONDS = {"local": 12, "s3": 6}


@pytest.mark.slow
async def test_mixed_load_loses_nothing(settings: Settings, tmp_path: Path) -> None:
    settings.logging.level = "warning"
    seconds = SECONDS[settings.storage.backend]
    server = LakehouseServer(settings, tmp_path).start()
    try:
        report = await run_load(server, clients=8, seconds=seconds)
    finally:
        assert server.stop() == 0, server.logs()[-3000:]
    print_report(report, seconds)
    assert report.requests > 50
    assert report.ingested, "no ingest succeeded"
    assert report.unexpected == []  # only 200s and documented 503s
    assert report.lost == []  # every 200 ingest is queryable with its row count
    assert report.rss_end - report.rss_start < 200 * MiB
