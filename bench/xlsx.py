"""xlsx benchmark (not a test): the ingest converter vs DuckDB's read_xlsx, same file, same run.

    .venv/bin/python bench/xlsx.py [--rows 50000] [--runs 3]

Writes bench/out/shifts_<rows>.xlsx with xlsxwriter if missing (8 columns: integers,
text, a leading-zero text code, numbers, dates, timestamps, booleans; strings shared as
Excel stores them), then, each in a fresh process, converts it to Parquet with
``lakehouse.ingest.xlsx_convert.convert_xlsx`` and with DuckDB's
``COPY (FROM read_xlsx(...)) TO ... (FORMAT parquet)`` (the ``duckdb-extension-excel``
wheel of the bench extra, loaded by path; one thread, as the converter has one). Prints
the median seconds, rows/s, MB/s of the xlsx file and the peak RSS growth of each. The
runs alternate, so machine load hits both alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

OUT = REPO / "bench" / "out"
MB = 1_000_000


def generate(rows: int, path: Path) -> Path:
    import xlsxwriter

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet("shifts")
    day = workbook.add_format({"num_format": "yyyy-mm-dd"})
    stamp = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    sheet.write_row(0, 0, ["id", "name", "code", "rate", "hired", "seen", "active", "note"])
    start = dt.datetime(2020, 1, 1)
    for i in range(1, rows + 1):
        sheet.write_number(i, 0, i)
        sheet.write_string(i, 1, f"Worker {i % 997}")
        sheet.write_string(i, 2, f"{i % 100_000:05d}")
        sheet.write_number(i, 3, 10 + (i % 400) / 8)
        sheet.write_datetime(i, 4, start + dt.timedelta(days=i % 3000), day)
        sheet.write_datetime(i, 5, start + dt.timedelta(seconds=i * 37), stamp)
        sheet.write_boolean(i, 6, i % 3 == 0)
        sheet.write_string(i, 7, f"note {i}")
    workbook.close()
    return path


def one(reader: str, source: Path, target: Path) -> None:
    """Child process: convert once, print seconds and peak RSS growth (over the RSS
    after imports, which for the converter includes all of lakehouse) as JSON."""
    if reader == "converter":
        from lakehouse.ingest.convert import ConvertOptions
        from lakehouse.ingest.formats import ConvertRequest
        from lakehouse.ingest.xlsx_convert import convert_xlsx

        before, started = rss(), time.perf_counter()
        rows = convert_xlsx(source, target, ConvertRequest(options=ConvertOptions())).rows
    else:
        import duckdb
        import duckdb_extension_excel

        extension = (
            Path(duckdb_extension_excel.__file__).parent
            / "extensions"
            / f"v{duckdb.__version__}"
            / "excel.duckdb_extension"
        )
        con = duckdb.connect(config={"autoinstall_known_extensions": False, "threads": 1})
        con.execute(f"LOAD '{extension}'")
        before, started = rss(), time.perf_counter()
        con.execute(f"COPY (FROM read_xlsx('{source}')) TO '{target}' (FORMAT parquet)")
        counted = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()
        rows = counted[0] if counted else 0
    seconds = time.perf_counter() - started
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_rss_growth": growth}))


def rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def measure(reader: str, source: Path, workdir: Path) -> dict[str, float] | None:
    result = subprocess.run(
        [sys.executable, __file__, "--one", reader, str(source), str(workdir / f"{reader}.pq")],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        print(f"{reader}: failed: {result.stderr.strip().splitlines()[-1:]}")
        return None
    return dict(json.loads(result.stdout))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--one", nargs=3, metavar=("READER", "SOURCE", "TARGET"))
    args = parser.parse_args()
    if args.one:
        one(args.one[0], Path(args.one[1]), Path(args.one[2]))
        return
    source = generate(args.rows, OUT / f"shifts_{args.rows}.xlsx")
    size = source.stat().st_size
    print(f"{source.name}: {args.rows} rows, {size / MB:.1f} MB")
    results: dict[str, list[dict[str, float]]] = {"converter": [], "duckdb": []}
    with tempfile.TemporaryDirectory() as workdir:
        for _ in range(args.runs):
            for reader, runs in results.items():
                if (measured := measure(reader, source, Path(workdir))) is not None:
                    runs.append(measured)
    for reader, runs in results.items():
        if not runs:
            continue
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = max(r["peak_rss_growth"] for r in runs)
        print(
            f"{reader:>9}: {seconds:6.2f} s  {args.rows / seconds:9,.0f} rows/s  "
            f"{size / MB / seconds:5.2f} MB/s  peak RSS growth {peak / 2**20:4.0f} MiB"
        )


if __name__ == "__main__":
    main()
