"""A spool file read while it is written (``lakehouse.ingest.arrival``, ADR 0009): a
reader gets whole reads, waits for bytes on their way, sees the end, and stops when the
upload fails; inference and conversion of a file arriving in pieces give what they give
on the whole file."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lakehouse.ingest import convert
from lakehouse.ingest.arrival import Arrival, UploadFailed
from lakehouse.ingest.errors import RaggedRows
from lakehouse.ingest.schema import CsvLayout, infer_layout


class Spool:
    """Writes a file a piece at a time, telling its Arrival, as the upload's spool does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = path.open("wb")
        self.arrival = Arrival(path)
        self.size = 0

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.handle.flush()
        self.size += len(data)
        self.arrival.grew(self.size)

    def end(self) -> None:
        self.handle.close()
        self.arrival.end()


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    spool = Spool(tmp_path / "upload.csv")
    yield spool
    spool.handle.close()


def in_thread(
    target: Callable[..., object], *args: object
) -> tuple[threading.Thread, list[object]]:
    """Run ``target(*args)`` in a thread; the returned list holds its result or error."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(target(*args))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_read_waits_for_all_the_bytes_it_asks_for_until_the_end(spool: Spool) -> None:
    reader = spool.arrival.open()
    spool.write(b"abc")
    thread, outcome = in_thread(reader.read, 5)
    time.sleep(0.2)
    assert thread.is_alive()  # 3 of 5 bytes: no short read
    assert not outcome
    spool.write(b"defg")
    spool.end()  # the end: whole reads, then what is left, then nothing
    thread.join(5)
    assert outcome == [b"abcde"]
    assert reader.read(5) == b"fg"
    assert reader.read(5) == b""
    reader.close()


def test_reads_come_in_the_pieces_a_file_on_disk_gives(spool: Spool, tmp_path: Path) -> None:
    """However the upload arrived (here one byte at a time), the reader's pieces are the
    file's: a decoding error names the same position as on the whole file."""
    data = bytes(range(256)) * 9_000  # 2.2 MiB: more than one of the reader's buffers
    reader = spool.arrival.open()
    thread, outcome = in_thread(lambda: [reader.read1(8192) for _ in range(300)])
    for start in range(0, len(data), 777):
        spool.write(data[start : start + 777])
    spool.end()
    thread.join(10)
    whole = tmp_path / "whole.bin"
    whole.write_bytes(data)
    with whole.open("rb") as handle:
        expected = [handle.read1(8192) for _ in range(300)]
    assert outcome == [expected]
    reader.close()


def test_a_failed_upload_stops_a_waiting_reader_and_later_ones(spool: Spool) -> None:
    reader = spool.arrival.open()
    spool.write(b"a,b\n1,2\n")
    thread, outcome = in_thread(reader.read, 1024)
    time.sleep(0.2)
    assert thread.is_alive()  # waiting for the rest
    spool.arrival.fail()
    thread.join(5)
    assert len(outcome) == 1
    assert isinstance(outcome[0], UploadFailed)
    with pytest.raises(UploadFailed):
        spool.arrival.wait_all()
    with pytest.raises(UploadFailed):
        spool.arrival.head(1024)
    reader.close()


def test_a_whole_file_is_read_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "whole.csv"
    path.write_bytes(b"a,b\n1,2\n")
    arrival = Arrival.complete(path)
    assert arrival.head(3) == b"a,b"
    assert arrival.wait_all() == path
    with arrival.open() as handle:
        assert handle.read() == b"a,b\n1,2\n"


def rows_csv(count: int) -> bytes:
    lines = (
        f'{i},"name {i}\nsecond line",{i * 0.5},2024-01-{1 + i % 28:02d}\n' for i in range(count)
    )
    return ("id,name,amount,day\n" + "".join(lines)).encode()


def test_inference_and_conversion_of_an_arriving_file_match_the_whole_file(
    spool: Spool, tmp_path: Path
) -> None:
    data = rows_csv(60_000)  # about 2.6 MB: several of the reader's blocks
    whole = tmp_path / "whole.csv"
    whole.write_bytes(data)
    expected_layout = infer_layout(whole, 1_000, {})
    options = convert.ConvertOptions(block_size=256 * 1024, row_group_rows=10_000)
    convert.convert_csv(whole, expected_layout, tmp_path / "whole.parquet", options)

    def infer_and_convert() -> tuple[CsvLayout, convert.ConvertResult]:
        layout = infer_layout(spool.arrival, 1_000, {})
        result = convert.convert_csv(spool.arrival, layout, tmp_path / "arrived.parquet", options)
        return layout, result

    thread, outcome = in_thread(infer_and_convert)
    for start in range(0, len(data), 100_000):  # pieces cut anywhere, even mid-row
        spool.write(data[start : start + 100_000])
        time.sleep(0.01)
    spool.end()
    thread.join(30)
    assert isinstance(outcome[0], tuple), outcome
    layout, result = outcome[0]
    assert layout == expected_layout
    assert result.rows == 60_000
    assert pq.read_table(tmp_path / "arrived.parquet").equals(
        pq.read_table(tmp_path / "whole.parquet")
    )


def test_an_error_is_located_once_the_whole_file_arrived(spool: Spool, tmp_path: Path) -> None:
    good = rows_csv(30_000)
    spool.write(good)
    layout = infer_layout(spool.arrival, 100, {})
    options = convert.ConvertOptions(block_size=256 * 1024)
    thread, outcome = in_thread(
        convert.convert_csv, spool.arrival, layout, tmp_path / "x.parquet", options
    )
    spool.write(b"1,2\n")  # a short row: its line is counted on the whole file
    # 10 MB: more than the reader reads ahead (32 blocks), so it is not left waiting for bytes
    more = rows_csv(220_000)[len(b"id,name,amount,day\n") :]
    spool.write(more)
    time.sleep(0.5)
    assert thread.is_alive()  # the conversion failed, and waits for the rest to say where
    assert not outcome
    spool.end()
    thread.join(30)
    assert isinstance(outcome[0], RaggedRows)
    assert outcome[0].details["line"] == good.count(b"\n") + 1
    assert not (tmp_path / "x.parquet").exists()
