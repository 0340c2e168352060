"""Ingest jobs on a real ``lakehouse serve``: a client follows its upload's progress
(phase, bytes received, rows converted) from another connection before the upload's
response arrives, and reads the result or the error afterwards. A CSV is converted
while it arrives, so rows are counted before the last byte is received.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.http import HTTP
from tests.support.servers import LakehouseServer
from tests.support.settings import make_settings

ROWS = 200_000  # about 7.5 MiB: the conversion takes several of the reader's 1 MiB blocks
CHUNK = 512 * 1024
CONVERTED_BEFORE = 8 * CHUNK  # about half the upload


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LakehouseServer]:
    tmp_path = tmp_path_factory.mktemp("jobs")
    proc = LakehouseServer(make_settings("local", tmp_path, None), tmp_path).start()
    yield proc
    proc.stop()


def big_csv() -> bytes:
    rows = (
        f"{i},name-{i % 97},{i * 0.25},2024-01-{1 + i % 28:02d},{'true' if i % 2 else 'false'}\n"
        for i in range(ROWS)
    )
    return ("id,name,amount,day,flag\n" + "".join(rows)).encode()


def poll(client: httpx.Client, job: str, until: float = 30.0) -> Iterator[dict[str, Any]]:
    """The job's state, again and again (skipping 404s until it exists), for ``until`` s."""
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        response = client.get(f"/v1/ingest/jobs/{job}")
        if response.status_code == 200:
            yield response.json()
        else:
            assert response.status_code == 404, response.text
    raise TimeoutError(f"job {job} did not get there in {until}s")


def test_progress_moves_while_an_upload_is_received_and_converted(
    server: LakehouseServer,
) -> None:
    data = big_csv()
    job = str(uuid.uuid4())
    watcher = httpx.Client(base_url=server.url, timeout=10)
    received: list[dict[str, Any]] = []

    def paced_body() -> Iterator[bytes]:
        # Each chunk is sent only once the server counted the ones before it.
        for start in range(0, len(data), CHUNK):
            yield data[start : start + CHUNK]
            sent = min(start + CHUNK, len(data))
            for state in poll(watcher, job):
                if state["bytes_received"] >= sent:
                    received.append(state)
                    break
            if sent == CONVERTED_BEFORE:
                # The rest is sent only once rows were converted (ADR 0009: a CSV is
                # converted while it arrives); a server that waits for the whole upload
                # never gets there, and the poll times out.
                converted_early.append(
                    next(s for s in poll(watcher, job) if s["rows_converted"] > 0)
                )
        uploaded.set()

    converted_early: list[dict[str, Any]] = []

    seen_before_the_response: list[dict[str, Any]] = []
    uploaded = threading.Event()
    answered = threading.Event()

    def watch_conversion() -> None:
        uploaded.wait(30)
        for state in poll(watcher, job):
            if answered.is_set():
                return
            seen_before_the_response.append(state)

    thread = threading.Thread(target=watch_conversion)
    thread.start()
    try:
        response = HTTP.post(
            f"{server.url}/v1/ingest",
            params={"name": "big", "job": job},
            content=paced_body(),
            headers={"Content-Type": "text/csv", "Content-Length": str(len(data))},
            timeout=60,
        )
    finally:
        answered.set()
        thread.join()
        watcher.close()
    assert response.status_code == 200, response.text
    assert response.headers["X-Ingest-Job"] == response.json()["job"] == job

    # While the body arrived: receiving, the bytes growing chunk by chunk.
    byte_counts = [s["bytes_received"] for s in received]
    assert len(byte_counts) == -(-len(data) // CHUNK)
    assert byte_counts == sorted(set(byte_counts))
    assert byte_counts[-1] == len(data)
    assert all(s["phase"] == "receiving" for s in received[:-1])
    assert all(s["bytes_expected"] == len(data) for s in received)
    # Rows were converted while half the upload was still to be sent.
    assert [s["phase"] for s in converted_early] == ["receiving"]
    assert 0 < converted_early[0]["rows_converted"] < ROWS
    assert converted_early[0]["bytes_received"] == CONVERTED_BEFORE

    # After it, before the response: converting what is left (how much is left depends
    # on how far the conversion kept up), then committing; the count never goes back.
    phases = [s["phase"] for s in seen_before_the_response]
    assert "converting" in phases, phases
    order = ["receiving", "converting", "committing", "done"]
    assert phases == sorted(phases, key=order.index), phases
    counts = [s["rows_converted"] for s in seen_before_the_response]
    assert counts == sorted(counts), counts
    assert counts[0] >= converted_early[0]["rows_converted"]

    final = HTTP.get(f"{server.url}/v1/ingest/jobs/{job}").json()
    assert final["phase"] == "done"
    assert final["rows_converted"] == ROWS
    assert final["result"]["manifest"]["name"] == "big"
    assert final["result"]["stats"]["rows"] == ROWS
    assert final["error"] is None


def post_csv(server: LakehouseServer, query: str, body: bytes) -> httpx.Response:
    return HTTP.post(
        f"{server.url}/v1/ingest?{query}", content=body, headers={"Content-Type": "text/csv"}
    )


def test_a_failed_ingest_keeps_its_error_and_recent_jobs_are_listed(
    server: LakehouseServer,
) -> None:
    job = str(uuid.uuid4())
    ragged = post_csv(server, f"name=ragged&job={job}", b"a,b\n1,2\n3,4,5\n")
    assert ragged.status_code == 400
    state = HTTP.get(f"{server.url}/v1/ingest/jobs/{job}").json()
    assert state["phase"] == "failed"
    assert state["error"] == {
        "code": "ragged_rows",
        "message": ragged.json()["error"]["message"],
    }
    assert state["result"] is None

    ok = post_csv(server, "name=small", b"a,b\n1,2\n")
    assert ok.status_code == 200
    recent = HTTP.get(f"{server.url}/v1/ingest/jobs").json()
    assert [j["id"] for j in recent[:2]] == [ok.headers["X-Ingest-Job"], job]


def test_job_ids_are_uuids_unique_and_known(server: LakehouseServer) -> None:
    def ingest(job: str) -> httpx.Response:
        return post_csv(server, f"name=ids&mode=replace&job={job}", b"a\n1\n")

    bad = ingest("not-a-uuid")
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_job_id")
    job = str(uuid.uuid4())
    assert ingest(job).status_code == 200
    assert HTTP.get(f"{server.url}/v1/ingest/jobs/{job.upper()}").json()["id"] == job
    again = ingest(job)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "job_exists")
    unknown = HTTP.get(f"{server.url}/v1/ingest/jobs/{uuid.uuid4()}")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "job_not_found")
