"""S3 failing under a real `lakehouse serve`: storage API, ingest, sweep and /health.

The server reaches moto only through the fault proxy (tests/support/fault_proxy.py),
with a small retry budget (3 attempts, 1.5 s timeouts) so each fault costs seconds.
A fault shorter than the budget is absorbed by botocore's retries (the proxy's
``injected`` counter shows they happened); a longer one is a 503 with Retry-After
(502 for what only an operator can fix), leaves no dataset pointing at a missing
object, nothing the sweep would not remove, no unfinished multipart upload; and
once the fault clears the same server works again. What each fault leaves is
listed in docs/adr/0015-storage-faults.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from lakehouse.config import MiB, Settings
from tests.support.fault_proxy import Fault, FaultProxy
from tests.support.http import HTTP
from tests.support.servers import LakehouseServer, MotoServer
from tests.support.settings import TEST_ACCESS_KEY, TEST_SECRET_KEY, make_settings

PUT = frozenset({"PUT"})
GET = frozenset({"GET"})
DATA_PUT = {"methods": PUT, "path_contains": "/data/"}
"""The ingest's upload of its Parquet file (aiobotocore): datasets/<name>/data/<id>.parquet."""
METADATA_PUT = {"methods": PUT, "path_contains": "/metadata/"}
"""The commit's Iceberg metadata files (pyiceberg's FileIO), written after the data file."""
MOTO_INITIATED = b"2010-11-10T20:48:33.000Z"
"""What moto says of every multipart upload's start, whenever it began."""

CSV = b"id,city,amount\n1,Chicago,12.5\n2,Peoria,7.25\n3,Joliet,3.0\n"


def fault_settings(tmp_path: Path, moto: MotoServer, proxy: FaultProxy) -> Settings:
    settings = make_settings("s3", tmp_path, moto)
    s3 = settings.storage.s3
    s3.endpoint_url = proxy.endpoint_url
    s3.max_attempts = 3
    s3.connect_timeout_seconds = 1.5
    s3.read_timeout_seconds = 1.5
    s3.multipart_chunk_bytes = 5 * MiB
    settings.catalog.orphan_grace_seconds = 0
    settings.logging.level = "info"
    return settings


@pytest.fixture(scope="module")
def server(
    moto: MotoServer, proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LakehouseServer]:
    workdir = tmp_path_factory.mktemp("s3-faults")
    # The console script itself: its exit after S3 uploads and faults is checked below
    # (a fork ends without the interpreter's shutdown, tests/support/zygote.py).
    server = LakehouseServer(fault_settings(workdir, moto, proxy), workdir, exec_=True).start()
    yield server
    assert server.stop() == 0, server.logs()[-3000:]
    # Every fault was logged, none with the credentials.
    logs = server.logs()
    assert "S3 request failed" in logs
    assert TEST_SECRET_KEY not in logs


@pytest.fixture
def http(server: LakehouseServer, proxy: FaultProxy) -> Iterator[httpx.Client]:
    proxy.clear()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client
    proxy.clear()


@pytest.fixture
def moto_s3(moto: MotoServer) -> Any:
    """A client straight to moto (no proxy): what the bucket really holds."""
    return boto3.client(
        "s3",
        endpoint_url=moto.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=TEST_ACCESS_KEY,
        aws_secret_access_key=TEST_SECRET_KEY,
    )


def keys(moto_s3: Any, bucket: str, prefix: str) -> list[str]:
    listing = moto_s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def uploads(moto_s3: Any, bucket: str) -> list[str]:
    listing = moto_s3.list_multipart_uploads(Bucket=bucket)
    return [item["Key"] for item in listing.get("Uploads", [])]


def ingest(http: httpx.Client, name: str, mode: str = "") -> httpx.Response:
    query = f"name={name}" + (f"&mode={mode}" if mode else "")
    return http.post(f"/v1/ingest?{query}", content=CSV, headers={"Content-Type": "text/csv"})


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert TEST_SECRET_KEY not in response.text
    assert TEST_ACCESS_KEY not in response.text
    return error


def assert_retry_after(response: httpx.Response, seconds: str | None) -> None:
    assert response.headers.get("Retry-After") == seconds


# -- the storage API: S3's answers mapped precisely, reads retried -------------------------


