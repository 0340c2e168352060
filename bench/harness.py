"""Shared by the query benchmarks: the fixture, our server with it ingested, HTTP load.

A ``Request`` says how one target is asked one query (method, path, body,
headers), so the same load generators drive our server, the bare baseline and
peers with other APIs. Load comes from ``wrk`` (one C thread) when it is on
PATH, else from Python clients, whose numbers are not comparable to wrk's:
Python pays more per request than wrk and competes harder for the cores.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lakehouse.config import Settings  # noqa: E402  # after the path tweak
from scripts.gen_workers import ensure_generated  # noqa: E402
from tests.support.servers import (  # noqa: E402
    LakehouseServer,
    free_port,
    stop_process,
    wait_until_ready,
)

OUT = REPO / "bench" / "out"
NAME = "workers_500k"


def fixture() -> Path:
    """The seeded 500k-row workers CSV, generated once into bench/out/."""
    return ensure_generated(500_000, OUT / f"{NAME}.csv")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def sql_request(sql: str) -> Request:
    """Our ``POST /v1/sql`` (and the bare baseline's, which mimics it)."""
    return Request(
        "POST",
        "/v1/sql",
        json.dumps({"sql": sql}).encode(),
        {"Content-Type": "application/json"},
    )


class Client:
    """One keep-alive HTTP connection."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)

    def send(self, request: Request) -> bytes:
        self.conn.request(request.method, request.path, request.body or None, request.headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(
                f"{request.method} {request.path}: {response.status}: {data[:300]!r}"
            )
        return data

    def post_sql(self, sql: str) -> bytes:
        return self.send(sql_request(sql))


@contextmanager
def ingested_server(
    csv_path: Path, configure: Callable[[Settings], None] = lambda _: None
) -> Iterator[tuple[LakehouseServer, dict[str, object], list[str]]]:
    """Our server on a free port with its own temp data dir, the fixture ingested
    over HTTP as ``NAME``: yields (server, manifest, paths of its Parquet objects).
    Settings are the defaults but for ``configure``."""
    with tempfile.TemporaryDirectory(prefix="lakehouse-bench-") as tmp:
        settings = Settings()
        settings.storage.data_dir = str(Path(tmp) / "data")
        settings.secrets.file = str(Path(tmp) / "none.toml")
        configure(settings)
        server = LakehouseServer(settings, Path(tmp)).start()
        try:
            result = subprocess.run(
                ["curl", "-sS", "-f", "-H", "Content-Type: text/csv", "--data-binary",
                 f"@{csv_path}", f"{server.url}/v1/ingest?name={NAME}"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            manifest = json.loads(result.stdout)
            manifest = manifest.get("manifest", manifest)
            paths = [str(Path(settings.storage.data_dir) / key) for key in manifest["objects"]]
            yield server, manifest, paths
        finally:
            server.stop()


# --- wrk -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_seconds: float | None  # only when run with --latency


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def parse_wrk(output: str) -> WrkResult:
    """Requests/s and (with ``--latency``) the median latency from wrk's report.

    Raises when wrk saw errors or non-2xx answers: a fast error is not a result."""
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"wrk saw errors:\n{output}")
    rps = re.search(r"^Requests/sec:\s*([\d.]+)\s*$", output, re.MULTILINE)
    if not rps:
        raise ValueError(f"no Requests/sec in wrk's output:\n{output}")
    p50 = re.search(r"^\s*50(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    return WrkResult(
        float(rps.group(1)),
        float(p50.group(1)) * _UNITS[p50.group(2)] if p50 else None,
    )


def wrk_lua(request: Request) -> str:
    """A wrk script that sends ``request``'s method, body and headers."""

    def lua_string(text: str) -> str:
        # JSON string escapes are valid Lua escapes as long as no \\u appears.
        quoted = json.dumps(text, ensure_ascii=True)
        if "\\u" in quoted:
            raise ValueError(f"cannot put non-ASCII text in a wrk script: {text!r}")
        return quoted

    lines = [f"wrk.method = {lua_string(request.method)}"]
    if request.body:
        lines.append(f"wrk.body = {lua_string(request.body.decode())}")
    lines += [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in request.headers.items()]
    return "\n".join(lines) + "\n"


def run_wrk(url: str, request: Request, clients: int, seconds: float) -> WrkResult:
    """``wrk -t1 -c<clients> --latency`` for ``seconds`` against one request."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(wrk_lua(request))
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--latency", "-s", script.name,
             url + request.path],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
    return parse_wrk(out)


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


# --- Python clients (the fallback) -----------------------------------------------------


def python_p50(url: str, request: Request, seconds: float) -> float:
    """Median seconds per request, sequential on one keep-alive connection."""
    client = Client(url)
    samples = []
    deadline = time.perf_counter() + seconds
    while (start := time.perf_counter()) < deadline:
        client.send(request)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _client_process(
    url: str,
    request: Request,
    seconds: float,
    start_at: float,
    out: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    client = Client(url)
    client.send(request)
    while time.time() < start_at:
        time.sleep(0.001)
    done = 0
    deadline = start_at + seconds
    while time.time() < deadline:
        client.send(request)
        done += 1
    out.put(done)


def python_throughput(url: str, request: Request, clients: int, seconds: float) -> float:
    """requests/s from ``clients`` Python processes, one keep-alive connection each."""
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    start_at = time.time() + 1.0
    procs = [
        multiprocessing.Process(
            target=_client_process, args=(url, request, seconds, start_at, queue)
        )
        for _ in range(clients)
    ]
    for proc in procs:
        proc.start()
    total: int = sum(queue.get() for _ in procs)
    for proc in procs:
        proc.join()
    return total / seconds


class BareServer:
    """bench/bare_granian.py in a subprocess: HTTP + a thread hop + DuckDB, nothing else."""

    def __init__(self, threads: int, paths: list[str]) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "bare_granian.py"), str(port), str(threads),
             *paths],
        )  # fmt: skip
        ready_or_stopped(self.url, self.proc)

    def stop(self) -> None:
        stop_process(self.proc)


def ready_or_stopped(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait for a server just started; stop it if it never answers, so none outlives us."""
    try:
        wait_until_ready(url, proc, timeout)
    except BaseException:
        stop_process(proc)
        raise
