"""Load test: N clients mixing small ingests and queries against a real server.

    .venv/bin/python bench/load.py [--clients 8] [--seconds 60] [--url URL]

Without --url it starts its own `lakehouse serve` (local backend, temp dir).
Checks: no errors other than the documented 503s, every ingest that got 200
is queryable afterwards with the right row count, and the server's RSS
(start / end / peak) does not keep growing. The test suite runs a short
version of the same code (tests/e2e/test_load.py).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lakehouse.config import Settings
from tests.support.servers import LakehouseServer

QUERIES = [
    "SELECT 1",
    "SELECT count(*) FROM {name}",
    "SELECT city, sum(amount) FROM {name} GROUP BY city ORDER BY city",
]


@dataclass
class LoadReport:
    requests: int = 0
    by_status: collections.Counter[int] = field(default_factory=collections.Counter)
    unexpected: list[str] = field(default_factory=list)
    ingested: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    rss_start: int = 0
    rss_end: int = 0
    rss_peak: int = 0

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.by_status.items() if status != 200 and status != 503)


def small_csv(rng: random.Random) -> tuple[bytes, int]:
    rows = rng.randint(1, 400)
    lines = ["id,city,amount,day"]
    for i in range(rows):
        lines.append(
            f"{i},{rng.choice(['Chicago', 'Peoria', 'Joliet'])},{rng.random() * 100:.2f},"
            f"2024-01-{rng.randint(1, 28):02d}"
        )
    return ("\n".join(lines) + "\n").encode(), rows


async def client_loop(
    http: httpx.AsyncClient, client_id: int, deadline: float, report: LoadReport, seed: int
) -> None:
    rng = random.Random(seed)
    own: list[str] = []
    n = 0
    while time.monotonic() < deadline:
        if not own or rng.random() < 0.3:
            name = f"load_c{client_id}_{n}"
            n += 1
            body, rows = small_csv(rng)
            response = await http.post(
                f"/v1/ingest?name={name}", content=body, headers={"Content-Type": "text/csv"}
            )
            if response.status_code == 200:
                report.ingested[name] = rows
                own.append(name)
        else:
            sql = rng.choice(QUERIES).format(name=rng.choice(own))
            response = await http.post("/v1/sql", json={"sql": sql})
        report.requests += 1
        report.by_status[response.status_code] += 1
        if response.status_code not in (200, 503):
            report.unexpected.append(f"{response.status_code}: {response.text[:200]}")


async def verify(http: httpx.AsyncClient, report: LoadReport) -> None:
    for name, rows in report.ingested.items():
        response = await http.post("/v1/sql", json={"sql": f"SELECT count(*) AS n FROM {name}"})
        if response.status_code != 200 or response.json() != [{"n": rows}]:
            report.lost.append(f"{name}: {response.status_code} {response.text[:200]}")


async def run_load(
    server: LakehouseServer, clients: int, seconds: float, seed: int = 7
) -> LoadReport:
    report = LoadReport(rss_start=server.rss_bytes())
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
        await asyncio.gather(
            *(client_loop(http, i, deadline, report, seed + i) for i in range(clients))
        )
        await verify(http, report)
    report.rss_end = server.rss_bytes()
    report.rss_peak = server.peak_rss_bytes()
    return report


def print_report(report: LoadReport, seconds: float) -> None:
    mib = 1024 * 1024
    print(
        f"requests served:   {report.requests} in {seconds:.0f}s "
        f"({report.requests / seconds:.0f}/s)"
    )
    print(f"by status:         {dict(sorted(report.by_status.items()))}")
    print(f"datasets ingested: {len(report.ingested)}; lost: {len(report.lost)}")
    print(
        f"server RSS MiB:    start {report.rss_start / mib:.0f}, end {report.rss_end / mib:.0f}, "
        f"peak {report.rss_peak / mib:.0f}"
    )
    for line in (report.unexpected + report.lost)[:10]:
        print("  !", line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings()
        settings.storage.data_dir = str(Path(tmp) / "data")
        settings.logging.level = "warning"
        server = LakehouseServer(settings, Path(tmp)).start()
        try:
            report = asyncio.run(run_load(server, args.clients, args.seconds))
        finally:
            server.stop()
    print_report(report, args.seconds)
    return 0 if not report.errors and not report.lost else 1


if __name__ == "__main__":
    raise SystemExit(main())
