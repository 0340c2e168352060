"""Side-by-side benchmark (not a test): our server against ROAPI and the bare baseline.

    .venv/bin/pip install -c requirements.lock -e '.[bench]'   # ROAPI (or: make bench-peers)
    .venv/bin/python bench/peers.py [--rounds 5] [--seconds 3] [--out bench/out/peers.md]

One command: generates (or reuses) bench/out/workers_500k.csv, ingests it into
``lakehouse serve`` (default settings, free loopback port, temp data dir),
writes the ingested rows as one Parquet file, and serves that same file from
ROAPI (tables in memory, DataFusion; ``POST /api/sql`` with the SQL as the
body) and from the bare Granian + DuckDB baseline (bench/bare_granian.py).
The answers are compared across targets first (values of SELECT 1, count(*)
and the group-by; row count and columns of the 1,000 rows), so like is timed
against like.

Then, for several rounds, each query is run against each target in turn
(interleaved, the order rotating per round, so all see the same neighbours'
load): ``wrk -t1 -c1`` p50 latency for the four queries, ``wrk -t1 -c8``
requests/s for SELECT 1 and count(*). The table holds the median of the
rounds and the ratio ours/ROAPI; it is printed and written as Markdown.
Without ``wrk`` (``apt-get install wrk``) Python clients do the load, and the
output says so: their numbers are not comparable to wrk's. ``--cold`` runs our
server with every cache it has a switch for turned off (``cold_settings``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import duckdb  # noqa: E402  # after the path tweak so `lakehouse` imports from the repo

from bench.harness import (  # noqa: E402
    NAME,
    OUT,
    BareServer,
    Client,
    Request,
    fixture,
    ingested_server,
    python_p50,
    python_throughput,
    ready_or_stopped,
    run_wrk,
    sql_request,
    wrk_available,
)
from bench.query import QUERIES  # noqa: E402
from lakehouse.config import Settings  # noqa: E402
from tests.support.servers import free_port, stop_process  # noqa: E402

OURS, ROAPI, BARE = "ours", "ROAPI", "bare Granian + DuckDB"


@dataclass(frozen=True)
class Measurement:
    label: str
    sql: str
    clients: int

    @property
    def is_latency(self) -> bool:
        """One client: p50 seconds (lower wins); more: requests/s (higher wins)."""
        return self.clients == 1


def measurements(clients: int) -> list[Measurement]:
    one = [Measurement(f"`{q}`", QUERIES[q], 1) for q in ("SELECT 1", "count(*)")]
    one += [Measurement(q, QUERIES[q], 1) for q in ("IL group-by", "1,000 rows")]
    many = [Measurement(f"`{q}` at {clients} clients", QUERIES[q], clients)
            for q in ("SELECT 1", "count(*)")]  # fmt: skip
    return one + many


@dataclass
class Target:
    name: str
    url: str
    request: Callable[[str], Request]


def cold_settings(settings: Settings) -> None:
    """Every cache of ours off: in-memory copies of datasets and, where this version
    has one, the result cache."""
    settings.query.hot_dataset_bytes = 0
    if hasattr(settings.query, "result_cache_bytes"):
        settings.query.result_cache_bytes = 0


def roapi_request(sql: str) -> Request:
    return Request("POST", "/api/sql", sql.encode(), {"Content-Type": "text/plain"})


class RoapiServer:
    """ROAPI serving one Parquet file as table ``NAME``, every listener on loopback."""

    def __init__(self, parquet: Path, log: Path) -> None:
        binary = shutil.which("roapi", path=str(Path(sys.executable).parent)) or shutil.which(
            "roapi"
        )
        if not binary:
            raise SystemExit(
                "ROAPI is not installed: .venv/bin/pip install -c requirements.lock -e '.[bench]'"
            )
        self.version = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        # Its Postgres and FlightSQL listeners default to fixed ports (5432, ...): move them.
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [binary, "-a", f"127.0.0.1:{port}", "-p", f"127.0.0.1:{free_port()}",
                 "--addr-flight-sql", f"127.0.0.1:{free_port()}", "-t", f"{NAME}={parquet}"],
                stdout=out, stderr=out,
            )  # fmt: skip
        ready_or_stopped(self.url, self.proc, timeout=120)

    def stop(self) -> None:
        stop_process(self.proc)


# --- checking the answers ----------------------------------------------------------------


def disagreements(label: str, answers: Mapping[str, list[dict[str, object]]]) -> list[str]:
    """How the targets' answers to one query differ (empty when they agree).

    Column names are each engine's own (``count_star()`` vs ``count(*)``), so small
    results are compared by their rows' values, in any order; a large result (a LIMIT
    without ORDER BY may pick other rows) by its row count and the names of the columns
    holding a value (ROAPI leaves a null out of its row objects)."""
    (first, expected), *others = answers.items()
    problems = []
    for name, rows in others:
        if len(rows) != len(expected):
            problems.append(f"{label}: {name} gave {len(rows)} rows, {first} {len(expected)}")
        elif len(rows) >= 1000:
            if _filled_columns(rows) != _filled_columns(expected):
                problems.append(
                    f"{label}: {name} has columns {_filled_columns(rows)}, "
                    f"{first} {_filled_columns(expected)}"
                )
        elif sorted(map(_values, rows)) != sorted(map(_values, expected)):
            problems.append(f"{label}: {name}'s rows differ from {first}'s")
    return problems


def _filled_columns(rows: list[dict[str, object]]) -> list[str]:
    """The columns with a value in some row, in the order they first appear."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update((key, None) for key, value in row.items() if value is not None)
    return list(columns)


