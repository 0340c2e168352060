"""Small appends (issue 12): many 10-row appends to one dataset through a real
`lakehouse serve` (keep_versions=10, keep_days=0, compact_after_files=32), then:
the row count is exact, the history kept, automatic compaction left few files,
and count(*) and a group-by answer within 2x of the same rows ingested as one
file (a ratio of two medians measured in the same run, not a timed threshold).

The issue's 1,000 appends take about 110 s here (~80-110 ms per 10-row commit),
so the suite runs 300 with the same assertions, once for the whole module;
``bench/small_appends.py`` runs the full 1,000.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.support import appends
from tests.support.servers import LakehouseServer
from tests.support.settings import make_settings

APPENDS = 300

pytestmark = pytest.mark.slow

ROW_GROUPS_BUG = (
    "bug: compaction (_merge_files in lakehouse/catalog/_iceberg.py) calls "
    "ParquetWriter.write_batch once per batch of the scan, i.e. once per merged file, "
    "and each call writes a row group: the merged file of N 10-row appends has N "
    "row groups of 10 rows (and a later compaction carries them over), so it reads "
    "no faster than the small files did"
)


@pytest.fixture(scope="module")
def small_appends(tmp_path_factory: pytest.TempPathFactory) -> appends.Report:
    tmp_path = tmp_path_factory.mktemp("small-appends")
    settings = appends.configure(make_settings("local", tmp_path, None))
    server = LakehouseServer(settings, tmp_path).start()
    try:
        report = appends.run(server.url, APPENDS, compact=True)
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


@pytest.mark.xfail(strict=True, reason=ROW_GROUPS_BUG)
def test_a_compacted_file_has_few_row_groups(small_appends: appends.Report) -> None:
    [key] = small_appends.compacted_files
    assert small_appends.data_dir is not None
    footer = pq.read_metadata(small_appends.data_dir / key)
    assert footer.num_rows == APPENDS * appends.ROWS_PER_APPEND
    assert footer.num_row_groups == 1  # 3,000 rows, far below ingest.row_group_rows


@pytest.mark.xfail(
    strict=True,
    reason=f"{ROW_GROUPS_BUG}; measured on 300 appends: group-by x6 after POST /admin/compact",
)
def test_queries_within_2x_of_one_file_after_compaction(small_appends: appends.Report) -> None:
    appends.check_within_2x(small_appends, small_appends.compacted)


@pytest.mark.xfail(
    strict=True,
    reason=(
        f"{ROW_GROUPS_BUG}; and between automatic compactions up to "
        "compact_after_files - 1 small files stay (21 here): measured count(*) x3, "
        "group-by x6 to x12 of one file"
    ),
)
def test_queries_within_2x_of_one_file_as_automatic_compaction_left_them(
    small_appends: appends.Report,
) -> None:
    appends.check_within_2x(small_appends, small_appends.left)
