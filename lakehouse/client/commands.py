"""The client commands of the ``lakehouse`` console script: ingest, sql, datasets,
describe, history. They talk to a running server over HTTP (``LakehouseClient``)
and lay their output out with rich.

Exit status: 0 done, 1 the request failed (the server's message, or why it could
not be reached, on one line of stderr), 2 a usage error. The token is sent as a
header and never printed.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

from rich.console import Console
from rich.filesize import decimal as _size
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Column, Table
from rich.text import Text

from lakehouse.client.http import ClientError, LakehouseClient

DEFAULT_URL = "http://127.0.0.1:3110"
RAW_FORMATS = ("csv", "json", "ndjson", "parquet", "arrow")
INGEST_FORMATS = ("csv", "tsv", "ndjson", "json", "parquet", "arrow", "xlsx")
COMPRESSION_SUFFIXES = (".gz", ".gzip", ".zst", ".zstd")
TABLE_ROWS = 1000
"""At most this many rows in a terminal table; the raw formats have them all."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Arguments argparse accepted that still make no sense together."""


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The client subcommands, each with ``--url`` and ``--token``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get("LAKEHOUSE_URL") or DEFAULT_URL,
        help=f"the server (default: $LAKEHOUSE_URL or {DEFAULT_URL})",
    )
    common.add_argument(
        "--token",
        default=os.environ.get("LAKEHOUSE_AUTH_TOKEN") or None,
        help="bearer token (default: $LAKEHOUSE_AUTH_TOKEN)",
    )

    ingest = sub.add_parser(
        "ingest",
        parents=[common],
        help="upload a file (CSV, TSV, NDJSON, JSON, Parquet, Arrow, xlsx; gzip/zstd) as a dataset",
    )
    ingest.add_argument("file", type=Path, nargs="?", help="the file (none with --source)")
    ingest.add_argument(
        "--source", metavar="KEY", help="ingest this object already in the server's storage"
    )
    ingest.add_argument(
        "--format",
        choices=INGEST_FORMATS,
        help="the file's format (default: told by its name, else its bytes)",
    )
    ingest.add_argument("--sheet", help="xlsx: the sheet to read (default: the first)")
    ingest.add_argument("--name", help="the dataset (default: the file's name without suffix)")
    ingest.add_argument("--mode", choices=["append", "replace", "create"])
    ingest.add_argument(
        "--types", help="column types instead of the inferred ones, e.g. zip:string,amount:double"
    )
    ingest.set_defaults(run=_ingest)

    sql = sub.add_parser("sql", parents=[common], help="run a read-only SQL query")
    sql.add_argument("sql", help="the query, or - to read it from stdin")
    sql.add_argument(
        "--format",
        choices=["table", *RAW_FORMATS],
        help="table on a terminal; else the raw result (default csv)",
    )
    sql.add_argument("-o", "--output", type=Path, help="write the raw result to this file")
    sql.set_defaults(run=_sql)

    datasets = sub.add_parser("datasets", parents=[common], help="list the datasets")
    datasets.set_defaults(run=_datasets)

    describe = sub.add_parser(
        "describe", parents=[common], help="a dataset's columns, how each was typed, a profile"
    )
    describe.add_argument("name")
    describe.set_defaults(run=_describe)

    history = sub.add_parser("history", parents=[common], help="a dataset's versions")
    history.add_argument("name")
    history.set_defaults(run=_history)


def run(args: argparse.Namespace) -> int:
    """Run the parsed client command; its exit status."""
    if not args.url.startswith(("http://", "https://")):
        return _fail(f"--url must start with http:// or https://, not {args.url!r}", EXIT_USAGE)
    token = args.token.strip() if args.token else None
    if token and not all("!" <= char <= "~" for char in token):
        # Never the token itself, nor an HTTP library's message, which would quote it.
        return _fail("the token contains characters a header cannot carry", EXIT_USAGE)
    client = LakehouseClient(args.url, token)
    try:
        args.run(client, args)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except ClientError as exc:
        return _fail(exc.message, EXIT_FAILED)
    except BrokenPipeError:  # `lakehouse sql ... | head`: the reader has what it wanted
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()
    return EXIT_OK


def _fail(message: str, status: int) -> int:
    # One line: the server's messages may span lines (a SQL error's caret), keep them whole.
    print(f"lakehouse: {message}", file=sys.stderr)
    return status


