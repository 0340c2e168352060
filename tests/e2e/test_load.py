"""A short run of bench/load.py: 8 clients mixing ingests and queries."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.load import print_report, run_load
from lakehouse.config import Settings
from tests.support.servers import LakehouseServer

MiB = 1024 * 1024


@pytest.mark.slow
async def test_mixed_load_loses_nothing(local_settings: Settings, tmp_path: Path) -> None:
    local_settings.logging.level = "warning"
    server = LakehouseServer(local_settings, tmp_path).start()
    try:
        report = await run_load(server, clients=8, seconds=12)
    finally:
        assert server.stop() == 0, server.logs()[-3000:]
    print_report(report, 12)
    assert report.requests > 50
    assert report.ingested, "no ingest succeeded"
    assert report.unexpected == []  # only 200s and documented 503s
    assert report.lost == []  # every 200 ingest is queryable with its row count
    assert report.rss_end - report.rss_start < 200 * MiB
