"""Many small appends against a real server, then the checks of issue 12's "Small
appends": the row count is exact, the history is kept, compaction left few files,
and count(*) and a group-by answer within 2x of the same rows ingested as one file.

Shared by tests/e2e/test_small_appends.py (a shorter run) and
bench/small_appends.py (the full 1,000 appends).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from lakehouse.config import Settings

ROWS_PER_APPEND = 10
GROUPS = 7
SMALL = "small_appends"
ONE_FILE = "one_file"
QUERIES = {
    "count": "SELECT count(*) AS n FROM {table}",
    "group_by": (
        "SELECT grp, count(*) AS n, sum(val) AS total, max(label) AS top "
        "FROM {table} GROUP BY grp ORDER BY grp"
    ),
}


def configure(settings: Settings, *, timed: bool) -> Settings:
    """Keep commit latency bounded over many appends: expire all but the last few
    versions at once, and merge files once 32 of them pile up. ``timed``: the queries
    will be timed, so they read the tables' files, not the in-memory copies or the
    answers of earlier runs (both off)."""
    settings.logging.level = "warning"
    settings.catalog.keep_versions = 10
    settings.catalog.keep_days = 0
    settings.catalog.compact_after_files = 16
    if timed:
        settings.query.hot_dataset_bytes = 0
        settings.query.result_cache_bytes = 0
    return settings


def rows_csv(first: int, count: int) -> bytes:
    """Rows ``first .. first+count-1``: an id, a group, a double and some text."""
    lines = ["id,grp,val,label"]
    lines += [f"{i},g{i % GROUPS},{i * 0.25},row {i:06d}" for i in range(first, first + count)]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Timings:
    medians: dict[str, dict[str, float]] = field(default_factory=dict)
    """query -> dataset -> median seconds."""
    fastest: dict[str, dict[str, float]] = field(default_factory=dict)
    """query -> dataset -> fastest seconds (printed beside the medians)."""
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """query -> dataset -> the JSON answer."""

    def ratio(self, query: str) -> float:
        return self.medians[query][SMALL] / self.medians[query][ONE_FILE]


@dataclass
class Report:
    appends: int
    data_dir: Path | None = None
    """The local data directory, when the caller knows it."""
    append_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    """The version each append's response carried, in order."""
    row_counts: list[int] = field(default_factory=list)
    """The row count each append's response carried, in order."""
    dataset: dict[str, Any] = field(default_factory=dict)
    """GET /v1/datasets/{name} once compaction settled."""
    history: list[dict[str, Any]] = field(default_factory=list)
    count: int = -1
    oldest_retained_count: int = -1
    left: Timings | None = None
    """The queries on the table as the appends and automatic compaction left it."""
    compacted: Timings | None = None
    """The same after ``POST /admin/compact`` (None: not asked for)."""
    compacted_files: list[str] = field(default_factory=list)
    """The data files after ``POST /admin/compact``."""

    def summary(self) -> str:
        lines = [
            f"{self.appends} appends of {ROWS_PER_APPEND} rows: {self.append_seconds:.1f} s "
            f"(median {statistics.median(self.latencies) * 1000:.0f} ms, "
            f"p95 {_p95(self.latencies) * 1000:.0f} ms, last 100 median "
            f"{statistics.median(self.latencies[-100:]) * 1000:.0f} ms)",
            f"version {self.dataset.get('version')}, {len(self.dataset.get('files', []))} "
            f"data file(s), {len(self.history)} version(s) retained",
        ]
        for state, timings in [("as left", self.left), ("compacted", self.compacted)]:
            if timings is None:
                continue
            for query, medians in timings.medians.items():
                fastest = timings.fastest[query]
                lines.append(
                    f"{query} ({state}): {medians[SMALL] * 1000:.2f} ms vs "
                    f"{medians[ONE_FILE] * 1000:.2f} ms one file (x{timings.ratio(query):.2f}); "
                    f"fastest {fastest[SMALL] * 1000:.2f} vs {fastest[ONE_FILE] * 1000:.2f} ms"
                )
        return "\n".join(lines)


def _p95(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.95)] if values else 0.0


def _ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _ingest(http: httpx.Client, name: str, mode: str, body: bytes) -> dict[str, Any]:
    response = http.post(
        "/v1/ingest",
        params={"name": name, "mode": mode},
        content=body,
        headers={"content-type": "text/csv"},
    )
    return dict(_ok(response))


def _sql(http: httpx.Client, query: str) -> Any:
    return _ok(http.post("/v1/sql", json={"sql": query}))