def _ingest(client: LakehouseClient, args: argparse.Namespace) -> None:
    options = {k: v for k, v in (("format", args.format), ("sheet", args.sheet)) if v}
    if (args.file is None) == (args.source is None):
        raise UsageError("give either a FILE to upload or --source KEY")
    if args.source is not None:
        name = args.name or _dataset_name(PurePosixPath(args.source))
        body = client.ingest_source(args.source, name, args.mode, args.types, options)
    else:
        body = _upload(client, args, options)
    stats = body["ingest"]
    console = Console()
    console.print(
        f"{body['name']}: version {body.get('version')}, {_rows(stats['rows'])} ingested "
        f"in {stats['seconds']} s",
        markup=False,
    )
    console.print(_schema_table(stats))
    for column in stats["defaulted"]:
        console.print(f"warning: {column['name']} is VARCHAR: {column['reason']}", markup=False)
    for column in stats["widened"]:
        console.print(
            f"warning: {column['name']} was widened from {column['inferred']} to VARCHAR: "
            f"{column['reason']}",
            markup=False,
        )


def _upload(
    client: LakehouseClient, args: argparse.Namespace, options: dict[str, str]
) -> dict[str, Any]:
    """Upload the file with a progress bar; the server's answer."""
    path: Path = args.file
    if not path.is_file():
        raise UsageError(f"{path.name}: no such file")
    name = args.name or _dataset_name(path)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as progress:
        task = progress.add_task(f"uploading {path.name}", total=path.stat().st_size)

        def on_job(job: dict[str, Any]) -> None:
            rows = job.get("rows_converted", 0)
            progress.update(task, description=f"{job.get('phase')}: {rows:,} rows")

        body: dict[str, Any] = client.ingest(
            path,
            name,
            args.mode,
            on_upload=lambda sent: progress.advance(task, sent),
            on_job=on_job,
            types=args.types,
            options=options,
        )
        progress.update(task, description="done")
    return body


def _dataset_name(path: PurePath) -> str:
    """The file's name without its suffix (and a compression suffix: ``a.csv.gz`` is
    ``a``), made a valid dataset name as the console does."""
    stem = path.stem
    if path.suffix.lower() in COMPRESSION_SUFFIXES:
        stem = PurePosixPath(stem).stem
    name = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    return "_" + name if name[:1].isdigit() else name


def _schema_table(stats: dict[str, Any]) -> Table:
    why = {c["name"]: c["reason"] for c in stats["defaulted"]}
    why.update({c["name"]: f"widened: {c['reason']}" for c in stats["widened"]})
    why.update(dict.fromkeys(stats["overridden"], "type given by --types"))
    table = _table("column", "type", "why", title="schema")
    for column in stats["schema"]:
        table.add_row(
            _cell(column["name"]), column["type"], _cell(why.get(column["name"], "inferred"))
        )
    return table


def _sql(client: LakehouseClient, args: argparse.Namespace) -> None:
    sql = sys.stdin.read() if args.sql == "-" else args.sql
    if not sql.strip():
        raise UsageError("no SQL given")
    to_terminal = sys.stdout.isatty() and args.output is None
    result_format = args.format or ("table" if to_terminal else "csv")
    if result_format == "table":
        if args.output is not None:
            formats = "|".join(RAW_FORMATS)
            raise UsageError(f"--format table is for the terminal; -o takes {formats}")
        with client.query(sql, "arrow") as chunks:
            Console().print(_result_table(b"".join(chunks)))
        return
    with client.query(sql, result_format) as chunks:
        if args.output is None:
            _copy(chunks, sys.stdout.buffer)
        else:
            _write(chunks, args.output)  # opened once the query answered


def _write(chunks: Iterable[bytes], path: Path) -> None:
    """``chunks`` into the file ``path``; no partial file is left when the stream fails."""
    try:
        target = path.open("wb")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with target:
            _copy(chunks, target)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _copy(chunks: Iterable[bytes], target: io.BufferedIOBase | Any) -> None:
    for chunk in chunks:
        target.write(chunk)
    target.flush()


