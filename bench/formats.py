"""The per-format part of bench/ingest.py: the 500k fixture written in each upload format
by the real libraries (cached next to it), ingested over HTTP, and read by DuckDB in the
same run (``COPY (SELECT * FROM read_...) TO ... (FORMAT parquet)``), in MB/s of the file
as sent.

A format whose converter is not registered (``lakehouse.ingest.service.CONVERTERS``) is
"not available"; one whose writer or DuckDB reader is not installed is "n/a".
"""

from __future__ import annotations

import gzip
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from lakehouse.config import Settings
from lakehouse.ingest.formats import Format
from lakehouse.ingest.service import CONVERTERS
from tests.support.servers import LakehouseServer

MB = 1_000_000
# The fixture's text columns that look like numbers: typed as the ingest types them.
TEXT_COLUMNS = {"zip": pa.string(), "phone": pa.string()}


def _read_fixture(csv: Path) -> pa.Table:
    # The fixture quotes some values that hold line breaks.
    return pa_csv.read_csv(
        csv,
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(column_types=TEXT_COLUMNS),
    )


def _rows(table: pa.Table) -> Iterator[dict[str, object]]:
    for batch in table.to_batches(max_chunksize=10_000):
        yield from batch.to_pylist()


def write_gzip(csv: Path, target: Path) -> None:
    with csv.open("rb") as source, gzip.open(target, "wb", compresslevel=6) as sink:
        shutil.copyfileobj(source, sink, 1024 * 1024)


def write_ndjson(csv: Path, target: Path) -> None:
    encoder = msgspec.json.Encoder()
    with target.open("wb") as sink:
        for row in _rows(_read_fixture(csv)):
            sink.write(encoder.encode(row) + b"\n")


def write_json_array(csv: Path, target: Path) -> None:
    encoder = msgspec.json.Encoder()
    with target.open("wb") as sink:
        sink.write(b"[")
        for i, row in enumerate(_rows(_read_fixture(csv))):
            sink.write((b",\n" if i else b"") + encoder.encode(row))
        sink.write(b"]\n")


def write_parquet(csv: Path, target: Path) -> None:
    pq.write_table(_read_fixture(csv), target)


def write_arrow(csv: Path, target: Path) -> None:
    table = _read_fixture(csv)
    with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def write_xlsx(csv: Path, target: Path) -> None:
    import openpyxl  # the xlsx ingest's library; ImportError: n/a

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("workers")
    table = _read_fixture(csv)
    sheet.append(table.column_names)
    for row in _rows(table):
        sheet.append(list(row.values()))
    book.save(target)