def measure(http: httpx.Client, repetitions: int) -> Timings:
    """The answers of each query on both datasets, and (``repetitions`` > 0) their median
    and fastest times (alternating, so drift hits both)."""
    result = Timings()
    for query, template in QUERIES.items():
        times: dict[str, list[float]] = {SMALL: [], ONE_FILE: []}
        result.answers[query] = {}
        for table in (SMALL, ONE_FILE):  # warm up; keep the answers
            result.answers[query][table] = _sql(http, template.format(table=table))
        if not repetitions:
            continue  # the answers only
        for _ in range(repetitions):
            for table in (SMALL, ONE_FILE):
                before = time.perf_counter()
                _sql(http, template.format(table=table))
                times[table].append(time.perf_counter() - before)
        result.medians[query] = {table: statistics.median(t) for table, t in times.items()}
        result.fastest[query] = {table: min(t) for table, t in times.items()}
    return result


def run(
    url: str,
    appends: int,
    *,
    compact: bool = True,
    repetitions: int = 21,
    settle_seconds: float = 60,
) -> Report:
    """Append ``appends`` times (sequentially), ingest the same rows as one file, then
    ask (and with ``repetitions`` time) the queries on the table as left, and
    (``compact``) again after ``POST /admin/compact``; ``compact_after_files`` must
    match ``configure``."""
    report = Report(appends=appends)
    with httpx.Client(base_url=url, timeout=120) as http:
        started = time.perf_counter()
        for i in range(appends):
            before = time.perf_counter()
            body = rows_csv(i * ROWS_PER_APPEND, ROWS_PER_APPEND)
            answer = _ingest(http, SMALL, "create" if i == 0 else "append", body)
            report.latencies.append(time.perf_counter() - before)
            report.versions.append(answer["version"])
            report.row_counts.append(answer["row_count"])
        report.append_seconds = time.perf_counter() - started

        total = appends * ROWS_PER_APPEND
        _ingest(http, ONE_FILE, "create", rows_csv(0, total))

        # A compaction the last appends started runs in the background: let it land.
        deadline = time.monotonic() + settle_seconds
        while True:
            report.dataset = dict(_ok(http.get(f"/v1/datasets/{SMALL}")))
            if len(report.dataset["files"]) < 32 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        report.history = list(_ok(http.get(f"/v1/datasets/{SMALL}/history"))["versions"])
        report.count = _sql(http, f"SELECT count(*) AS n FROM {SMALL}")[0]["n"]
        oldest = report.history[0]["version"]
        travelled = _sql(http, f"SELECT count(*) AS n FROM {SMALL} AT (VERSION => {oldest})")
        report.oldest_retained_count = travelled[0]["n"]

        report.left = measure(http, repetitions)
        if compact:
            merged = _ok(http.post("/admin/compact", params={"name": SMALL}))
            assert [m["name"] for m in merged] == [SMALL], merged
            report.compacted_files = _ok(http.get(f"/v1/datasets/{SMALL}"))["files"]
            report.compacted = measure(http, repetitions)
    return report


def check_rows_and_history(report: Report) -> None:
    """Every append landed exactly once and the history is kept."""
    appends = report.appends
    total = appends * ROWS_PER_APPEND
    # Each response's row count, and the count at the end.
    assert report.row_counts == [ROWS_PER_APPEND * (i + 1) for i in range(appends)]
    assert report.count == total
    assert report.dataset["rows"] == total
    # Versions only increase (a compaction takes one too); the latest is >= N.
    assert all(b > a for a, b in zip(report.versions, report.versions[1:], strict=False))
    assert report.versions[-1] >= appends
    versions = [v["version"] for v in report.history]
    assert versions == sorted(set(versions))
    assert versions[-1] == report.dataset["version"] >= appends
    assert len(versions) >= 10  # keep_versions: the last ten stay for time travel
    assert report.history[-1]["total_rows"] == total
    assert report.oldest_retained_count == report.history[0]["total_rows"]


def check_compaction(report: Report) -> None:
    """Automatic compaction ran and left few files; ``POST /admin/compact`` leaves one;
    the answers never change."""
    # Versions are gap-free sequence numbers: the ones no append took are compactions.
    assert report.dataset["version"] - report.appends >= (1 if report.appends >= 32 else 0)
    assert len(report.dataset["files"]) < 32, len(report.dataset["files"])
    assert len(report.compacted_files) == 1, report.compacted_files
    for timings in (report.left, report.compacted):
        assert timings is not None
        for query in QUERIES:
            assert timings.answers[query][SMALL] == timings.answers[query][ONE_FILE], query


def check_within_2x(report: Report, timings: Timings | None) -> None:
    """count(*) and the group-by within 2x of one file (medians of the same run)."""
    assert timings is not None
    for query in QUERIES:
        assert timings.ratio(query) <= 2.0, report.summary()