def _values(row: dict[str, object]) -> str:
    return json.dumps(list(row.values()))


# --- the table ---------------------------------------------------------------------------

Samples = Mapping[tuple[str, str], Sequence[float]]


@dataclass(frozen=True)
class Row:
    measurement: Measurement
    medians: dict[str, float]  # target -> median of the rounds

    def ratio(self) -> float:
        """ours / ROAPI: at most 1 is a win for a latency, at least 1 for a throughput."""
        return self.medians[OURS] / self.medians[ROAPI]

    def ours_ahead(self) -> bool:
        ratio = self.ratio()
        return ratio <= 1 if self.measurement.is_latency else ratio >= 1


def summarize(samples: Samples, plan: Sequence[Measurement], targets: Sequence[str]) -> list[Row]:
    """Median of the rounds per measurement and target."""
    return [Row(m, {t: statistics.median(samples[m.label, t]) for t in targets}) for m in plan]


def markdown_table(rows: Sequence[Row], targets: Sequence[str]) -> str:
    def cell(m: Measurement, value: float) -> str:
        return f"{value * 1e3:.2f} ms" if m.is_latency else f"{value:,.0f} req/s"

    lines = [
        "| query | " + " | ".join(targets) + " | ours/ROAPI |",
        "|---" * (len(targets) + 2) + "|",
    ]
    for row in rows:
        m = row.measurement
        verdict = "ahead" if row.ours_ahead() else "behind"
        lines.append(
            f"| {m.label} | "
            + " | ".join(cell(m, row.medians[t]) for t in targets)
            + f" | {row.ratio():.2f} ({verdict}) |"
        )
    return "\n".join(lines) + "\n"


# --- running it --------------------------------------------------------------------------


def measure(target: Target, m: Measurement, seconds: float, use_wrk: bool) -> float:
    request = target.request(m.sql)
    if use_wrk:
        result = run_wrk(target.url, request, m.clients, seconds)
        if m.is_latency:
            assert result.p50_seconds is not None
            return result.p50_seconds
        return result.requests_per_second
    if m.is_latency:
        return python_p50(target.url, request, seconds)
    return python_throughput(target.url, request, m.clients, seconds)


def check_answers(targets: Sequence[Target], plan: Sequence[Measurement]) -> dict[str, int]:
    """Raise unless every target gives the same answers; return the 1,000-row
    response size per target (the JSON each engine writes differs in details)."""
    sizes = {}
    problems = []
    for m in plan:
        if not m.is_latency:
            continue
        bodies = {t.name: Client(t.url).send(t.request(m.sql)) for t in targets}
        problems += disagreements(m.label, {n: json.loads(b) for n, b in bodies.items()})
        if m.sql == QUERIES["1,000 rows"]:
            sizes = {name: len(body) for name, body in bodies.items()}
    if problems:
        raise SystemExit("the targets disagree, so timing them would compare unlike things:\n"
                         + "\n".join(problems))  # fmt: skip
    return sizes


