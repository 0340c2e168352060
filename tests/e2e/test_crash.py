"""Crash safety: SIGKILL during an ingest, a commit or an append, then restart.

After the restart the catalog is consistent (every current version's files exist
and read), the interrupted version is absent or complete (never part of it), and
the start-up sweep (grace period 0 here) has removed whatever the crash left
behind: a second sweep finds nothing unreferenced.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from lakehouse.config import Settings
from tests.support.servers import LakehouseServer

pytestmark = pytest.mark.slow

ROW = b"%d,Chicago,IL,01234,12.50,2024-01-02,true\n"
HEADER = b"id,city,state,zip,rate,day,active\n"


def csv_stream(rows: int, killed: threading.Event) -> Iterator[bytes]:
    yield HEADER
    for start in range(0, rows, 10_000):
        if killed.is_set():
            return
        yield b"".join(ROW % i for i in range(start, min(start + 10_000, rows)))


def sql(url: str, query: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/sql", json={"sql": query}, timeout=60)


def assert_consistent(server: LakehouseServer, data_dir: Path, interrupted: str) -> None:
    manifests = httpx.get(f"{server.url}/catalog/list").json()["datasets"]
    referenced = set()
    for manifest in manifests:
        # Every object exists, is readable Parquet, and together they hold row_count rows.
        rows = sum(pq.read_table(data_dir / key).num_rows for key in manifest["objects"])
        assert rows == manifest["row_count"]
        referenced.update(manifest["objects"])
        count = sql(server.url, f'SELECT count(*) AS n FROM "{manifest["name"]}"').json()
        assert count == [{"n": manifest["row_count"]}]
    names = {m["name"] for m in manifests}
    assert "base" in names
    if interrupted in names:  # complete, then: the register happened
        [manifest] = [m for m in manifests if m["name"] == interrupted]
        assert manifest["row_count"] > 0
    # The sweep left nothing unreferenced under datasets/ ...
    on_disk = {
        str(p.relative_to(data_dir)) for p in (data_dir / "datasets").rglob("*") if p.is_file()
    }
    assert referenced <= on_disk
    report = httpx.post(f"{server.url}/admin/gc").json()
    assert report["removed"] == []
    assert report["scanned"] == report["referenced"] == len(on_disk)
    # ... and no spool or temp files survive the restart.
    leftovers = [p for p in data_dir.rglob("*") if p.is_file() and p.name.startswith(".tmp")]
    assert leftovers == []


def start(settings: Settings, tmp_path: Path) -> LakehouseServer:
    settings.catalog.orphan_grace_seconds = 0
    settings.logging.level = "info"
    return LakehouseServer(settings, tmp_path).start()


def ingest_base(server: LakehouseServer) -> None:
    response = httpx.post(
        f"{server.url}/v1/ingest?name=base",
        content=HEADER + ROW % 1 + ROW % 2,
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text


def test_sigkill_during_streaming_upload(local_settings: Settings, tmp_path: Path) -> None:
    server = start(local_settings, tmp_path)
    data_dir = Path(local_settings.storage.data_dir)
    ingest_base(server)
    killed = threading.Event()
    saw_spool = threading.Event()

    def kill_when_streaming() -> None:
        # Wait until the server is spooling the upload to disk, then kill it.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(p.name.startswith(".tmp") for p in data_dir.rglob("*") if p.is_file()):
                saw_spool.set()
                break
            time.sleep(0.01)
        server.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        killed.set()

    killer = threading.Thread(target=kill_when_streaming)
    killer.start()
    with pytest.raises(httpx.TransportError):
        httpx.post(
            f"{server.url}/v1/ingest?name=interrupted",
            content=csv_stream(3_000_000, killed),
            headers={"Content-Type": "text/csv"},
            timeout=60,
        )
    killer.join()
    assert saw_spool.is_set(), "the kill did not happen while the upload was being spooled"
    assert server.stop() == -signal.SIGKILL
    server.start()
    try:
        assert_consistent(server, data_dir, "interrupted")
        assert "interrupted" not in _names(server)
    finally:
        server.stop()


@pytest.mark.parametrize("attempt", range(3))
def test_sigkill_between_object_write_and_register(
    local_settings: Settings, tmp_path: Path, attempt: int
) -> None:
    """Kill the moment the Parquet object appears under datasets/: the register
    is then in flight or about to be (what exactly is hit varies per run; every
    outcome must be consistent)."""
    server = start(local_settings, tmp_path)
    data_dir = Path(local_settings.storage.data_dir)
    ingest_base(server)
    killed = threading.Event()
    saw_object = threading.Event()
    killer = threading.Thread(
        target=_kill_when_a_data_file_appears,
        args=(server, data_dir / "datasets" / "interrupted" / "data", attempt, killed, saw_object),
    )
    killer.start()
    with contextlib.suppress(httpx.TransportError):
        httpx.post(
            f"{server.url}/v1/ingest?name=interrupted",
            content=b"".join(csv_stream(200_000, threading.Event())),
            headers={"Content-Type": "text/csv"},
            timeout=60,
        )
    killer.join()
    assert saw_object.is_set(), "the kill did not happen after the object was written"
    server.stop()
    server.start()
    try:
        assert_consistent(server, data_dir, "interrupted")
        outcome = "registered" if "interrupted" in _names(server) else "swept"
        print(f"attempt {attempt}: interrupted dataset {outcome}")
    finally:
        server.stop()


@pytest.mark.parametrize("attempt", range(3))
def test_sigkill_during_an_append_leaves_the_version_complete_or_absent(
    local_settings: Settings, tmp_path: Path, attempt: int
) -> None:
    """Kill while an append's file is stored and its commit runs: afterwards the
    dataset is at version 1 with its 2 rows, or at version 2 with every appended row."""
    server = start(local_settings, tmp_path)
    data_dir = Path(local_settings.storage.data_dir)
    ingest_base(server)
    data = data_dir / "datasets" / "base" / "data"
    existing = {p.name for p in data.iterdir()}
    killed = threading.Event()
    saw_object = threading.Event()
    killer = threading.Thread(
        target=_kill_when_a_data_file_appears,
        args=(server, data, attempt, killed, saw_object, existing),
    )
    killer.start()
    with contextlib.suppress(httpx.TransportError):
        httpx.post(
            f"{server.url}/v1/ingest?name=base&mode=append",
            content=HEADER + b"".join(ROW % i for i in range(100, 200_100)),
            headers={"Content-Type": "text/csv"},
            timeout=60,
        )
    killer.join()
    assert saw_object.is_set(), "the kill did not happen after the data file was written"
    server.stop()
    server.start()
    try:
        assert_consistent(server, data_dir, "base")
        manifest = httpx.get(f"{server.url}/catalog/manifest/base").json()
        assert (manifest["version"], manifest["row_count"]) in {(1, 2), (2, 200_002)}
        history = httpx.get(f"{server.url}/v1/datasets/base/history").json()["versions"]
        assert [v["total_rows"] for v in history] == [2, 200_002][: manifest["version"]]
        print(f"attempt {attempt}: append {'landed' if manifest['version'] == 2 else 'absent'}")
    finally:
        server.stop()


def _kill_when_a_data_file_appears(
    server: LakehouseServer,
    directory: Path,
    attempt: int,
    killed: threading.Event,
    saw_object: threading.Event,
    existing: frozenset[str] | set[str] = frozenset(),
) -> None:
    """SIGKILL the server the moment a new, complete data file is in ``directory``:
    the commit is then in flight or about to be (what exactly is hit varies)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not killed.is_set():
        if directory.is_dir() and any(
            not p.name.startswith(".tmp") and p.name not in existing for p in directory.iterdir()
        ):
            saw_object.set()
            break
        time.sleep(0.0005 * (attempt + 1))
    os.kill(server.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
    killed.set()


def _names(server: LakehouseServer) -> set[str]:
    return {m["name"] for m in httpx.get(f"{server.url}/catalog/list").json()["datasets"]}
