"""Storage through the app: every test runs on both backends (local, S3 on moto).

The app in-process (``client``), and the real ``lakehouse serve``
(``server``) where streaming, memory, concurrency and logs can only be
observed on the real thing; first, what the backends do beyond the
ObjectStore contract (tests/contracts/test_object_store.py).
"""

# Tests inspect their own temp directories with plain pathlib calls; blocking
# the test's event loop for that is harmless.
# ruff: noqa: ASYNC240

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from lakehouse.app import create_app
from lakehouse.config import MiB, Settings
from lakehouse.storage import (
    GrantsDuckDBAccess,
    InvalidKey,
    ObjectStore,
    StorageUnavailable,
    UnknownBucket,
    default_secrets_provider,
    open_registry,
    open_store,
)
from tests.support.servers import LakehouseServer, MotoServer
from tests.support.settings import TEST_ACCESS_KEY, TEST_SECRET_KEY, make_settings
from tests.support.storage import digest, eventually, leftovers, new_store, pattern
from tests.support.storage_http import RawRequest, raw_request

ENV_SECRET = "lakehouse-env-secret-value-never-shown-0002"
ENV_ACCESS_KEY = "AKIAENVLAKEHOUSE0002"


# -- helpers ---------------------------------------------------------------------


@pytest.fixture
def s3_settings(moto: MotoServer, tmp_path: Path) -> Settings:
    """For the few tests about S3 itself (errors, credentials)."""
    return make_settings("s3", tmp_path, moto)


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]


# -- the backends beyond the ObjectStore contract ---------------------------------


async def test_store_grants_duckdb_access(store: ObjectStore, settings: Settings) -> None:
    assert isinstance(store, GrantsDuckDBAccess)
    grant = store.duckdb_grant(["datasets/"])
    path = grant.address("datasets/w/x.parquet")
    assert path.startswith(grant.read_roots[0])
    assert grant.read_roots == [grant.root + "datasets/"]
    with pytest.raises(InvalidKey):
        grant.address("datasets/../x")
    if settings.storage.backend == "s3":
        assert path == f"s3://{settings.storage.s3.bucket}/datasets/w/x.parquet"
        assert TEST_SECRET_KEY in grant.secret_sql  # what DuckDB needs to read the bucket
    else:
        assert path == str(Path(settings.storage.data_dir).resolve() / "datasets/w/x.parquet")
        assert grant.secret_sql == ""
    assert TEST_SECRET_KEY not in repr(grant) + str(grant)


async def test_s3_failures_become_storage_unavailable_without_secrets(
    s3_settings: Settings,
) -> None:
    settings = s3_settings
    settings.storage.s3.create_bucket = False
    settings.storage.s3.bucket = "no-such-bucket-here"
    store = new_store(settings)
    await store.start()
    try:
        with pytest.raises(StorageUnavailable) as caught:
            await store.put("x", b"1")
        assert caught.value.status_code == 502
        assert "NoSuchBucket" in caught.value.message
        assert TEST_SECRET_KEY not in str(caught.value.details) + caught.value.message
        assert caught.value.__cause__ is not None  # raised "from" the botocore error
        with pytest.raises(StorageUnavailable):
            await store.list()
    finally:
        await store.close()


# -- HTTP, in process ---------------------------------------------------------------


async def test_put_get_list_delete_over_http(client: AsyncTestClient[Any]) -> None:
    body = bytes(range(256)) * 1000
    put = await client.put("/storage/put/datasets/w/1.parquet", content=body)
    assert put.status_code == 200, put.text
    assert put.json()["key"] == "datasets/w/1.parquet"
    assert put.json()["size"] == len(body)

    got = await client.get("/storage/get/datasets/w/1.parquet")
    assert got.status_code == 200
    assert got.content == body

    listed = await client.get("/storage/list", params={"prefix": "datasets/"})
    assert listed.status_code == 200
    [entry] = listed.json()
    assert set(entry) == {"key", "size", "etag", "last_modified"}
    assert (entry["key"], entry["size"]) == ("datasets/w/1.parquet", len(body))

    empty = await client.put("/storage/put/empty", content=b"")
    assert empty.status_code == 200
    assert empty.json()["size"] == 0
    assert (await client.get("/storage/get/empty")).content == b""

    deleted = await client.delete("/storage/delete/datasets/w/1.parquet")
    assert deleted.status_code == 204
    assert_error(await client.get("/storage/get/datasets/w/1.parquet"), 404, "object_not_found")
    missing = await client.delete("/storage/delete/datasets/w/1.parquet")
    assert_error(missing, 404, "object_not_found")
    assert (await client.get("/storage/list", params={"prefix": "datasets/"})).json() == []