@pytest.mark.parametrize(
    ("fault", "status", "code", "retry_after"),
    [
        (Fault.error(503, "SlowDown", methods=GET), 503, "storage_throttled", "10"),
        (Fault.error(500, "InternalError", methods=GET), 503, "storage_unavailable", "5"),
        (Fault.error(403, "AccessDenied", methods=GET), 502, "storage_access_denied", None),
        (
            Fault.error(412, "PreconditionFailed", methods=GET),
            409,
            "storage_precondition_failed",
            None,
        ),
        (Fault.error(404, "NoSuchBucket", methods=GET), 502, "storage_misconfigured", None),
        # Reset before the first byte of the object: still time for an error status.
        (Fault.reset_response(after_bytes=0, methods=GET), 503, "storage_unavailable", "5"),
    ],
    ids=[
        "SlowDown",
        "InternalError",
        "AccessDenied",
        "PreconditionFailed",
        "NoSuchBucket",
        "reset",
    ],
)
def test_storage_api_says_what_s3_said(
    http: httpx.Client,
    proxy: FaultProxy,
    fault: Fault,
    status: int,
    code: str,
    retry_after: str | None,
) -> None:
    body = bytes(range(256)) * 40
    assert http.put("/storage/put/faults/mapped.bin", content=body).status_code == 200
    with proxy.faulty(fault):
        response = http.get("/storage/get/faults/mapped.bin")
    error = assert_error(response, status, code)
    assert_retry_after(response, retry_after)
    assert "GetObject" in error["message"]
    assert "/tmp" not in error["message"]
    # The fault cleared: the same server reads the object again, no restart.
    assert http.get("/storage/get/faults/mapped.bin").content == body


def test_a_read_cut_mid_body_breaks_the_response_never_shortens_it(
    http: httpx.Client, proxy: FaultProxy
) -> None:
    """Once the 200 is on its way, the client can only be told by a broken body: the
    chunked response ends without its last chunk, so no client takes it as whole."""
    body = bytes(range(256)) * 40
    assert http.put("/storage/put/faults/cut.bin", content=body).status_code == 200
    cut = Fault.reset_response(after_bytes=1000, methods=GET)
    with proxy.faulty(cut), pytest.raises(httpx.RemoteProtocolError, match="incomplete"):
        http.get("/storage/get/faults/cut.bin")
    assert http.get("/storage/get/faults/cut.bin").content == body


def test_a_missing_object_is_still_a_404(http: httpx.Client) -> None:
    assert_error(http.get("/storage/get/faults/never-written"), 404, "object_not_found")


def test_reads_lists_and_writes_ride_out_a_short_fault(
    http: httpx.Client, proxy: FaultProxy
) -> None:
    body = b"x" * 5000
    before = proxy.injected
    proxy.inject(Fault.error(503, "SlowDown", times=2, methods=PUT))
    assert http.put("/storage/put/faults/retried.bin", content=body).status_code == 200
    proxy.inject(Fault.error(500, "InternalError", times=1, methods=GET))
    assert http.get("/storage/get/faults/retried.bin").content == body
    proxy.inject(Fault.reset_response(after_bytes=20, times=1, methods=GET))
    listed = http.get("/storage/list", params={"prefix": "faults/retried"})
    assert [o["key"] for o in listed.json()] == ["faults/retried.bin"]
    assert proxy.injected - before == 4  # every fault was applied, and retried past


def test_a_failed_multipart_upload_is_aborted(
    http: httpx.Client, proxy: FaultProxy, server: LakehouseServer, moto_s3: Any
) -> None:
    bucket = server.settings.storage.s3.bucket
    body = b"m" * (6 * MiB)  # two parts of 5 MiB and 1 MiB
    for fault in (
        Fault.error(500, "InternalError", methods=PUT, path_contains="partNumber=2"),
        Fault.reset_request(after_bytes=64 * 1024, methods=PUT, path_contains="partNumber=1"),
    ):
        with proxy.faulty(fault):
            response = http.put("/storage/put/faults/big.bin", content=body)
        assert_error(response, 503, "storage_unavailable")
        assert uploads(moto_s3, bucket) == []
        assert keys(moto_s3, bucket, "faults/big") == []
    assert http.put("/storage/put/faults/big.bin", content=body).json()["size"] == len(body)


def test_a_completed_upload_whose_answer_was_lost_is_a_200(
    http: httpx.Client, proxy: FaultProxy, server: LakehouseServer, moto_s3: Any
) -> None:
    """S3 completed the upload but the answer never arrived: botocore's retry hears
    NoSuchUpload, and the object that exists says the write succeeded (not a 404)."""
    bucket = server.settings.storage.s3.bucket
    body = b"c" * (6 * MiB)
    lost = Fault.reset_response(times=1, methods=frozenset({"POST"}), path_contains="uploadId=")
    injected = proxy.injected
    with proxy.faulty(lost):
        response = http.put("/storage/put/faults/completed.bin", content=body)
    assert proxy.injected == injected + 1
    assert response.status_code == 200, response.text
    assert response.json()["size"] == len(body)
    assert http.get("/storage/get/faults/completed.bin").content == body
    assert uploads(moto_s3, bucket) == []


