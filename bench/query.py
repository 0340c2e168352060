"""Query benchmark (not a test): SQL over HTTP vs the same query in-process in DuckDB.

    .venv/bin/python bench/query.py [--requests 100] [--seconds 3]

Generates bench/out/workers_500k.csv if missing, starts the real server
(local backend, temp data dir), ingests it over HTTP as ``workers_500k``,
then for each query prints:

- HTTP: median and p99 of N sequential requests on one keep-alive connection
  (``http.client``, JSON response read in full);
- in-process: the same query in DuckDB on the same Parquet objects, fetched
  to Python and JSON-encoded the plain way (list of dicts through msgspec);
- their ratio and the absolute overhead (HTTP median - in-process median);

and requests/s for ``count(*)`` at 8 concurrent clients (8 keep-alive
connections). The load is driven by ``wrk`` (one C thread, ``--load wrk``,
the default when ``wrk`` is on PATH: ``apt-get install wrk``) or by 8 Python
client processes (``--load procs``), which compete harder with the server
for this machine's cores. Client and server share the cores either way.

The floor: the same measurements against bench/bare_granian.py (a bare
ASGI app under embedded Granian answering with DuckDB, no Litestar), run in
the same process of this script, so "ours / bare" ratios compare like with
like (``--no-bare`` skips it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import duckdb  # noqa: E402  # after the path tweak so `lakehouse` imports from the repo
import msgspec  # noqa: E402

from bench.harness import (  # noqa: E402
    NAME,
    BareServer,
    Client,
    fixture,
    ingested_server,
    python_throughput,
    run_wrk,
    sql_request,
    wrk_available,
)
from lakehouse.config import Settings  # noqa: E402

QUERIES = {
    "SELECT 1": "SELECT 1",
    "count(*)": f"SELECT count(*) FROM {NAME}",
    "IL group-by": f"SELECT role, count(*) FROM {NAME} WHERE state='IL' GROUP BY role",
    "1,000 rows": f"SELECT * FROM {NAME} LIMIT 1000",
    "10,000 rows": f"SELECT * FROM {NAME} LIMIT 10000",
}


def stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def timed(fn: Callable[[], object], n: int) -> list[float]:
    for _ in range(5):  # warm-up
        fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def in_process(con: duckdb.DuckDBPyConnection, sql: str) -> bytes:
    """The plain way: fetch to Python, build a list of dicts, msgspec-encode."""
    cursor = con.cursor()
    cursor.execute(sql)
    names = [d[0] for d in cursor.description or []]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return msgspec.json.encode(rows)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loaded(
    url: str, pid: int, sql: str, clients: int, seconds: float, load: str
) -> tuple[float, float]:
    """(requests/s, server CPU microseconds per request) under concurrent load."""
    before = cpu_seconds(pid)
    rps = throughput(url, sql, clients, seconds, load)
    return rps, (cpu_seconds(pid) - before) / (rps * seconds) * 1e6


def throughput(url: str, sql: str, clients: int, seconds: float, load: str) -> float:
    if load == "wrk":
        return run_wrk(url, sql_request(sql), clients, seconds).requests_per_second
    return python_throughput(url, sql_request(sql), clients, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duckdb-threads", type=int, default=0, help="[query] threads")
    parser.add_argument("--pool-size", type=int, default=4, help="[query] pool_size")
    parser.add_argument(
        "--load", choices=["wrk", "procs"], default="wrk" if wrk_available() else "procs"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved load runs")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare-Granian floor")
    args = parser.parse_args()
    if args.load == "wrk" and not wrk_available():
        print("wrk is not on PATH: falling back to Python client processes (--load procs)")
        args.load = "procs"
    generator = "wrk" if args.load == "wrk" else "Python client processes"
    print(f"load generator: {generator}")

    def configure(settings: Settings) -> None:
        settings.logging.level = "warning"
        settings.query.threads = args.duckdb_threads
        settings.query.pool_size = args.pool_size

    with ingested_server(fixture(), configure) as (server, manifest, paths):
        con = duckdb.connect()
        con.execute(f"CREATE VIEW {NAME} AS SELECT * FROM read_parquet({paths!r})")
        client = Client(server.url)
        bare = None if args.no_bare else BareServer(args.duckdb_threads, paths)
        bare_client = Client(bare.url) if bare else None

        print(f"query benchmark: {NAME} ({manifest['row_count']} rows), "
              f"{args.requests} sequential requests on one keep-alive connection")  # fmt: skip
        header = (f"{'query':<13} {'HTTP med':>9} {'HTTP p99':>9} {'in-proc med':>12} "
                  f"{'in-proc p99':>12} {'ratio':>6} {'overhead':>9}")  # fmt: skip
        if bare_client:
            header += f" {'bare med':>9} {'vs bare':>8}"
        print(header)
        print("-" * len(header))
        for label, sql in QUERIES.items():
            over_http = json.loads(client.post_sql(sql))
            here = json.loads(in_process(con, sql))
            # Same rows (LIMIT without ORDER BY may pick others: compare the count).
            key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
            assert len(over_http) == len(here)
            if len(here) < 1000:
                assert sorted(map(key, over_http)) == sorted(map(key, here)), label
            http_med, http_p99 = stats(timed(lambda s=sql: client.post_sql(s), args.requests))
            local_med, local_p99 = stats(timed(lambda s=sql: in_process(con, s), args.requests))
            line = (
                f"{label:<13} {http_med * 1e3:>7.2f}ms {http_p99 * 1e3:>7.2f}ms "
                f"{local_med * 1e3:>10.2f}ms {local_p99 * 1e3:>10.2f}ms "
                f"{http_med / local_med:>6.2f} {(http_med - local_med) * 1e3:>+7.2f}ms"
            )
            if bare_client:
                bare_med, _ = stats(
                    timed(lambda s=sql, c=bare_client: c.post_sql(s), args.requests)
                )
                line += f" {bare_med * 1e3:>7.2f}ms {http_med / bare_med:>8.2f}"
            print(line)
        count_sql = QUERIES["count(*)"]
        targets = {"ours": (server.url, server.proc.pid)}  # type: ignore[union-attr]
        if bare:
            targets["bare Granian"] = (bare.url, bare.proc.pid)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in targets}
        for _ in range(args.rounds):  # interleaved: both see the same neighbours' load
            for name, (url, pid) in targets.items():
                runs[name].append(
                    loaded(url, pid, count_sql, args.clients, args.seconds, args.load)
                )
        print(f"count(*) at {args.clients} concurrent clients (load: {generator}, "
              f"{args.rounds} x {args.seconds:g} s, median):")  # fmt: skip
        medians = {
            name: (statistics.median(r for r, _ in got), statistics.median(c for _, c in got))
            for name, got in runs.items()
        }
        for name, (rps, cpu) in medians.items():
            line = f"  {name:<13} {rps:>7,.0f} requests/s  {cpu:>6.0f} us server CPU/request"
            if name != "ours":
                ours_rps, ours_cpu = medians["ours"]
                line += f"  (ours/bare: {ours_rps / rps:.2f}x req/s, {ours_cpu / cpu:.2f}x CPU)"
            print(line)
        if bare:
            bare.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