async def test_get_missing_is_404(client: AsyncTestClient[Any]) -> None:
    assert_error(await client.get("/storage/get/no/such/key"), 404, "object_not_found")


BAD_KEYS = [
    "%2e%2e/x",
    "%2E%2E%2Fx",
    "a/%2e%2e/%2e%2e/x",
    "%2Fetc%2Fpasswd",
    "/etc/passwd",
    "a//b",
    "a%00b",
    "a%5Cb",
    "..%5Cx",
    "a%0Ab",
    "k" * 1025,
    "%ff",
]


@pytest.mark.parametrize("raw_key", BAD_KEYS)
async def test_invalid_keys_are_400_and_write_nothing(
    settings: Settings, client: AsyncTestClient[Any], raw_key: str
) -> None:
    before = await leftovers(settings)
    response = await client.put(f"/storage/put/{raw_key}", content=b"payload")
    assert_error(response, 400, "invalid_key")
    assert_error(await client.get(f"/storage/get/{raw_key}"), 400, "invalid_key")
    assert_error(await client.delete(f"/storage/delete/{raw_key}"), 400, "invalid_key")
    assert await leftovers(settings) == before
    outside = Path(settings.storage.data_dir).parent
    assert not (outside / "x").exists()
    assert not (outside / "passwd").exists()


async def test_invalid_list_prefix_is_400(client: AsyncTestClient[Any]) -> None:
    response = await client.get("/storage/list", params={"prefix": "../"})
    assert_error(response, 400, "invalid_key")


