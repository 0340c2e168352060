"""Ingest limits on the real `lakehouse serve` (ADR 0011): a chunked CSV over the
cap is refused with 413 while the client is still sending and leaves nothing (also when
a bad row was read before the cap was crossed), and
the server's memory stays flat while it spools and converts a large upload (CSV and
Parquet).

(The 503 for an ingest while another's body is still open is
``test_ingest_streaming.py::test_one_ingest_too_many_is_503_with_retry_after``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from lakehouse.config import Settings
from tests.support.ingest import spool_dir
from tests.support.servers import LakehouseServer
from tests.support.storage_http import RawRequest

MiB = 1024 * 1024


def csv_rows(count: int, start: int = 0, width: int = 500) -> bytes:
    return b"".join(b"%d,%s\n" % (i, b"x" * width) for i in range(start, start + count))


def body_start(kind: str) -> tuple[str, bytes]:
    """(Content-Type, the first bytes) of an upload: a plain CSV's header, or a body with a
    bad row early, a CSV's in the inference sample or past it, a JSON Lines file's (a
    format read whole, after the spool)."""
    if kind == "ndjson_bad_early":
        return "application/x-ndjson", b'{"id": 1}\n{"id": \n'
    if kind == "csv":
        return "text/csv", b"id,text\n"
    row = 2 if kind == "csv_bad_in_the_sample" else 3_000
    return "text/csv", b"id,text\n" + csv_rows(row - 1) + b"1,2,3\n"  # one field too many


@pytest.mark.parametrize(
    "kind", ["csv", "csv_bad_in_the_sample", "csv_bad_past_the_sample", "ndjson_bad_early"]
)
async def test_chunked_ingest_over_the_cap_is_413_before_the_body_ends(
    local_settings: Settings, tmp_path: Path, kind: str
) -> None:
    """Refused while the client is still sending, leaving nothing. The CSV is read while
    it arrives (ADR 0009), so a bad row early in the file is met before the cap is: the
    answer is still the upload's own 413, as when the whole upload was spooled before
    anything read it. A format read whole is not converted from what arrived of it."""
    local_settings.ingest.max_upload_bytes = 3 * MiB
    local_settings.ingest.sample_rows = 100
    content_type, first = body_start(kind)
    server = LakehouseServer(local_settings, tmp_path).start()
    try:
        request = await RawRequest.open(
            server.url,
            "POST",
            b"/v1/ingest?name=too_big",
            {"Transfer-Encoding": "chunked", "Content-Type": content_type},
        )
        try:
            await request.send_chunk(first)
            for start in range(0, 8_000, 120):  # 3.8 MiB more in 60 KiB chunks, no final chunk
                await request.send_chunk(csv_rows(120, start))
            answer = await asyncio.wait_for(request.response(), timeout=30)
        finally:
            await request.close()
        assert answer.status == 413, answer
        assert msgspec.json.decode(answer.body)["error"]["code"] == "upload_too_large"
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/catalog/list")).json()["datasets"] == []
            assert (await http.get("/storage/list", params={"prefix": "datasets/"})).json() == []
            # Not a broken server: a small ingest right after goes through.
            ok = await http.post(
                "/v1/ingest?name=small", content=b"a\n1\n", headers={"content-type": "text/csv"}
            )
            assert ok.status_code == 200, ok.text
        spool = spool_dir(local_settings)
        assert not spool.exists() or list(spool.iterdir()) == []
    finally:
        server.stop()


async def csv_body(mib: int) -> AsyncIterator[bytes]:
    """A CSV of ``mib`` MiB with 48-byte rows, in 1 MiB chunks."""
    yield b"id,text\n"
    rows = MiB // len(csv_rows(1, 10**6, 40))
    for n in range(mib):
        yield csv_rows(rows, 10**6 + n * rows, 40)


async def test_a_64_mib_ingest_stays_within_a_memory_bound(
    local_settings: Settings, tmp_path: Path
) -> None:
    """The body is spooled, not held (ADR 0009, 0011): the server's peak RSS grows
    by less than 1.5x the upload. (The conversion holds up to three row groups,
    parse buffers and allocator slack: ~70 MiB here; a body held in memory as
    well made it ~150 MiB.)"""
    # Memory is measured: the real process and its allocator, not a fork (zygote.py).
    server = LakehouseServer(local_settings, tmp_path, exec_=True).start()
    try:
        assert server.proc is not None
        headers = {"content-type": "text/csv"}
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
            # Warm up the code paths (imports, the Parquet writer, DuckDB's view).
            warm = await http.post("/v1/ingest?name=warm", content=csv_body(4), headers=headers)
            assert warm.status_code == 200, warm.text
            # Reset the peak-RSS counter so VmHWM measures this ingest alone.
            await asyncio.to_thread(Path(f"/proc/{server.proc.pid}/clear_refs").write_text, "5")
            before = server.rss_bytes()
            answer = await http.post("/v1/ingest?name=large", content=csv_body(64), headers=headers)
            growth = server.peak_rss_bytes() - before
            assert answer.status_code == 200, answer.text
        print(f"server peak RSS growth during a 64 MiB ingest: {growth / MiB:.0f} MiB")
        assert growth < 96 * MiB, f"RSS grew {growth / MiB:.0f} MiB during a 64 MiB ingest"
    finally:
        server.stop()


def parquet_of_mib(path: Path, mib: int) -> int:
    """An uncompressed Parquet file of about ``mib`` MiB in row groups of 10,000 rows
    (64-byte rows); returns its row count."""
    rows = mib * MiB // 64
    ids = pa.array(range(rows), pa.int64())
    text = pc.utf8_lpad(pc.cast(ids, pa.string()), 48, "x")
    table = pa.table({"id": ids, "text": text})
    pq.write_table(table, path, row_group_size=10_000, compression="none", use_dictionary=False)
    return rows


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(MiB):
            yield chunk


async def test_a_128_mib_parquet_ingest_stays_within_a_memory_bound(
    local_settings: Settings, tmp_path: Path
) -> None:
    """A Parquet upload is read a batch at a time from the spooled file (ADR 0021), not
    loaded: the server's peak RSS grows by well under the file's size."""
    path = tmp_path / "large.parquet"
    rows = await asyncio.to_thread(parquet_of_mib, path, 128)
    server = LakehouseServer(local_settings, tmp_path, exec_=True).start()  # as above
    try:
        assert server.proc is not None
        url = "/v1/ingest?format=parquet&name="
        headers = {"content-type": "application/octet-stream"}
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
            small = tmp_path / "small.parquet"
            await asyncio.to_thread(parquet_of_mib, small, 1)
            warm = await http.post(url + "warm", content=small.read_bytes(), headers=headers)
            assert warm.status_code == 200, warm.text
            await asyncio.to_thread(Path(f"/proc/{server.proc.pid}/clear_refs").write_text, "5")
            before = server.rss_bytes()
            answer = await http.post(url + "large", content=file_chunks(path), headers=headers)
            growth = server.peak_rss_bytes() - before
            assert answer.status_code == 200, answer.text
            assert answer.json()["row_count"] == rows
        print(f"server peak RSS growth during a 128 MiB Parquet ingest: {growth / MiB:.0f} MiB")
        assert growth < 80 * MiB, f"RSS grew {growth / MiB:.0f} MiB during a 128 MiB ingest"
    finally:
        server.stop()


async def test_a_malformed_body_is_the_answer_even_when_its_csv_failed_first(
    local_settings: Settings, tmp_path: Path
) -> None:
    """A multipart body cut before its closing boundary, around a CSV whose header is
    refused at once (a NUL byte). The CSV is read while the body arrives, so its error
    is met while the client is still sending (here it pauses); the answer still waits
    for the body and names the body's own fault, as when the whole body was read before
    the CSV. Nothing is left behind."""
    server = LakehouseServer(local_settings, tmp_path).start()
    try:
        request = await RawRequest.open(
            server.url,
            "POST",
            b"/v1/ingest?name=cut",
            {"Transfer-Encoding": "chunked", "Content-Type": "multipart/form-data; boundary=B"},
        )
        try:
            await request.send_chunk(
                b'--B\r\nContent-Disposition: form-data; name="file"; filename="x.csv"\r\n'
                b"Content-Type: text/csv\r\n\r\na\x00b,c\n" + b"1,2\n" * 400_000  # 1.6 MB
            )
            await asyncio.sleep(1)  # the header was refused by now; no answer yet
            await request.send_chunk(b"3,4\n" * 1_000)
            await request.send_chunk(b"")  # the end of the body, without a closing boundary
            answer = await asyncio.wait_for(request.response(), timeout=30)
        finally:
            await request.close()
        assert answer.status == 400, answer
        message = msgspec.json.decode(answer.body)["error"]["message"]
        assert "multipart" in message, message
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/catalog/list")).json()["datasets"] == []
        spool = spool_dir(local_settings)
        assert not spool.exists() or list(spool.iterdir()) == []
    finally:
        server.stop()
