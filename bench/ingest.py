"""Ingest benchmark (not a test): HTTP ingest vs DuckDB's in-process COPY.

    .venv/bin/python bench/ingest.py [--runs 5] [--compression zstd|snappy] [--skip-2m]

Generates bench/out/workers_500k.csv (and workers_2m.csv) if missing, starts
the real server (local backend, temp data dir), times `curl -F file=@...`
(median of N) and, in the same run, DuckDB's
`COPY (FROM read_csv(...)) TO ... (FORMAT parquet)` statement; prints both,
the ratio, and the server's peak RSS growth (VmHWM - RSS at start) during
ingest of the 500k and the 2M file (a fresh server for each). Every ingest
includes its Iceberg commit. Then the latency of a 10-row append
(`?mode=append`, curl's own time_total, median and p95 of --appends). Last,
MB/s per upload format (csv, csv.gz, ndjson, json, parquet, arrow, xlsx: the
500k fixture written in each, cached in bench/out) against DuckDB reading the
same file (bench/formats.py; --skip-formats leaves it out).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import duckdb  # noqa: E402  # after the path tweak so `lakehouse` imports from the repo

from bench.formats import copy_seconds, curl_ingest  # noqa: E402
from bench.formats import report as report_formats  # noqa: E402
from lakehouse.config import Settings  # noqa: E402
from scripts.gen_workers import ensure_generated  # noqa: E402
from tests.support.servers import LakehouseServer  # noqa: E402

OUT = REPO / "bench" / "out"
MiB = 1024 * 1024


def fixture(rows: int, name: str) -> Path:
    return ensure_generated(rows, OUT / name)


def duckdb_copy(csv: Path, runs: int, workdir: Path) -> float:
    return copy_seconds(duckdb.connect(), f"read_csv('{csv}')", runs, workdir)


def polars_sink(csv: Path, runs: int, workdir: Path) -> float | None:
    """polars' streaming CSV -> Parquet, told what our inference finds on its own (zip and
    phone are text, dates parsed): left alone it types zip as int64 and loses the leading
    zeros. None when polars (the bench extra) is not installed."""
    try:
        import polars as pl  # optional: the bench extra
    except ImportError:
        return None
    times = []
    for i in range(runs):
        target = workdir / f"polars_{i}.parquet"
        started = time.perf_counter()
        pl.scan_csv(
            csv, schema_overrides={"zip": pl.Utf8, "phone": pl.Utf8}, try_parse_dates=True
        ).sink_parquet(target)
        times.append(time.perf_counter() - started)
        target.unlink()
    return statistics.median(times)


def append_latencies(url: str, csv: Path, count: int) -> list[float]:
    """Seconds per 10-row append to one dataset, as curl measured them."""
    times = []
    for _ in range(count):
        result = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
             "-H", "Content-Type: text/csv", "--data-binary", f"@{csv}",
             f"{url}/v1/ingest?name=small&mode=append"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        code, took = result.stdout.split()
        if code != "200":
            raise RuntimeError(f"append answered {code}: {result.stderr}")
        times.append(float(took))
    return times


def server_run(
    csv: Path, runs: int, compression: str | None, appends: int = 0
) -> tuple[float, int, list[float]]:
    """(median seconds, peak RSS growth in bytes, 10-row append latencies) on a
    fresh server."""
    with tempfile.TemporaryDirectory(prefix="lakehouse-bench-") as tmp:
        settings = Settings()
        settings.storage.data_dir = str(Path(tmp) / "data")
        settings.logging.level = "warning"
        if compression:
            settings.ingest.compression = compression  # type: ignore[assignment]
        server = LakehouseServer(settings, Path(tmp)).start()
        try:
            baseline = server.peak_rss_bytes()
            times = [curl_ingest(server.url, csv, "workers") for _ in range(runs)]
            growth = server.peak_rss_bytes() - baseline
            ten_rows = Path(tmp) / "ten_rows.csv"
            with csv.open() as source, ten_rows.open("w") as target:
                target.writelines(line for _, line in zip(range(11), source, strict=False))
            latencies = append_latencies(server.url, ten_rows, appends)
        finally:
            server.stop()
    return statistics.median(times), growth, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compression", choices=["zstd", "snappy", "gzip", "none"])
    parser.add_argument("--skip-2m", action="store_true")
    parser.add_argument("--appends", type=int, default=50, help="10-row appends to time")
    parser.add_argument("--skip-formats", action="store_true")
    parser.add_argument("--format-runs", type=int, default=3, help="runs per upload format")
    args = parser.parse_args()

    small = fixture(500_000, "workers_500k.csv")
    with tempfile.TemporaryDirectory(prefix="duck-bench-") as tmp:
        duck = duckdb_copy(small, args.runs, Path(tmp))
        polars = polars_sink(small, args.runs, Path(tmp))
    http, growth_500k, appends = server_run(small, args.runs, args.compression, args.appends)
    size = small.stat().st_size / MiB
    print(f"workers_500k.csv: {size:.1f} MiB, median of {args.runs}")
    print(f"  DuckDB COPY (in-process, statement): {duck:.3f} s")
    print(f"  HTTP ingest (curl -F):               {http:.3f} s")
    print(f"  ratio HTTP / DuckDB:                 {http / duck:.2f}x  (target <= 1.0x)")
    if polars is None:
        print("  polars: not installed (make bench-peers installs the bench extra)")
    else:
        print(f"  polars scan_csv -> sink_parquet:     {polars:.3f} s (zip/phone as text, dates)")
        print(f"  ratio HTTP / polars:                 {http / polars:.2f}x")
    print(f"  server peak RSS growth, 500k:        {growth_500k / MiB:.0f} MiB  (target <= 300)")
    if appends:
        p95 = statistics.quantiles(appends, n=20)[-1] if len(appends) > 1 else appends[0]
        print(f"  10-row append (?mode=append), {len(appends)}x: median "
              f"{statistics.median(appends) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")  # fmt: skip
    if not args.skip_2m:
        big = fixture(2_000_000, "workers_2m.csv")
        http_2m, growth_2m, _ = server_run(big, 1, args.compression)
        print(f"  HTTP ingest 2M rows ({big.stat().st_size / MiB:.0f} MiB): {http_2m:.3f} s")
        ratio = growth_2m / max(growth_500k, 1)
        print(f"  server peak RSS growth, 2M:          {growth_2m / MiB:.0f} MiB  "
              f"({ratio:.2f}x the 500k peak; target within 10%)")  # fmt: skip
    if not args.skip_formats:
        report_formats(small, args.format_runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