async def test_symlink_out_of_the_root_is_refused(local_settings: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    root = Path(local_settings.storage.data_dir)
    root.mkdir(parents=True)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    async with AsyncTestClient(app=create_app(local_settings)) as client:
        assert_error(await client.put("/storage/put/escape/x", content=b"1"), 400, "invalid_key")
        assert_error(await client.get("/storage/get/escape/secret.txt"), 400, "invalid_key")
        assert_error(await client.delete("/storage/delete/escape/secret.txt"), 400, "invalid_key")
        listed = (await client.get("/storage/list")).json()
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "not yours"
    assert listed == []


async def test_oversized_put_is_413_and_leaves_nothing(settings: Settings) -> None:
    # (A body without Content-Length, cut off while streaming: see
    # test_oversized_stream_is_cut_off_early on the real server.)
    settings.storage.max_put_bytes = 1000
    async with AsyncTestClient(app=create_app(settings)) as client:
        announced = await client.put("/storage/put/big/a", content=b"x" * 1001)
        assert_error(announced, 413, "object_too_large")
        ok = await client.put("/storage/put/big/c", content=b"x" * 1000)
        assert ok.status_code == 200
    assert await leftovers(settings, "big/") == ["big/c"]


async def test_health_names_the_bucket_but_no_credentials(
    client: AsyncTestClient[Any], settings: Settings
) -> None:
    body = (await client.get("/health")).json()
    assert body["storage"]["backend"] == settings.storage.backend
    if settings.storage.backend == "s3":
        assert body["storage"]["bucket"] == settings.storage.s3.bucket
    text = msgspec.json.encode(body).decode()
    assert TEST_SECRET_KEY not in text
    assert TEST_ACCESS_KEY not in text


def test_registry_has_one_primary_store(settings: Settings) -> None:
    secrets = default_secrets_provider(settings.secrets.file)
    registry = open_registry(settings.storage, open_store(settings.storage, secrets))
    info = registry.info()
    assert info.name == "primary"
    assert info.backend == settings.storage.backend
    assert registry.get("primary") is registry.get()
    with pytest.raises(UnknownBucket) as caught:
        registry.get("other")
    assert caught.value.status_code == 404
    for shown in (repr(registry), repr(registry.get()), repr(secrets), repr(info)):
        assert TEST_SECRET_KEY not in shown
    credentials = secrets.s3_credentials()
    if credentials is not None:
        assert TEST_SECRET_KEY not in repr(credentials) + str(credentials)


# -- the real server ------------------------------------------------------------------


@pytest.mark.real_executable  # memory is measured: the real process's allocator
def test_50_mib_put_streams_with_bounded_memory(server: LakehouseServer) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    size = 50 * MiB
    with httpx.Client(base_url=server.url, timeout=120) as http:
        # Warm up the code paths (imports, connection pool, one part buffer).
        warm = http.put("/storage/put/warm/up", content=pattern(9 * MiB, seed=9))
        assert warm.status_code == 200, warm.text
        # Reset the peak-RSS counter so VmHWM measures this PUT alone.
        # If that is not allowed, VmHWM includes start-up: the bound only gets stricter.
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        rss_before = server.rss_bytes()
        put = http.put("/storage/put/big/50mib.bin", content=pattern(size, seed=1))
        assert put.status_code == 200, put.text
        growth = server.peak_rss_bytes() - rss_before
        assert put.json()["size"] == size

        got = hashlib.sha256()
        with http.stream("GET", "/storage/get/big/50mib.bin") as response:
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                got.update(chunk)
        assert got.hexdigest() == digest(pattern(size, seed=1))
        listed = http.get("/storage/list", params={"prefix": "big/"}).json()
        assert [(e["key"], e["size"]) for e in listed] == [("big/50mib.bin", size)]
    print(f"server RSS growth during a 50 MiB PUT: {growth / MiB:.1f} MiB")
    assert growth < 25 * MiB, f"RSS grew {growth / MiB:.1f} MiB during a 50 MiB PUT"


async def test_fifth_concurrent_put_is_503_with_retry_after(server: LakehouseServer) -> None:
    """Five PUTs whose bodies stay open: four hold the slots, the fifth is
    refused at once, before its body is complete; the four then finish."""
    headers = {"Transfer-Encoding": "chunked", "Content-Type": "application/octet-stream"}
    requests = [
        await RawRequest.open(server.url, "PUT", f"/storage/put/slow/{i}".encode(), headers)
        for i in range(5)
    ]
    try:
        for request in requests:
            await request.send_chunk(b"0123456789")
        answers = {asyncio.ensure_future(r.response()): r for r in requests}
        # The refused one answers without waiting for its body; the others cannot
        # answer before we finish their bodies. (The timeout only guards a hang.)
        done, pending = await asyncio.wait(answers, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1, "no PUT was refused while five were in flight"
        [refused] = [task.result() for task in done]
        assert refused.status == 503, refused
        assert refused.headers["retry-after"] == "5"
        assert msgspec.json.decode(refused.body)["error"]["code"] == "storage_busy"
        assert len(pending) == 4
        for task in pending:
            await answers[task].send_chunk(b"")
        finished = await asyncio.wait_for(asyncio.gather(*pending), timeout=60)
        assert [answer.status for answer in finished] == [200] * 4
    finally:
        for request in requests:
            await request.close()
    async with httpx.AsyncClient(base_url=server.url) as http:
        listed = (await http.get("/storage/list", params={"prefix": "slow/"})).json()
        assert len(listed) == 4
        assert all(entry["size"] == 10 for entry in listed)
        # The slots were released: the next PUT goes through.
        assert (await http.put("/storage/put/slow/after", content=b"1")).status_code == 200


async def test_oversized_stream_is_cut_off_early(settings: Settings, tmp_path: Path) -> None:
    """The 413 arrives while the client is still sending: the server does not
    read the whole body to find out it is too large."""
    settings.storage.max_put_bytes = 1 * MiB
    server = LakehouseServer(settings, tmp_path).start()
    try:
        request = await RawRequest.open(
            server.url, "PUT", b"/storage/put/cut/off", {"Transfer-Encoding": "chunked"}
        )
        try:
            for _ in range(17):  # 1 MiB + 64 KiB, and no final chunk
                await request.send_chunk(b"z" * (64 * 1024))
            answer = await asyncio.wait_for(request.response(), timeout=60)
        finally:
            await request.close()
        assert answer.status == 413
        assert msgspec.json.decode(answer.body)["error"]["code"] == "object_too_large"
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/storage/list", params={"prefix": "cut/"})).json() == []
        assert await leftovers(settings, "cut/") == []
    finally:
        server.stop()


async def test_client_disconnect_mid_put_leaves_nothing(
    server: LakehouseServer, settings: Settings
) -> None:
    """A client that goes away mid-upload leaves no object, no temp file and no
    unfinished multipart upload (9 MiB: more than one S3 part was started)."""
    request = await RawRequest.open(
        server.url, "PUT", b"/storage/put/gone/x", {"Transfer-Encoding": "chunked"}
    )
    try:
        for chunk in pattern(9 * MiB, chunk=256 * 1024):
            await request.send_chunk(chunk)

        async def in_progress() -> bool:
            return bool(await leftovers(settings, "gone/"))

        # The upload has visibly started: a temp file, or a multipart upload.
        await eventually(in_progress, "the upload started")
    finally:
        await request.close()

    async def cleaned_up() -> bool:
        return await leftovers(settings, "gone/") == []

    await eventually(cleaned_up, "the abandoned upload was removed")
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/storage/get/gone/x")).status_code == 404
        # The slot was given back: four PUTs can still be in flight, so one more works.
        assert (await http.put("/storage/put/gone/y", content=b"1")).status_code == 200
    # A client going away is not a server error.
    assert '"level":"error"' not in server.logs()


TRAVERSALS = [
    b"/storage/put/../x",
    b"/storage/put/a/../../x",
    b"/storage/put/../../../../tmp/x",
    b"/storage/put/%2e%2e/x",
    b"/storage/put/.%2e/%2e./x",
    b"/storage/put//etc/x",
    b"/storage/put/a/./x",
    b"/storage/put/a%00x",
    b"/storage/put/a%5C..%5Cx",
]


async def test_raw_traversal_requests_against_the_real_server(
    server: LakehouseServer, settings: Settings, tmp_path: Path
) -> None:
    """Exact request lines (no client-side ``..`` normalisation) are refused
    and nothing lands anywhere."""
    before_outside = {p for p in tmp_path.rglob("*") if "data" not in p.parts}
    requests = [("PUT", raw_path, b"evil") for raw_path in TRAVERSALS] + [
        ("GET", b"/storage/get/../secrets.toml", b""),
        ("GET", b"/storage/get/%2e%2e/secrets.toml", b""),
        ("DELETE", b"/storage/delete/a/../../secrets.toml", b""),
        ("GET", b"/storage/list?prefix=../", b""),
    ]
    for method, raw_path, body in requests:
        answer = await raw_request(server.url, method, raw_path, body)
        assert answer.status == 400, (raw_path, answer)
        assert msgspec.json.decode(answer.body)["error"]["code"] == "invalid_key"
        assert b"lakehouse-test-secret" not in answer.body
    after_outside = {p for p in tmp_path.rglob("*") if "data" not in p.parts}
    assert after_outside - before_outside <= {tmp_path / "server.log"}
    assert await leftovers(settings) == []


async def test_secrets_never_reach_logs_or_responses(settings: Settings, tmp_path: Path) -> None:
    """The file secret (S3 backend) and an environment secret are in use or in
    reach of the process, yet appear in no response, no log line."""
    server = LakehouseServer(
        settings,
        tmp_path,
        env={"AWS_ACCESS_KEY_ID": ENV_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": ENV_SECRET},
    )
    settings.storage.max_put_bytes = 64
    server.start()
    bodies: list[bytes] = []
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            for method, url, content in [
                ("GET", "/health", None),
                ("PUT", "/storage/put/s/a", b"hello"),
                ("GET", "/storage/get/s/a", None),
                ("GET", "/storage/list", None),
                ("GET", "/storage/get/s/missing", None),
                ("PUT", "/storage/put/%2e%2e/x", b"x"),
                ("PUT", "/storage/put/s/big", b"y" * 65),
                ("DELETE", "/storage/delete/s/a", None),
                ("GET", "/docs/openapi.json", None),
            ]:
                response = await http.request(method, url, content=content)
                assert response.status_code < 500, (url, response.text)
                bodies.append(response.content + str(response.headers).encode())
    finally:
        server.stop()
    logs = server.logs()
    assert "storage_backend" in logs  # the log was captured at all
    for secret in (TEST_SECRET_KEY, ENV_SECRET):
        assert secret not in logs
        assert all(secret.encode() not in body for body in bodies)


async def test_s3_credentials_from_the_environment(s3_settings: Settings, tmp_path: Path) -> None:
    """No secrets file: the standard AWS variables are used, and never shown."""
    settings = s3_settings
    os.remove(settings.secrets.file)
    server = LakehouseServer(
        settings,
        tmp_path,
        env={"AWS_ACCESS_KEY_ID": ENV_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": ENV_SECRET},
    ).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            put = await http.put("/storage/put/env/a", content=b"via env")
            assert put.status_code == 200, put.text
            got = await http.get("/storage/get/env/a")
            assert got.content == b"via env"
            health = await http.get("/health")
            assert ENV_SECRET not in health.text + put.text
    finally:
        server.stop()
    assert ENV_SECRET not in server.logs()