def test_the_abort_after_a_failed_upload_does_not_spend_the_budget_again(
    http: httpx.Client, proxy: FaultProxy, server: LakehouseServer, moto_s3: Any
) -> None:
    """The upload already failed on an S3 that fails: one attempt to abort it, and what is
    left is the sweep's."""
    bucket = server.settings.storage.s3.bucket
    body = b"q" * (6 * MiB)
    failing = Fault.error(
        500, "InternalError", methods=frozenset({"PUT", "DELETE"}), path_contains="uploadId="
    )
    injected = proxy.injected
    with proxy.faulty(failing):
        response = http.put("/storage/put/faults/abort.bin", content=body)
    assert_error(response, 503, "storage_unavailable")
    attempts = server.settings.storage.s3.max_attempts
    assert proxy.injected - injected == attempts + 1  # the part's budget, one abort
    assert uploads(moto_s3, bucket) == ["faults/abort.bin"]
    # The sweep of the lakehouse's prefixes leaves it (a raw storage API key): abort it here.
    [upload] = moto_s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    moto_s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


# -- ingest ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault.error(503, "SlowDown", times=2, **DATA_PUT),
        Fault.error(500, "InternalError", times=2, **DATA_PUT),
        Fault.reset_request(after_bytes=100, times=2, **DATA_PUT),
        Fault.stall(times=1, **DATA_PUT),
        Fault.error(503, "SlowDown", times=1, **METADATA_PUT),
    ],
    ids=["SlowDown", "InternalError", "reset-request", "stall", "SlowDown-at-commit"],
)
def test_an_ingest_rides_out_a_fault_shorter_than_the_budget(
    http: httpx.Client, proxy: FaultProxy, fault: Fault
) -> None:
    times = fault.times
    name = f"short_{fault.kind}_{int(time.monotonic() * 1000)}"
    before = proxy.injected
    with proxy.faulty(fault):
        response = ingest(http, name)
    assert response.status_code == 200, response.text
    assert response.json()["row_count"] == 3
    assert proxy.injected - before == times  # the fault was met, and retried past
    rows = http.post("/v1/sql", json={"sql": f"SELECT sum(id) AS s FROM {name}"}).json()
    assert rows == [{"s": 6}]


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault.error(503, "SlowDown", **DATA_PUT), "storage_throttled"),
        (Fault.error(500, "InternalError", **DATA_PUT), "storage_unavailable"),
        (Fault.reset_request(after_bytes=100, **DATA_PUT), "storage_unavailable"),
        (Fault.stall(**DATA_PUT), "storage_unavailable"),
        (Fault.error(503, "SlowDown", **METADATA_PUT), "storage_unavailable"),
    ],
    ids=["SlowDown", "InternalError", "reset-request", "stall", "SlowDown-at-commit"],
)
def test_an_ingest_past_the_budget_is_a_503_and_leaves_nothing(
    http: httpx.Client,
    proxy: FaultProxy,
    server: LakehouseServer,
    moto_s3: Any,
    fault: Fault,
    code: str,
) -> None:
    bucket = server.settings.storage.s3.bucket
    name = f"long_{fault.kind}_{int(time.monotonic() * 1000)}"
    started = time.monotonic()
    with proxy.faulty(fault):
        response = ingest(http, name)
    # Bounded by the budget: 3 attempts of at most 1.5 s each, plus backoff.
    assert time.monotonic() - started < 20
    assert_error(response, 503, code)
    assert int(response.headers["Retry-After"]) > 0
    assert_error(http.get(f"/catalog/manifest/{name}"), 404, "dataset_not_found")
    http.post("/admin/gc").raise_for_status()
    assert keys(moto_s3, bucket, f"datasets/{name}/") == []
    assert uploads(moto_s3, bucket) == []
    # The fault cleared: the same server ingests again.
    assert ingest(http, name).json()["version"] == 1


def test_an_append_past_the_budget_leaves_the_previous_version(
    http: httpx.Client, proxy: FaultProxy, server: LakehouseServer, moto_s3: Any
) -> None:
    bucket = server.settings.storage.s3.bucket
    name = f"append_{int(time.monotonic() * 1000)}"
    first = ingest(http, name).json()
    for fault in (
        Fault.error(503, "SlowDown", **DATA_PUT),
        Fault.error(500, "InternalError", **METADATA_PUT),
    ):
        with proxy.faulty(fault):
            assert ingest(http, name, mode="append").status_code == 503
        manifest = http.get(f"/catalog/manifest/{name}").json()
        assert (manifest["version"], manifest["objects"]) == (1, first["objects"])
        http.post("/admin/gc").raise_for_status()
        assert keys(moto_s3, bucket, f"datasets/{name}/data/") == first["objects"]
    assert ingest(http, name, mode="append").json()["version"] == 2
    rows = http.post("/v1/sql", json={"sql": f"SELECT count(*) AS n FROM {name}"}).json()
    assert rows == [{"n": 6}]


