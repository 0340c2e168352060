"""The fault proxy the S3 fault tests rely on does what it says, request by request,
seen by a plain S3 client with its retries switched off."""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from tests.support.fault_proxy import Fault, FaultProxy


def s3_through(proxy: FaultProxy, read_timeout: float = 5) -> tuple[Any, str]:
    """An S3 client that reaches moto through the proxy, and a new bucket."""
    client = boto3.client(
        "s3",
        endpoint_url=proxy.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",  # moto accepts any
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=read_timeout
        ),
    )
    bucket = f"proxy-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def error_code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def test_requests_pass_through_until_a_fault_is_injected(fault_proxy: FaultProxy) -> None:
    s3, bucket = s3_through(fault_proxy)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x" * 1000)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x" * 1000

    # Connections opened before the fault see it from their next request on.
    fault_proxy.inject(Fault.error(503, "SlowDown", times=2))
    for _ in range(2):
        with pytest.raises(ClientError) as raised:
            s3.get_object(Bucket=bucket, Key="k")
        assert error_code(raised.value) == "SlowDown"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x" * 1000
    assert fault_proxy.injected == 2


def test_a_fault_can_be_limited_to_one_method(fault_proxy: FaultProxy) -> None:
    s3, bucket = s3_through(fault_proxy)
    with fault_proxy.faulty(Fault.error(500, "InternalError", methods=frozenset({"PUT"}))):
        with pytest.raises(ClientError) as raised:
            s3.put_object(Bucket=bucket, Key="k", Body=b"x")
        assert error_code(raised.value) == "InternalError"
        assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0  # GETs reach moto
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 1


def test_an_error_answer_to_a_head_has_no_body(fault_proxy: FaultProxy) -> None:
    """As S3's: a body would be read as the start of the next answer on the connection."""
    fault_proxy.inject(Fault.error(503, "SlowDown", times=1, methods=frozenset({"HEAD"})))
    with socket.create_connection(("127.0.0.1", fault_proxy.port), timeout=5) as sock:
        sock.sendall(b"HEAD /bucket/k HTTP/1.1\r\nHost: s3\r\n\r\n")
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(4096)
        head, _, rest = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503")
        sock.settimeout(0.3)
        with contextlib.suppress(TimeoutError):
            rest += sock.recv(4096)
        assert rest == b""
    assert fault_proxy.injected == 1


def test_a_reset_after_the_whole_body_is_not_counted_as_injected(
    fault_proxy: FaultProxy,
) -> None:
    s3, bucket = s3_through(fault_proxy)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x" * 1000)
    fault_proxy.inject(Fault.reset_response(after_bytes=1000, times=1, methods=frozenset({"GET"})))
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x" * 1000
    assert (fault_proxy.injected, fault_proxy.missed) == (0, 1)


def test_resets_in_the_middle_of_a_body_are_connection_errors(fault_proxy: FaultProxy) -> None:
    s3, bucket = s3_through(fault_proxy)
    s3.put_object(Bucket=bucket, Key="k", Body=b"y" * 100_000)

    fault_proxy.inject(Fault.reset_response(after_bytes=1000, methods=frozenset({"GET"})))
    body = s3.get_object(Bucket=bucket, Key="k")["Body"]
    with pytest.raises(Exception, match=r"(?i)connection|incomplete|reset"):
        body.read()

    fault_proxy.inject(Fault.reset_request(after_bytes=10, methods=frozenset({"PUT"})))
    with pytest.raises((ConnectionClosedError, ConnectionError)):
        s3.put_object(Bucket=bucket, Key="k2", Body=b"z" * 100_000)
    fault_proxy.clear()
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]


def test_a_stalled_request_times_out_and_requests_pass_once_cleared(
    fault_proxy: FaultProxy,
) -> None:
    s3, bucket = s3_through(fault_proxy, read_timeout=0.5)
    fault_proxy.inject(Fault.stall())
    with pytest.raises(ReadTimeoutError):
        s3.list_objects_v2(Bucket=bucket)
    fault_proxy.clear()
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_latency_delays_each_request(fault_proxy: FaultProxy) -> None:
    s3, bucket = s3_through(fault_proxy)
    fault_proxy.inject(Fault.latency(0.3))
    started = time.monotonic()
    s3.list_objects_v2(Bucket=bucket)
    assert time.monotonic() - started >= 0.3
