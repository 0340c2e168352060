"""Crash safety: SIGKILL during an ingest or an append, then restart; on both backends.

After the restart the catalog is consistent (every current version's files exist
and read), the interrupted version is absent, and the start-up sweep (grace
period 0 here) has removed whatever the crash left behind: a second sweep finds
nothing unreferenced.

To kill between writing a data file and committing it (ADR 0010's two phases)
for certain, not by luck of timing, the test holds a write lock on the SQLite
catalog database: the server writes the Parquet file, then its Iceberg commit
waits for the lock; the test sees the file in storage and kills the server
while the commit waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from lakehouse.config import Settings
from lakehouse.layout import IN_PROGRESS_PREFIX, catalog_database
from tests.support.http import HTTP
from tests.support.servers import LakehouseServer
from tests.support.storage import leftovers, new_store

pytestmark = pytest.mark.slow

ROW = b"%d,Chicago,IL,01234,12.50,2024-01-02,true\n"
HEADER = b"id,city,state,zip,rate,day,active\n"
CSV = {"Content-Type": "text/csv"}


def csv_stream(rows: int, killed: threading.Event) -> Iterator[bytes]:
    yield HEADER
    for start in range(0, rows, 10_000):
        if killed.is_set():
            return
        yield b"".join(ROW % i for i in range(start, min(start + 10_000, rows)))


def sql(url: str, query: str) -> httpx.Response:
    return HTTP.post(f"{url}/v1/sql", json={"sql": query}, timeout=60)


def stored_keys(settings: Settings, prefix: str) -> list[str]:
    """What the backend holds under ``prefix`` (temp files and unfinished uploads too)."""
    return asyncio.run(leftovers(settings, prefix))


def complete_objects(settings: Settings, prefix: str) -> set[str]:
    """The objects under ``prefix`` whose write has finished."""
    return {
        key
        for key in stored_keys(settings, prefix)
        if not key.startswith("upload:") and IN_PROGRESS_PREFIX not in key
    }


def row_counts(settings: Settings, keys: list[str]) -> int:
    """Rows in the Parquet objects ``keys``, read from the backend."""

    async def read() -> int:
        store = new_store(settings)
        await store.start()
        try:
            return sum([pq.read_table(io.BytesIO(await store.get(k))).num_rows for k in keys])
        finally:
            await store.close()

    return asyncio.run(read())


def local_temp_files(settings: Settings) -> list[Path]:
    """Spool and temp files under the data directory (the spool is local on S3 too)."""
    root = Path(settings.storage.data_dir)
    return [p for p in root.rglob("*") if p.is_file() and p.name.startswith(IN_PROGRESS_PREFIX)]


def assert_consistent(server: LakehouseServer, settings: Settings) -> None:
    manifests = HTTP.get(f"{server.url}/catalog/list").json()["datasets"]
    referenced = set()
    for manifest in manifests:
        # Every object exists, is readable Parquet, and together they hold row_count rows.
        assert row_counts(settings, manifest["objects"]) == manifest["row_count"]
        referenced.update(manifest["objects"])
        count = sql(server.url, f'SELECT count(*) AS n FROM "{manifest["name"]}"').json()
        assert count == [{"n": manifest["row_count"]}]
    assert "base" in {m["name"] for m in manifests}
    # The sweep left nothing unreferenced under datasets/ ...
    stored = stored_keys(settings, "datasets/")
    assert referenced <= set(stored)
    report = HTTP.post(f"{server.url}/admin/gc").json()
    assert report["removed"] == []
    assert report["scanned"] == report["referenced"] == len(stored)
    # ... and no spool file, temp file or unfinished upload survives the restart.
    assert local_temp_files(settings) == []
    assert [k for k in stored_keys(settings, "") if k.startswith("upload:")] == []


def start(settings: Settings, tmp_path: Path) -> LakehouseServer:
    settings.catalog.orphan_grace_seconds = 0
    settings.logging.level = "info"
    return LakehouseServer(settings, tmp_path).start()


def ingest_base(server: LakehouseServer) -> None:
    response = HTTP.post(
        f"{server.url}/v1/ingest?name=base",
        content=HEADER + ROW % 1 + ROW % 2,
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text


def test_sigkill_during_streaming_upload(settings: Settings, tmp_path: Path) -> None:
    server = start(settings, tmp_path)
    ingest_base(server)
    killed = threading.Event()
    saw_spool = threading.Event()

    def kill_when_streaming() -> None:
        # Wait until the server is spooling the upload to disk, then kill it.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if local_temp_files(settings):
                saw_spool.set()
                break
            time.sleep(0.01)
        server.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        killed.set()

    killer = threading.Thread(target=kill_when_streaming)
    killer.start()
    with pytest.raises(httpx.TransportError):
        HTTP.post(
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
        assert_consistent(server, settings)
        assert "interrupted" not in _names(server)
    finally:
        server.stop()


@contextlib.contextmanager
def catalog_write_locked(settings: Settings) -> Iterator[None]:
    """Hold the SQLite catalog database's write lock: every commit waits meanwhile
    (for SQLite's busy timeout, then fails)."""
    connection = sqlite3.connect(catalog_database(settings.storage.data_dir), timeout=10)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        yield
        connection.rollback()
    finally:
        connection.close()


def kill_between_write_and_commit(
    server: LakehouseServer, settings: Settings, url: str, body: bytes, data_prefix: str
) -> str:
    """POST ``body`` to ``url`` while the catalog is locked; once a new data file is
    stored under ``data_prefix`` SIGKILL the server, its commit still waiting, the
    request unanswered. Return the data file's key."""
    before = complete_objects(settings, data_prefix)
    answer: list[httpx.Response | Exception] = []

    def post() -> None:
        try:
            answer.append(HTTP.post(url, content=body, headers=CSV, timeout=60))
        except httpx.TransportError as exc:
            answer.append(exc)

    request = threading.Thread(target=post)
    try:
        with catalog_write_locked(settings):
            request.start()
            deadline = time.monotonic() + 20
            while not (new := complete_objects(settings, data_prefix) - before):
                assert request.is_alive(), f"answered before its data file was seen: {answer}"
                assert time.monotonic() < deadline, "no data file was written"
                time.sleep(0.01)
            # The commit is still waiting for the lock: nothing answered the client yet.
            assert request.is_alive(), f"answered before the kill: {answer}"
            server.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            request.join(30)
    finally:
        exit_code = server.stop(signal.SIGKILL)  # also when an assertion failed above
    assert exit_code == -signal.SIGKILL
    [killed_request] = answer
    assert isinstance(killed_request, httpx.TransportError), killed_request
    [key] = new
    return key


def test_sigkill_between_object_write_and_register(settings: Settings, tmp_path: Path) -> None:
    """The dataset's data file is stored, its registration waits: the kill lands there.
    After the restart the dataset does not exist, and its file is swept."""
    server = start(settings, tmp_path)
    ingest_base(server)
    orphan = kill_between_write_and_commit(
        server,
        settings,
        f"{server.url}/v1/ingest?name=interrupted",
        HEADER + b"".join(ROW % i for i in range(1000)),
        "datasets/interrupted/data/",
    )
    server.start()
    try:
        assert "interrupted" not in _names(server)
        assert orphan not in stored_keys(settings, "datasets/")
        assert sql(server.url, "SELECT count(*) AS n FROM base").json() == [{"n": 2}]
        assert_consistent(server, settings)
    finally:
        server.stop()


def test_sigkill_between_append_write_and_commit(settings: Settings, tmp_path: Path) -> None:
    """The appended rows' file is stored, the commit waits: the kill lands there.
    After the restart the dataset is at version 1 with its 2 rows, and the file is swept."""
    server = start(settings, tmp_path)
    ingest_base(server)
    orphan = kill_between_write_and_commit(
        server,
        settings,
        f"{server.url}/v1/ingest?name=base&mode=append",
        HEADER + b"".join(ROW % i for i in range(100, 1100)),
        "datasets/base/data/",
    )
    server.start()
    try:
        manifest = HTTP.get(f"{server.url}/catalog/manifest/base").json()
        assert (manifest["version"], manifest["row_count"]) == (1, 2)
        history = HTTP.get(f"{server.url}/v1/datasets/base/history").json()["versions"]
        assert [v["total_rows"] for v in history] == [2]
        assert orphan not in stored_keys(settings, "datasets/")
        assert_consistent(server, settings)
    finally:
        server.stop()


def _names(server: LakehouseServer) -> set[str]:
    return {m["name"] for m in HTTP.get(f"{server.url}/catalog/list").json()["datasets"]}
