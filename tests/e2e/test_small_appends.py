"""Small appends (issue 12): many 10-row appends to one dataset through a real
`lakehouse serve` (keep_versions=10, keep_days=0, compact_after_files=16), then:
the row count is exact, the history kept, automatic compaction left few files
(what keeps the queries fast), and the queries answer as on the same rows ingested
as one file.

The timing half of the promise, count(*) and a group-by within 2x of one file, is
checked by ``bench/small_appends.py`` (the full 1,000 appends), not here: it is a
ratio of milliseconds, and beside the rest of the suite on two cores it moved from
1.2x to 2.5x between runs of the same code (CI failed on a 2.54x whose other three
ratios were 0.90-1.33x). Timed checks belong in benchmarks (docs/L1_BENCHMARKS.md).

The suite runs 300 appends (about 15 s: ~45 ms per 10-row commit) once for the whole
module.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.support import appends
from tests.support.servers import LakehouseServer
from tests.support.settings import make_settings

APPENDS = 300

pytestmark = pytest.mark.slow(seconds=90)


@pytest.fixture(scope="module")
def small_appends(tmp_path_factory: pytest.TempPathFactory) -> appends.Report:
    tmp_path = tmp_path_factory.mktemp("small-appends")
    settings = appends.configure(make_settings("local", tmp_path, None), timed=False)
    server = LakehouseServer(settings, tmp_path).start()
    try:
        report = appends.run(server.url, APPENDS, compact=True, repetitions=0)
    finally:
        assert server.stop() == 0, server.logs()[-3000:]
    report.data_dir = Path(settings.storage.data_dir)
    print(report.summary())
    return report


def test_every_append_lands_exactly_once_and_history_is_kept(
    small_appends: appends.Report,
) -> None:
    appends.check_rows_and_history(small_appends)


def test_automatic_compaction_leaves_few_files(small_appends: appends.Report) -> None:
    appends.check_compaction(small_appends)


def test_a_compacted_file_has_few_row_groups(small_appends: appends.Report) -> None:
    [key] = small_appends.compacted_files
    assert small_appends.data_dir is not None
    footer = pq.read_metadata(small_appends.data_dir / key)
    assert footer.num_rows == APPENDS * appends.ROWS_PER_APPEND
    assert footer.num_row_groups == 1  # 3,000 rows, far below ingest.row_group_rows
