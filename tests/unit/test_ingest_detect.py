"""Format and compression detection, and the decompressing spool writer, without a
backend: what the request declares against what the bytes are."""

from __future__ import annotations

import gzip
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from lakehouse.errors import BadRequest
from lakehouse.ingest.detect import (
    check_media_type,
    decide_compression,
    decide_format,
    declared_compression,
    sniff_format,
)
from lakehouse.ingest.errors import (
    DecompressedTooLarge,
    FormatMismatch,
    InvalidCompression,
    UnsupportedUpload,
)
from lakehouse.ingest.formats import Compression, Format
from lakehouse.ingest.inflate import Inflater

CSV = b"id,name\n1,Ada\n"


def parquet_bytes() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2]}), sink)
    return sink.getvalue()


def arrow_bytes(stream: bool) -> bytes:
    table = pa.table({"id": [1, 2]})
    sink = io.BytesIO()
    open_writer = pa.ipc.new_stream if stream else pa.ipc.new_file
    with open_writer(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (CSV, Format.CSV),
        (b"a\tb\n1\t2\n", Format.CSV),  # TSV is told by its name or type, never its bytes
        (b'\xef\xbb\xbf \n  [{"a": 1}]', Format.JSON),
        (b'{"a": 1}\n{"a": 2}\n', Format.NDJSON),
        (b"\xef\xbb\xbf\r\n{", Format.NDJSON),
        (b"PK\x03\x04rest-of-a-zip", Format.XLSX),
        (b"", Format.CSV),
        (b"[Date],[Amount]\n2024-01-01,5\n", Format.CSV),  # a header in brackets
        (b"[ ]", Format.JSON),
        (b"[\n  {", Format.JSON),
    ],
)
def test_sniff_format_of_text_and_signatures(head: bytes, expected: Format) -> None:
    assert sniff_format(head) == expected


def test_sniff_format_of_files_the_real_libraries_wrote() -> None:
    assert sniff_format(parquet_bytes()) == Format.PARQUET
    assert sniff_format(arrow_bytes(stream=False)) == Format.ARROW
    assert sniff_format(arrow_bytes(stream=True)) == Format.ARROW


@pytest.mark.parametrize(
    ("param", "media_type", "file_name", "expected"),
    [
        (None, "", "", Format.CSV),  # no hint: the bytes (text) say CSV
        (None, "", "export.tsv", Format.TSV),
        (None, "", "export.TSV.gz", Format.TSV),
        (None, "text/tab-separated-values", "x.csv", Format.TSV),  # the type beats the name
        (Format.TSV, "text/csv", "x.csv", Format.TSV),  # ?format= beats both
        (None, "application/vnd.ms-excel", "x.csv", Format.CSV),  # unknown part type: the name
        (None, "", "notes.txt", Format.CSV),  # an unknown extension says nothing
        (None, "application/x-ndjson", "", Format.NDJSON),
    ],
)
def test_declared_format_precedence(
    param: Format | None, media_type: str, file_name: str, expected: Format
) -> None:
    assert decide_format(param, media_type, file_name, CSV) == expected


def test_bytes_decide_when_nothing_is_declared() -> None:
    assert decide_format(None, "application/octet-stream", "blob", parquet_bytes()) == (
        Format.PARQUET
    )


@pytest.mark.parametrize(
    ("param", "media_type", "file_name", "head", "declared", "detected"),
    [
        (None, "", "report.xlsx", CSV, "xlsx", "csv"),  # a renamed CSV
        (Format.CSV, "", "", b"PAR1....", "csv", "parquet"),
        (None, "application/vnd.apache.parquet", "", CSV, "parquet", "csv"),
        (None, "text/csv", "", b"ARROW1\x00\x00", "csv", "arrow"),
    ],
)
def test_bytes_contradicting_the_declared_format_is_a_mismatch(
    param: Format | None,
    media_type: str,
    file_name: str,
    head: bytes,
    declared: str,
    detected: str,
) -> None:
    with pytest.raises(FormatMismatch) as caught:
        decide_format(param, media_type, file_name, head)
    assert caught.value.details["declared"] == declared
    assert caught.value.details["detected"] == detected
    assert declared in caught.value.message
    assert detected in caught.value.message


def test_text_formats_do_not_contradict_each_other() -> None:
    # A JSON array declared as such but whose first record is an object, a CSV whose
    # header starts with "[": the converter of the declared format decides.
    assert decide_format(Format.JSON, "", "", b'{"a":1}') == Format.JSON
    assert decide_format(None, "text/csv", "", b"[weird],header\n") == Format.CSV


def test_unknown_media_type_is_415_listing_the_accepted_ones() -> None:
    with pytest.raises(UnsupportedUpload) as caught:
        check_media_type("application/xml")
    assert "application/vnd.apache.parquet" in caught.value.details["accepted"]
    for known in ("", "text/csv", "application/gzip", "application/octet-stream"):
        check_media_type(known)


