"""The side-by-side benchmark's own logic: reading wrk's report, checking that the
targets agree before timing them, and the median-of-rounds table."""

from __future__ import annotations

import pytest

from bench.harness import parse_wrk
from bench.peers import (
    BARE,
    OURS,
    ROAPI,
    Measurement,
    disagreements,
    markdown_table,
    summarize,
)

# wrk 4.1.0's report with --latency, as printed.
WRK_REPORT = """\
Running 1s test @ http://127.0.0.1:18090/
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.08ms    3.76ms  28.57ms   92.55%
    Req/Sec   840.10    362.80     1.60k    80.00%
  Latency Distribution
     50%  {p50}
     75%    2.53ms
     90%    4.63ms
     99%   22.33ms
  843 requests in 1.01s, 418.21KB read
Requests/sec:    835.37
Transfer/sec:    414.42KB
"""


@pytest.mark.parametrize(
    ("p50", "seconds"), [("399.00us", 399e-6), ("1.25ms", 1.25e-3), ("1.50s", 1.5)]
)
def test_wrk_report_gives_requests_per_second_and_the_median_in_seconds(
    p50: str, seconds: float
) -> None:
    result = parse_wrk(WRK_REPORT.format(p50=p50))
    assert result.requests_per_second == 835.37
    assert result.p50_seconds == pytest.approx(seconds)


def test_wrk_report_without_latency_distribution_has_no_median() -> None:
    report = "\n".join(
        line
        for line in WRK_REPORT.format(p50="1ms").splitlines()
        if "%" not in line or "Stdev" in line
    )
    assert parse_wrk(report).p50_seconds is None


@pytest.mark.parametrize(
    "trouble",
    ["  Non-2xx or 3xx responses: 918", "  Socket errors: connect 0, read 3, write 0, timeout 0"],
)
def test_a_run_with_errors_is_not_a_result(trouble: str) -> None:
    report = WRK_REPORT.format(p50="1ms").replace("Requests/sec", f"{trouble}\nRequests/sec")
    with pytest.raises(RuntimeError, match="wrk saw errors"):
        parse_wrk(report)


def test_same_values_under_each_engines_column_names_agree_in_any_order() -> None:
    answers = {
        OURS: [{"role": "Picker", "count_star()": 3}, {"role": "Welder", "count_star()": 5}],
        ROAPI: [{"role": "Welder", "count(*)": 5}, {"role": "Picker", "count(*)": 3}],
    }
    assert disagreements("group-by", answers) == []


def test_different_values_or_row_counts_disagree() -> None:
    ours = [{"role": "Picker", "n": 3}, {"role": "Welder", "n": 5}]
    assert disagreements("q", {OURS: ours, ROAPI: [{"role": "Picker", "n": 3}]}) == [
        "q: ROAPI gave 1 rows, ours 2"
    ]
    assert disagreements(
        "q",
        {OURS: ours, ROAPI: ours, BARE: [{"role": "Picker", "n": 3}, {"role": "Welder", "n": 4}]},
    ) == [f"q: {BARE}'s rows differ from ours's"]


def test_large_results_are_compared_by_row_count_and_columns() -> None:
    ours = [{"id": i, "zip": "01234"} for i in range(1000)]
    other_rows = [{"id": i + 5000, "zip": "06001"} for i in range(1000)]
    assert disagreements("1,000 rows", {OURS: ours, ROAPI: other_rows}) == []
    renamed = [{"id": i, "postcode": "01234"} for i in range(1000)]
    assert disagreements("1,000 rows", {OURS: ours, ROAPI: renamed}) == [
        "1,000 rows: ROAPI has columns ['id', 'postcode'], ours ['id', 'zip']"
    ]
    # ROAPI writes no key for a null value: a column null in its first rows is still there.
    sparse = [{"id": i} if i < 10 else {"id": i, "zip": "01234"} for i in range(1000)]
    assert disagreements("1,000 rows", {OURS: ours, ROAPI: sparse}) == []


def test_a_peer_that_leaves_nulls_out_of_its_rows_agrees() -> None:
    ours = [{"id": i, "zip": "01234", "notes": None} for i in range(1000)]
    roapi = [{"id": i, "zip": "01234"} for i in range(1000)]
    assert disagreements("1,000 rows", {OURS: ours, ROAPI: roapi}) == []


def test_table_holds_the_median_of_the_rounds_and_ours_over_roapi() -> None:
    latency = Measurement("`count(*)`", "SELECT count(*) FROM t", 1)
    throughput = Measurement("`count(*)` at 8 clients", "SELECT count(*) FROM t", 8)
    samples = {
        (latency.label, OURS): [0.0030, 0.0010, 0.0020],
        (latency.label, ROAPI): [0.0040, 0.0045, 0.0041],
        (throughput.label, OURS): [900.0, 1000.0, 100.0],
        (throughput.label, ROAPI): [1300.0, 1250.0, 1200.0],
    }
    rows = summarize(samples, [latency, throughput], [OURS, ROAPI])
    assert rows[0].medians == {OURS: 0.0020, ROAPI: 0.0041}
    assert rows[1].medians == {OURS: 900.0, ROAPI: 1250.0}
    # Lower latency is ahead; lower throughput is behind.
    assert [row.ours_ahead() for row in rows] == [True, False]
    assert markdown_table(rows, [OURS, ROAPI]).splitlines() == [
        "| query | ours | ROAPI | ours/ROAPI |",
        "|---|---|---|---|",
        "| `count(*)` | 2.00 ms | 4.10 ms | 0.49 (ahead) |",
        "| `count(*)` at 8 clients | 900 req/s | 1,250 req/s | 0.72 (behind) |",
    ]