def _result_table(arrow_stream: bytes) -> Table:
    import pyarrow as pa  # only for the terminal table

    result = pa.ipc.open_stream(arrow_stream).read_all()
    table = _table(*result.column_names)
    for row in result.slice(0, TABLE_ROWS).to_pylist():
        table.add_row(*(_cell(value) for value in row.values()))
    shown = min(result.num_rows, TABLE_ROWS)
    table.caption = _rows(result.num_rows) + (
        f" (the first {shown:,} shown; --format csv for all)" if shown < result.num_rows else ""
    )
    return table


def _cell(value: object) -> Text:
    return Text("NULL", style="dim") if value is None else Text(str(value))


def _datasets(client: LakehouseClient, args: argparse.Namespace) -> None:
    table = _table("name", "rows", "columns", "size", "version", "updated")
    for dataset in client.datasets():
        table.add_row(
            _cell(dataset["name"]),
            f"{dataset['rows']:,}",
            str(dataset["columns"]),
            _size(dataset["bytes"]),
            str(dataset["version"]),
            _when(dataset["updated"]),
        )
    _print_or_none(table, "no datasets yet: lakehouse ingest FILE")


def _describe(client: LakehouseClient, args: argparse.Namespace) -> None:
    info = client.dataset(args.name)
    profile = {row["column_name"]: row for row in client.rows(_stats_sql(info))}
    console = Console()
    console.print(
        f"{info['name']}: version {info['version']}, {_rows(info['rows'])}, "
        f"{_size(info['bytes'])}, updated {_when(info['updated_at'])}",
        markup=False,
    )
    table = _table("column", "type", "typed", "nulls %", "distinct ~", "min", "max")
    for column in info["columns"]:
        stats = profile.get(column["name"], {})
        typed = column["source"] + (f": {column['reason']}" if column.get("reason") else "")
        table.add_row(
            _cell(column["name"]),
            column["type"],
            _cell(typed),
            _cell(stats.get("null_percentage")),
            _cell(stats.get("approx_unique")),
            _cell(stats.get("min")),
            _cell(stats.get("max")),
        )
    console.print(table)


def _history(client: LakehouseClient, args: argparse.Namespace) -> None:
    history = client.history(args.name)
    table = _table(
        "version", "committed", "operation", "added", "removed", "total", "source file",
        title=history["name"],
    )  # fmt: skip
    table.columns[1].no_wrap = True  # the time on one line
    for version in history["versions"]:
        operation = version["operation"]
        if version.get("rollback_of"):
            operation += f" (to version {version['rollback_of']})"
        table.add_row(
            str(version["version"]),
            _when(version["committed_at"]),
            operation,
            f"{version['rows_added']:,}",
            f"{version['rows_removed']:,}",
            f"{version['total_rows']:,}",
            _cell(version.get("source_file") or ""),
        )
    Console().print(table)


def _print_or_none(table: Table, empty: str) -> None:
    Console().print(table if table.row_count else empty)


def _rows(count: int) -> str:
    return f"{count:,} row" + ("" if count == 1 else "s")


def _when(timestamp: str) -> str:
    """An ISO-8601 UTC time as ``2025-01-31 12:00:00Z``: to the second, and narrow."""
    return timestamp[:19].replace("T", " ") + "Z"


def _stats_sql(info: dict[str, Any]) -> str:
    """Per column: min, max, approximate distinct count and NULL percentage, computed
    directly (SUMMARIZE fails on doubles near ±1e308: its standard deviation overflows)."""
    rows = []
    for column in info["columns"]:
        name = _ident(column["name"])
        rows.append(
            f"{{'column_name': '{column['name'].replace(chr(39), chr(39) * 2)}', "
            f"'min': CAST(min({name}) AS VARCHAR), 'max': CAST(max({name}) AS VARCHAR), "
            f"'approx_unique': approx_count_distinct({name}), "
            f"'null_percentage': round(100.0 * (count(*) - count({name})) "
            f"/ nullif(count(*), 0), 2)::DOUBLE}}"
        )
    return (
        f"WITH stats AS (SELECT [{', '.join(rows)}] AS s FROM {_ident(info['name'])}) "
        "SELECT unnest(s, recursive := true) FROM stats"
    )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table(*headers: str, title: str | None = None) -> Table:
    """A table whose headers, like its cells (``_cell``), are text, never rich markup:
    names and values come from the data."""
    columns = (Column(header=Text(header)) for header in headers)
    return Table(*columns, title=Text(title) if title else None)
