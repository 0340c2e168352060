"""The catalog's FileIO (lakehouse/catalog/_fileio.py, ADR 0014): small files go up in
one PUT (pyarrow's delayed open) while everything pyiceberg configured is kept, and a
file it wrote knows its size without asking the store. (The requests it saves are
counted against a real S3 server in tests/integration/test_catalog_reads.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyiceberg.io import S3_RETRY_STRATEGY_IMPL, load_file_io

from lakehouse.catalog._fileio import IMPL, LakehouseFileIO

S3_PROPERTIES = {
    "py-io-impl": IMPL,
    "s3.endpoint": "http://127.0.0.1:9",
    "s3.region": "us-east-1",
    "s3.access-key-id": "AKIAEXAMPLE",
    "s3.secret-access-key": "secret-example",
    "s3.connect-timeout": "1.5",
    "s3.request-timeout": "2.5",
}


def s3_arguments(properties: dict[str, str]) -> dict[str, Any]:
    """The arguments of the S3 filesystem the FileIO ``properties`` select builds."""
    io = load_file_io(properties, location="s3://bucket/")
    filesystem = io.fs_by_scheme("s3", "bucket")  # type: ignore[attr-defined]
    _, (arguments,) = filesystem.__reduce__()
    return dict(arguments)


def test_s3_files_open_late_and_keep_what_pyiceberg_configured() -> None:
    assert isinstance(load_file_io(S3_PROPERTIES, location="s3://bucket/"), LakehouseFileIO)
    ours = s3_arguments(S3_PROPERTIES)
    plain = s3_arguments({k: v for k, v in S3_PROPERTIES.items() if k != "py-io-impl"})
    assert (ours.pop("allow_delayed_open"), plain.pop("allow_delayed_open")) == (True, False)
    assert ours == plain  # endpoint, region, credentials, timeouts: as pyiceberg set them
    assert (ours["connect_timeout"], ours["request_timeout"]) == (1.5, 2.5)


def test_a_configured_retry_strategy_is_not_dropped() -> None:
    """Rebuilding the filesystem would lose it (pyarrow does not report it back)."""
    properties = {
        **S3_PROPERTIES,
        S3_RETRY_STRATEGY_IMPL: "pyarrow.fs.AwsDefaultS3RetryStrategy",
    }
    assert s3_arguments(properties)["allow_delayed_open"] is False


def test_a_written_file_knows_its_size_and_a_new_one_is_created_even_if_present(
    tmp_path: Path,
) -> None:
    io = load_file_io({"py-io-impl": IMPL}, location=str(tmp_path))
    target = tmp_path / "f.json"
    output = io.new_output(str(target))
    with output.create() as stream:
        stream.write(b"x" * 1234)
        stream.write(memoryview(b"y" * 10))
    assert len(output) == 1244
    target.unlink()  # the size comes from what was written, not from the file
    assert len(output) == 1244
    # Names are fresh UUIDs: no existence check (overwrite=False does not refuse).
    target.write_bytes(b"old")
    fresh = io.new_output(str(target))
    with fresh.create(overwrite=False) as stream:
        stream.write(b"new")
    assert target.read_bytes() == b"new"