def wait_until_hot(url: str, timeout: float = 120.0) -> None:
    """Until /health says queries read ``NAME`` from memory (copied in the background
    after the ingest), so the rounds time the steady state."""
    Client(url).post_sql(f"SELECT count(*) FROM {NAME}")  # the views' refresh starts the copy
    deadline = time.monotonic() + timeout
    while (
        NAME
        not in json.loads(Client(url).send(Request("GET", "/health")))["query"]["hot"]["datasets"]
    ):
        if time.monotonic() > deadline:
            raise SystemExit(f"{NAME} was not copied into memory within {timeout:g} s")
        time.sleep(0.1)


def warm_up(targets: Sequence[Target], plan: Sequence[Measurement], times: int = 20) -> None:
    for t in targets:
        client = Client(t.url)
        for m in plan:
            for _ in range(times):
                client.send(t.request(m.sql))


def run_rounds(
    targets: Sequence[Target], plan: Sequence[Measurement], rounds: int, seconds: float,
    use_wrk: bool,
) -> dict[tuple[str, str], list[float]]:  # fmt: skip
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in range(rounds):
        order = [*targets[r % len(targets) :], *targets[: r % len(targets)]]
        for m in plan:
            for t in order:
                samples[m.label, t.name].append(measure(t, m, seconds, use_wrk))
        print(f"  round {r + 1}/{rounds} done", flush=True)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each run")
    parser.add_argument("--clients", type=int, default=8, help="clients for the throughput rows")
    parser.add_argument("--out", type=Path, default=OUT / "peers.md", help="Markdown table")
    parser.add_argument("--python-load", action="store_true", help="Python clients, not wrk")
    parser.add_argument("--cold", action="store_true", help="our server with every cache off")
    args = parser.parse_args()
    use_wrk = wrk_available() and not args.python_load
    if use_wrk:
        load = f"wrk -t1: p50 at 1 connection, requests/s at {args.clients} connections"
    else:
        load = ("Python clients (FALLBACK: wrk not used; these numbers are NOT comparable "
                "to wrk's)")  # fmt: skip
        print(f"load generator: {load}")
    plan = measurements(args.clients)
    parquet = OUT / f"{NAME}.parquet"

    configure = cold_settings if args.cold else (lambda _: None)
    with ingested_server(fixture(), configure) as (server, manifest, paths):
        duckdb.sql(f"COPY (SELECT * FROM read_parquet({paths!r})) TO '{parquet}' (FORMAT parquet)")
        with ExitStack() as running:
            roapi = RoapiServer(parquet, OUT / "roapi.log")
            running.callback(roapi.stop)
            bare = BareServer(0, [str(parquet)])
            running.callback(bare.stop)
            targets = [
                Target(OURS, server.url, sql_request),
                Target(ROAPI, roapi.url, roapi_request),
                Target(BARE, bare.url, sql_request),
            ]
            if not args.cold:
                wait_until_hot(server.url)
            sizes = check_answers(targets, plan)
            print(f"answers agree on {manifest['row_count']:,} rows; {args.rounds} rounds "
                  f"x {len(plan)} runs x {len(targets)} targets of {args.seconds:g} s")  # fmt: skip
            warm_up(targets, plan)
            samples = run_rounds(targets, plan, args.rounds, args.seconds, use_wrk)

    names = [t.name for t in targets]
    table = markdown_table(summarize(samples, plan, names), names)
    size_note = ", ".join(f"{name} {size / 1024:.0f} KiB" for name, size in sizes.items())
    command = shlex.join([".venv/bin/python", "bench/peers.py", *sys.argv[1:]])
    report = (
        f"    {command}\n\n"
        f"Load: {load}; median of {args.rounds} interleaved rounds of {args.seconds:g} s. "
        f"Data: {manifest['row_count']:,} rows ({NAME}), one Parquet file for the peers; "
        f"{roapi.version}. 1,000 rows as JSON: {size_note}."
        f"{' Ours with every cache off (--cold).' if args.cold else ''}\n\n{table}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