# -- /health -----------------------------------------------------------------------------


def health_until(http: httpx.Client, wanted: str) -> dict[str, Any]:
    """Poll /health until storage says ``wanted``; each answer comes quickly."""
    deadline = time.monotonic() + 20
    while True:
        started = time.monotonic()
        response = http.get("/health")
        # The probe never holds /health up past its 3 s timeout (plus a margin for a
        # loaded machine).
        assert time.monotonic() - started < 3 + 3
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        if body["storage"]["status"] == wanted or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("fault", "reasons"),
    [
        (Fault.error(503, "SlowDown"), {"SlowDown"}),
        (Fault.error(403, "AccessDenied"), {"AccessDenied"}),
        (Fault.stall(), {"ReadTimeoutError", "timeout"}),
        # Answers no probe expects: still a 200 saying degraded, never a 500.
        (Fault.error(404, "NoSuchKey"), {"object_not_found"}),
        (Fault.error(412, "PreconditionFailed"), {"PreconditionFailed"}),
    ],
    ids=["SlowDown", "AccessDenied", "stall", "NoSuchKey", "PreconditionFailed"],
)
def test_health_reports_storage_degraded_and_recovers(
    http: httpx.Client, proxy: FaultProxy, fault: Fault, reasons: set[str]
) -> None:
    assert health_until(http, "ok")["status"] == "ok"
    with proxy.faulty(fault):
        degraded = health_until(http, "degraded")
    assert degraded["status"] == "degraded"
    assert degraded["storage"]["status"] == "degraded"
    assert degraded["storage"]["reason"] in reasons
    recovered = health_until(http, "ok")
    assert (recovered["status"], recovered["storage"]) == (
        "ok",
        {"backend": "s3", "status": "ok", "bucket": recovered["storage"]["bucket"]},
    )


# -- uploads a dead process left ---------------------------------------------------------


def test_uploads_a_dead_process_left_are_aborted_at_start_up_past_the_grace(
    moto: MotoServer, fault_proxy: FaultProxy, tmp_path: Path, moto_s3: Any
) -> None:
    settings = fault_settings(tmp_path, moto, fault_proxy)
    settings.catalog.orphan_grace_seconds = 3600
    bucket = settings.storage.s3.bucket
    moto_s3.create_bucket(Bucket=bucket)
    # What a SIGKILLed server leaves: an upload with a part, never completed.
    upload = moto_s3.create_multipart_upload(Bucket=bucket, Key="datasets/w/data/dead.parquet")
    moto_s3.upload_part(
        Bucket=bucket,
        Key="datasets/w/data/dead.parquet",
        UploadId=upload["UploadId"],
        PartNumber=1,
        Body=b"p" * 1024,
    )
    # Another tool's upload in a shared bucket, outside the lakehouse's prefixes.
    moto_s3.create_multipart_upload(Bucket=bucket, Key="other-tool/upload.bin")
    # Younger than the grace period (moto's fixed date made "now"): kept.
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()).encode()
    fault_proxy.rewrite(MOTO_INITIATED, now)
    server = LakehouseServer(settings, tmp_path).start()
    assert server.stop() == 0
    assert uploads(moto_s3, bucket) == ["datasets/w/data/dead.parquet", "other-tool/upload.bin"]
    # Older than the grace period (moto's own date, in 2010): aborted at start-up.
    fault_proxy.rewrite(MOTO_INITIATED, None)
    server.start()
    try:
        assert uploads(moto_s3, bucket) == ["other-tool/upload.bin"]
    finally:
        assert server.stop() == 0


def test_start_up_does_not_need_permission_to_abort_uploads(
    moto: MotoServer, fault_proxy: FaultProxy, tmp_path: Path, moto_s3: Any
) -> None:
    """Least-privilege credentials without s3:ListBucketMultipartUploads: the sweep at
    start-up logs it and the server starts."""
    settings = fault_settings(tmp_path, moto, fault_proxy)
    fault_proxy.inject(Fault.error(403, "AccessDenied", methods=GET, path_contains="?uploads"))
    server = LakehouseServer(settings, tmp_path).start()
    try:
        assert fault_proxy.injected >= 1
        assert HTTP.get(f"{server.url}/health").json()["status"] == "ok"
    finally:
        assert server.stop() == 0
    assert "could not look for stale uploads to abort" in server.logs()