def _arrow_source(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    with pa.memory_map(str(path)) as source:
        con.register("arrow_file", pa.ipc.open_file(source).read_all())
    return "arrow_file"


def _xlsx_source(con: duckdb.DuckDBPyConnection, path: Path) -> str:
    con.execute("LOAD excel")  # only where the excel extension is installed; else n/a
    return f"read_xlsx('{path}')"


class Spec(NamedTuple):
    suffix: str
    format: Format
    write: Callable[[Path, Path], None] | None
    """How to write the fixture in this format (None: the fixture itself)."""
    duckdb_source: Callable[[duckdb.DuckDBPyConnection, Path], str]
    """The DuckDB relation that reads the file."""


def _reads(template: str) -> Callable[[duckdb.DuckDBPyConnection, Path], str]:
    return lambda _, path: template.format(path=path)


FORMATS = {
    "csv": Spec(".csv", Format.CSV, None, _reads("read_csv('{path}')")),
    "csv.gz": Spec(".csv.gz", Format.CSV, write_gzip, _reads("read_csv('{path}')")),
    "ndjson": Spec(
        ".ndjson",
        Format.NDJSON,
        write_ndjson,
        _reads("read_json('{path}', format='newline_delimited')"),
    ),
    "json": Spec(
        ".json", Format.JSON, write_json_array, _reads("read_json('{path}', format='array')")
    ),
    "parquet": Spec(".parquet", Format.PARQUET, write_parquet, _reads("read_parquet('{path}')")),
    "arrow": Spec(".arrow", Format.ARROW, write_arrow, _arrow_source),
    "xlsx": Spec(".xlsx", Format.XLSX, write_xlsx, _xlsx_source),
}


def generate(csv: Path, name: str) -> Path | None:
    """The fixture as ``name``, written once and cached; None when its writer is missing."""
    spec = FORMATS[name]
    if spec.write is None:
        return csv
    target = csv.with_suffix(spec.suffix)
    if target.exists() and target.stat().st_mtime >= csv.stat().st_mtime:
        return target
    partial = target.with_name(target.name + ".partial")
    try:
        spec.write(csv, partial)
    except ImportError:
        return None
    partial.rename(target)
    return target


def duckdb_seconds(name: str, path: Path, runs: int, workdir: Path) -> float | None:
    """Median seconds of DuckDB reading ``path`` and writing it as Parquet; None: n/a."""
    con = duckdb.connect()
    try:
        source = FORMATS[name].duckdb_source(con, path)
    except (duckdb.Error, ImportError):
        return None
    try:
        return copy_seconds(con, source, runs, workdir)
    finally:
        con.close()


def copy_seconds(con: duckdb.DuckDBPyConnection, source: str, runs: int, workdir: Path) -> float:
    """Median seconds of DuckDB's ``COPY (SELECT * FROM source) TO ... (FORMAT parquet)``."""
    times = []
    for i in range(runs):
        target = workdir / f"duck_{i}.parquet"
        started = time.perf_counter()
        con.execute(f"COPY (SELECT * FROM {source}) TO '{target}' (FORMAT parquet)")
        times.append(time.perf_counter() - started)
        target.unlink()
    return statistics.median(times)


def curl_ingest(url: str, path: Path, name: str) -> float:
    """Seconds of one ``curl -F file=@path`` ingest as dataset ``name``."""
    started = time.perf_counter()
    result = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-F", f"file=@{path}",
         f"{url}/v1/ingest?name={name}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    took = time.perf_counter() - started
    if result.stdout.strip() != "200":
        raise RuntimeError(f"ingest of {path.name} answered {result.stdout}: {result.stderr}")
    return took


def available(name: str) -> bool:
    fmt = FORMATS[name].format
    return fmt in (Format.CSV, Format.TSV) or fmt in CONVERTERS


def report(csv: Path, runs: int) -> None:
    """Print MB/s per format, HTTP ingest against DuckDB, one fresh server for all."""
    print(
        f"per format ({csv.stem}, MB/s of the file as sent, median of {runs}; "
        "time ratio: HTTP ingest / DuckDB):"
    )
    print(f"  {'format':<8} {'MB':>7} {'HTTP MB/s':>10} {'DuckDB MB/s':>12} {'time ratio':>12}")
    with tempfile.TemporaryDirectory(prefix="lakehouse-bench-formats-") as tmp:
        settings = Settings()
        settings.storage.data_dir = str(Path(tmp) / "data")
        settings.logging.level = "warning"
        server = LakehouseServer(settings, Path(tmp)).start()
        try:
            for name in FORMATS:
                if not available(name):
                    print(f"  {name:<8} not available (no converter registered)")
                    continue
                path = generate(csv, name)
                if path is None:
                    print(f"  {name:<8} n/a (its writer is not installed)")
                    continue
                size = path.stat().st_size / MB
                dataset = "w_" + name.replace(".", "_")
                http = statistics.median(
                    curl_ingest(server.url, path, dataset) for _ in range(runs)
                )
                duck = duckdb_seconds(name, path, runs, Path(tmp))
                duck_text = f"{size / duck:12.1f}" if duck else f"{'n/a':>12}"
                ratio = f"{http / duck:11.2f}x" if duck else f"{'n/a':>12}"
                print(f"  {name:<8} {size:7.1f} {size / http:10.1f} {duck_text} {ratio}")
        finally:
            server.stop()
