"""Ingest of compressed uploads, TSV, format detection and ``?source=`` through the app
in-process, on both storage backends: the rows read back from the stored Parquet, the
format and compression the response names, and for bad input a 4xx that leaves nothing
registered, no object and no spool file.

(Detection and decompression without a backend: tests/unit/test_ingest_detect.py.)
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from litestar.testing import AsyncTestClient

from lakehouse.app import create_app
from lakehouse.config import Settings
from lakehouse.storage import ObjectStore
from tests.support.ingest import assert_nothing_left, read_dataset
from tests.support.xlsx import xlsx_bytes

Client = AsyncTestClient  # type: ignore[type-arg]

CSV = b"id,name\n1,Ada\n2,Grace\n"
ROWS = [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}]


async def history(client: Client, name: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/datasets/{name}/history")
    assert response.status_code == 200, response.text
    versions: list[dict[str, Any]] = response.json()["versions"]
    return versions


async def test_gzip_csv_and_zstd_tsv_are_ingested(client: Client, store: ObjectStore) -> None:
    gz = gzip.compress(CSV)
    response = await client.post(
        "/v1/ingest?name=gz", files={"file": ("people.csv.gz", gz, "application/gzip")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["ingest"]["format"], body["ingest"]["compression"]) == ("csv", "gzip")
    assert body["ingest"]["bytes_read"] == len(gz)
    assert (await read_dataset(store, body)).to_pylist() == ROWS
    [version] = await history(client, "gz")
    assert version["source_file"] == "people.csv.gz"
    assert version["source_sha256"] == hashlib.sha256(gz).hexdigest()  # the bytes sent

    # A tab inside the header of a TSV whose fields hold commas: the tab is taken, not sniffed.
    tsv = b"a,b\tc\n1,2\t3\n4,5\t6\n"
    zst = zstandard.ZstdCompressor().compress(tsv)
    response = await client.post(
        "/v1/ingest?name=zst",
        content=zst,
        headers={"content-type": "text/tab-separated-values", "content-encoding": "zstd"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["ingest"]["format"], body["ingest"]["compression"]) == ("tsv", "zstd")
    assert body["ingest"]["delimiter"] == "\t"
    assert (await read_dataset(store, body)).to_pylist() == [
        {"a,b": "1,2", "c": 3},
        {"a,b": "4,5", "c": 6},
    ]


async def test_gzip_csv_is_recognised_by_any_hint_or_none(
    client: Client, store: ObjectStore
) -> None:
    gz = gzip.compress(CSV)
    sends: dict[str, dict[str, Any]] = {
        "file_name": {"files": {"file": ("people.csv.gz", gz, "application/octet-stream")}},
        "content_type": {"content": gz, "headers": {"content-type": "application/gzip"}},
        "content_encoding": {
            "content": gz,
            "headers": {"content-type": "text/csv", "content-encoding": "gzip"},
        },
        "disposition": {
            "content": gz,
            "headers": {"content-disposition": 'attachment; filename="people.csv.gz"'},
        },
        "magic_only": {"content": gz},
    }
    for how, send in sends.items():
        response = await client.post(f"/v1/ingest?name=by_{how}", **send)
        assert response.status_code == 200, (how, response.text)
        body = response.json()
        assert (body["ingest"]["format"], body["ingest"]["compression"]) == ("csv", "gzip"), how
        assert (await read_dataset(store, body)).to_pylist() == ROWS, how


async def test_bad_compression_is_a_4xx_and_leaves_nothing(
    client: Client, store: ObjectStore, settings: Settings
) -> None:
    response = await client.post(
        "/v1/ingest?name=plain", content=CSV, headers={"content-encoding": "gzip"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_compression"
    response = await client.post(
        "/v1/ingest?name=plain", content=CSV, headers={"content-encoding": "br"}
    )
    assert response.status_code == 415, response.text
    gz = gzip.compress(CSV * 200)
    for dry_run in ("", "&dry_run=true"):
        response = await client.post(
            f"/v1/ingest?name=cut{dry_run}", files={"file": ("people.csv.gz", gz[: len(gz) // 2])}
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_compression"
        assert "cut short" in response.json()["error"]["message"]
    await assert_nothing_left(client, store, settings)


@pytest.fixture
async def capped_client(settings: Settings) -> AsyncIterator[Client]:
    settings.ingest.max_decompressed_bytes = 1024 * 1024
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


async def test_zip_bomb_is_413_and_leaves_nothing(
    capped_client: Client, store: ObjectStore, settings: Settings
) -> None:
    bomb = gzip.compress(b"a\n" + bytes(64 * 1024 * 1024))  # 64 MiB in about 64 KiB
    assert len(bomb) < 128 * 1024
    for dry_run in ("", "&dry_run=true"):
        response = await capped_client.post(
            f"/v1/ingest?name=bomb{dry_run}", files={"file": ("bomb.csv.gz", bomb)}
        )
        assert response.status_code == 413, response.text
        error = response.json()["error"]
        assert error["code"] == "decompressed_too_large"
        assert error["details"] == {"max_decompressed_bytes": 1024 * 1024}
        assert "decompresses to more than" in error["message"]
    await assert_nothing_left(capped_client, store, settings)
    # The same bomb already in storage, read from there: the same 413; the object stays.
    await store.put("exports/bomb.csv.gz", bomb)
    response = await capped_client.post("/v1/ingest?name=bomb&source=exports/bomb.csv.gz")
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "decompressed_too_large"
    await assert_nothing_left(capped_client, store, settings)
    assert await store.get("exports/bomb.csv.gz") == bomb
    # An xlsx is a zip: one whose parts declare more than the cap is refused unread.
    workbook = io.BytesIO(xlsx_bytes({"s": [["a"], [1]]}))
    with zipfile.ZipFile(workbook, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/media/zeros.bin", bytes(64 * 1024 * 1024))
    assert len(workbook.getvalue()) < 128 * 1024
    response = await capped_client.post(
        "/v1/ingest?name=bomb", files={"file": ("bomb.xlsx", workbook.getvalue())}
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "decompressed_too_large"
    await assert_nothing_left(capped_client, store, settings)
    # So is a Parquet file whose pages declare more than the cap uncompressed.
    sink = io.BytesIO()
    pq.write_table(
        pa.table({"s": ["b" * 100] * 20_000}), sink, compression="zstd", use_dictionary=False
    )
    response = await capped_client.post(
        "/v1/ingest?name=bomb", files={"file": ("bomb.parquet", sink.getvalue())}
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "decompressed_too_large"
    await assert_nothing_left(capped_client, store, settings)
    # The cap is on what the upload inflates to, not on plain uploads.
    plain = b"id\n" + b"1\n" * 600_000
    response = await capped_client.post("/v1/ingest?name=plain", files={"file": ("p.csv", plain)})
    assert response.status_code == 200, response.text


def parquet_bytes() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2], "name": ["Ada", "Grace"]}), sink)
    return sink.getvalue()


MISMATCHES = [
    ("", {"file": ("report.xlsx", CSV, "application/octet-stream")}, "xlsx", "csv"),
    ("&format=csv", {"file": ("data", parquet_bytes(), "application/octet-stream")}, "csv",
     "parquet"),
    ("", {"file": ("data.csv", parquet_bytes(), "text/csv")}, "csv", "parquet"),
    ("&dry_run=true", {"file": ("report.xlsx", CSV)}, "xlsx", "csv"),
]  # fmt: skip


async def test_bytes_contradicting_the_declared_format_are_400(
    client: Client, store: ObjectStore, settings: Settings
) -> None:
    for query, files, declared, detected in MISMATCHES:
        response = await client.post(f"/v1/ingest?name=mismatch{query}", files=files)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "format_mismatch"
        assert (error["details"]["declared"], error["details"]["detected"]) == (declared, detected)
        assert declared in error["message"]
        assert detected in error["message"]
    await assert_nothing_left(client, store, settings)


async def test_dry_run_of_a_compressed_upload_names_format_and_compression(
    client: Client, store: ObjectStore, settings: Settings
) -> None:
    zst = zstandard.ZstdCompressor().compress(b"id\tname\n1\tAda\n")
    response = await client.post(
        "/v1/ingest?name=preview&dry_run=true", files={"file": ("p.tsv.zst", zst)}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["format"], body["compression"], body["bytes_read"]) == ("tsv", "zstd", len(zst))
    assert body["sample"] == [[1, "Ada"]]
    await assert_nothing_left(client, store, settings)


async def test_source_ingests_an_object_already_in_storage(
    client: Client, store: ObjectStore
) -> None:
    gz = gzip.compress(CSV)
    put = await client.put("/storage/put/exports/people.csv.gz", content=gz)
    assert put.status_code == 200, put.text
    preview = await client.post("/v1/ingest?name=people&source=exports/people.csv.gz&dry_run=1")
    assert preview.status_code == 200, preview.text
    assert preview.json()["sample"] == [[1, "Ada"], [2, "Grace"]]
    assert (await client.get("/catalog/list")).json()["datasets"] == []

    response = await client.post("/v1/ingest?name=people&source=exports/people.csv.gz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["ingest"]["format"], body["ingest"]["compression"]) == ("csv", "gzip")
    assert (await read_dataset(store, body)).to_pylist() == ROWS
    [version] = await history(client, "people")
    assert version["source_file"] == "exports/people.csv.gz"
    assert version["source_sha256"] == hashlib.sha256(gz).hexdigest()
    assert await store.get("exports/people.csv.gz") == gz  # the source stays


FORBIDDEN_SOURCES = [
    "_catalog/manifests/x.parquet", "_tmp/ingest/x", "_state/catalog.db", "datasets/a/x.csv",
    "../etc/passwd", "a/../../b", "/abs.csv", "a//b.csv",
]  # fmt: skip


async def test_source_refusals_leave_nothing(
    client: Client, store: ObjectStore, settings: Settings
) -> None:
    # Outside the data area (or not a key): 403, before anything is read.
    for key in FORBIDDEN_SOURCES:
        for dry_run in ("false", "true"):
            params = {"name": "nope", "source": key, "dry_run": dry_run}
            response = await client.post("/v1/ingest", params=params)
            assert response.status_code == 403, (key, response.text)
            assert response.json()["error"]["code"] == "source_forbidden"
            assert str(settings.storage.data_dir) not in response.text
    # A key with no object: 404; a key and a body: 400.
    for dry_run in ("", "&dry_run=true"):
        missing = await client.post(f"/v1/ingest?name=nope&source=exports/none.csv{dry_run}")
        assert missing.status_code == 404, missing.text
        both = await client.post(
            f"/v1/ingest?name=nope&source=exports/a.csv{dry_run}",
            content=CSV,
            headers={"content-type": "text/csv"},
        )
        assert both.status_code == 400, both.text
        assert both.json()["error"]["code"] == "source_with_body"
    await assert_nothing_left(client, store, settings)


def arrow_bytes(stream: bool) -> bytes:
    sink = io.BytesIO()
    table = pa.table({"id": [1, 2], "name": ["Ada", "Grace"]})
    opener = pa.ipc.new_stream if stream else pa.ipc.new_file
    with opener(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


# Each format as a user would send it (the README's table): a multipart file with its
# name, and nothing else to say what it is.
BY_NAME = [
    ("people.ndjson", b'{"id": 1, "name": "Ada"}\n{"id": 2, "name": "Grace"}\n', "ndjson"),
    ("people.jsonl", b'{"id": 1, "name": "Ada"}\n{"id": 2, "name": "Grace"}\n', "ndjson"),
    ("people.json", b'[{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}]', "json"),
    ("people.parquet", parquet_bytes(), "parquet"),
    ("people.arrow", arrow_bytes(stream=False), "arrow"),
    ("people.arrows", arrow_bytes(stream=True), "arrow"),
    ("people.xlsx", xlsx_bytes({"s": [["id", "name"], [1, "Ada"], [2, "Grace"]]}), "xlsx"),
    ("people.ndjson.gz", gzip.compress(b'{"id": 1, "name": "Ada"}\n{"id": 2, "name": "Grace"}\n'),
     "ndjson"),
]  # fmt: skip


@pytest.mark.parametrize(("file_name", "data", "fmt"), BY_NAME, ids=[n for n, _, _ in BY_NAME])
async def test_every_format_is_told_by_its_file_name(
    client: Client, store: ObjectStore, file_name: str, data: bytes, fmt: str
) -> None:
    response = await client.post("/v1/ingest?name=people", files={"file": (file_name, data)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ingest"]["format"] == fmt
    assert [(c["name"], c["type"]) for c in body["schema"]] == [
        ("id", "BIGINT"),
        ("name", "VARCHAR"),
    ]
    assert (await read_dataset(store, body)).to_pylist() == ROWS