@pytest.mark.parametrize(
    ("encoding", "media_type", "file_name", "expected"),
    [
        ("", "", "a.csv", Compression.NONE),
        ("gzip", "", "a.csv", Compression.GZIP),
        ("", "application/zstd", "", Compression.ZSTD),
        ("", "", "a.tsv.zst", Compression.ZSTD),
        ("", "", "dir.gz/a.csv", Compression.NONE),
        ("identity", "", "a.ndjson.gz", Compression.GZIP),
    ],
)
def test_declared_compression(
    encoding: str, media_type: str, file_name: str, expected: Compression
) -> None:
    assert declared_compression(encoding, media_type, file_name) == expected


def test_unsupported_content_encoding_is_415() -> None:
    with pytest.raises(UnsupportedUpload):
        declared_compression("br", "", "")


def test_compression_comes_from_the_bytes_and_must_match_a_declared_one() -> None:
    gz, zst = gzip.compress(CSV), zstandard.ZstdCompressor().compress(CSV)
    assert decide_compression(Compression.NONE, gz) == Compression.GZIP
    assert decide_compression(Compression.NONE, zst) == Compression.ZSTD
    assert decide_compression(Compression.ZSTD, zst) == Compression.ZSTD
    with pytest.raises(InvalidCompression):
        decide_compression(Compression.GZIP, CSV)
    with pytest.raises(InvalidCompression):
        decide_compression(Compression.GZIP, zst)


def inflate(data: bytes, max_bytes: int = 1 << 30, chunk: int = 7) -> tuple[bytes, Inflater]:
    out = io.BytesIO()
    inflater = Inflater(out, max_bytes)
    for start in range(0, len(data), chunk):
        inflater.write(data[start : start + chunk])
    inflater.finish()
    return out.getvalue(), inflater


def test_inflater_passes_plain_bytes_and_decompresses_gzip_and_zstd() -> None:
    text = CSV * 1000
    assert inflate(text)[0] == text
    assert inflate(b"a")[0] == b"a"  # shorter than any magic number
    members = gzip.compress(text) + gzip.compress(b"2,Grace\n")  # cat a.gz b.gz
    out, inflater = inflate(members, chunk=5)
    assert out == text + b"2,Grace\n"
    assert inflater.compression == Compression.GZIP
    frames = zstandard.ZstdCompressor().compress(text) + zstandard.ZstdCompressor().compress(CSV)
    out, inflater = inflate(frames, chunk=3)
    assert out == text + CSV
    assert inflater.compression == Compression.ZSTD


def test_inflater_refuses_a_cut_short_or_corrupt_gzip_stream() -> None:
    whole = gzip.compress(CSV * 100)
    with pytest.raises(InvalidCompression, match="cut short"):
        inflate(whole[: len(whole) - 10])
    with pytest.raises(InvalidCompression, match="corrupt"):
        inflate(whole[:10] + b"\x00garbage" * 10 + whole[10:])


def test_inflater_refuses_a_cut_short_zstd_stream() -> None:
    # Several frames (one with a checksum, one streamed without a content size), then a
    # skippable frame: whole, it reads; cut anywhere inside a frame, it is a 400.
    rows = b"".join(b"%d,name %d\n" % (i, i * 7919 % 10007) for i in range(20_000))
    streamed = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(streamed, closefd=False) as writer:
        writer.write(rows)
    frames = (
        zstandard.ZstdCompressor(write_checksum=True).compress(CSV * 1000)
        + streamed.getvalue()
        + (0x184D2A5A).to_bytes(4, "little")
        + (3).to_bytes(4, "little")
        + b"pad"
    )
    assert inflate(frames, chunk=4093)[0] == CSV * 1000 + rows
    for cut in (1, 4, 9, 500, len(frames) // 2, len(frames) - 8):
        with pytest.raises(InvalidCompression, match="cut short"):
            inflate(frames[:-cut], chunk=4093)


def test_inflater_stops_at_the_cap_without_inflating_the_rest() -> None:
    bomb = gzip.compress(bytes(64 << 20), compresslevel=9)
    out = io.BytesIO()
    inflater = Inflater(out, max_decompressed_bytes=4 << 20)
    with pytest.raises(DecompressedTooLarge) as caught:
        inflater.write(bomb)  # one write of the whole bomb
    assert caught.value.details == {"max_decompressed_bytes": 4 << 20}
    # It stopped within one output piece past the cap, not after 64 MiB.
    assert inflater.written <= (4 << 20) + (1 << 20)
    assert len(out.getvalue()) <= 4 << 20


def test_the_cap_applies_to_zstd_too_and_not_to_plain_uploads() -> None:
    bomb = zstandard.ZstdCompressor().compress(bytes(16 << 20))
    with pytest.raises(DecompressedTooLarge):
        inflate(bomb, max_bytes=1 << 20, chunk=len(bomb))
    assert len(inflate(bytes(2 << 20), max_bytes=1 << 20, chunk=1 << 20)[0]) == 2 << 20


def test_unknown_format_name_is_a_400_listing_the_formats() -> None:
    from lakehouse.ingest.detect import parse_format

    with pytest.raises(BadRequest) as caught:
        parse_format("xls")
    assert "parquet" in caught.value.details["allowed"]
    assert parse_format("TSV") == Format.TSV
