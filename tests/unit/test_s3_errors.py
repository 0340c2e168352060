"""S3's failures, as botocore raises them, become the error a client can act on:
503 + Retry-After for what passes (throttling, server errors, broken connections),
502 for what the operator must fix (credentials, bucket), 404 for a missing object,
409 for a refused conditional write. Never a 401/403, which would blame the client."""

from __future__ import annotations

from typing import Any

import aiohttp
import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.stub import Stubber

from lakehouse.storage._s3_errors import translate

ENDPOINT = "http://127.0.0.1:9/private-endpoint-path"


def client_error(code: str, status: int) -> ClientError:
    """The ClientError botocore raises for an S3 answer of ``status`` with ``code``
    (a HEAD answer has no body: its code is the status, as botocore's parser makes it)."""
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="AKIAUNITTESTKEY00001",
        aws_secret_access_key="unit-test-secret-never-shown",
    )
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_object", service_error_code=code, http_status_code=status, service_message="m"
        )
        try:
            client.get_object(Bucket="b", Key="k")
        except ClientError as exc:
            return exc
    raise AssertionError("the stub did not raise")


@pytest.mark.parametrize(
    ("code", "status", "expected_status", "expected_code", "retry_after"),
    [
        # throttling
        ("SlowDown", 503, 503, "storage_throttled", "10"),
        ("Throttling", 400, 503, "storage_throttled", "10"),
        ("ThrottlingException", 400, 503, "storage_throttled", "10"),
        ("RequestLimitExceeded", 400, 503, "storage_throttled", "10"),
        ("TooManyRequests", 429, 503, "storage_throttled", "10"),
        ("429", 429, 503, "storage_throttled", "10"),
        ("503", 503, 503, "storage_throttled", "10"),  # a HEAD answered 503
        # server errors
        ("InternalError", 500, 503, "storage_unavailable", "5"),
        ("ServiceUnavailable", 503, 503, "storage_unavailable", "5"),
        ("500", 500, 503, "storage_unavailable", "5"),
        ("BadGateway", 502, 503, "storage_unavailable", "5"),
        ("RequestTimeout", 400, 503, "storage_unavailable", "5"),
        # the server's credentials
        ("AccessDenied", 403, 502, "storage_access_denied", None),
        ("InvalidAccessKeyId", 403, 502, "storage_access_denied", None),
        ("SignatureDoesNotMatch", 403, 502, "storage_access_denied", None),
        ("AllAccessDisabled", 403, 502, "storage_access_denied", None),
        ("403", 403, 502, "storage_access_denied", None),  # a HEAD answered 403
        # missing
        ("NoSuchKey", 404, 404, "object_not_found", None),
        # A multipart upload gone: the write may have succeeded; never a 404.
        ("NoSuchUpload", 404, 503, "storage_unavailable", "5"),
        ("404", 404, 404, "object_not_found", None),
        # conditional writes
        ("PreconditionFailed", 412, 409, "storage_precondition_failed", None),
        ("412", 412, 409, "storage_precondition_failed", None),
        # the server's configuration
        ("NoSuchBucket", 404, 502, "storage_misconfigured", None),
        ("InvalidBucketName", 400, 502, "storage_misconfigured", None),
    ],
)
def test_s3_error_codes_map_to_what_the_client_can_do(
    code: str, status: int, expected_status: int, expected_code: str, retry_after: str | None
) -> None:
    error = translate("GetObject", "my-bucket", "datasets/w/x.parquet", client_error(code, status))
    assert (error.status_code, error.code) == (expected_status, expected_code)
    assert error.headers.get("Retry-After") == retry_after
    if expected_code == "object_not_found":
        assert "datasets/w/x.parquet" in error.message
    else:
        assert "GetObject" in error.message
        assert code in error.message
        assert error.details == {"operation": "GetObject", "reason": code}
    assert "unit-test-secret" not in error.message + str(error.details)
    assert "AKIAUNITTESTKEY" not in error.message + str(error.details)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionClosedError(endpoint_url=ENDPOINT),
        EndpointConnectionError(endpoint_url=ENDPOINT),
        ReadTimeoutError(endpoint_url=ENDPOINT),
        ConnectTimeoutError(endpoint_url=ENDPOINT),
        ResponseStreamingError(error=ConnectionResetError(104, "Connection reset by peer")),
        IncompleteReadError(actual_bytes=10, expected_bytes=100),
        aiohttp.ClientPayloadError("Response payload is not completed"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError(),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_transport_failures_are_503_storage_unavailable(exc: Any) -> None:
    error = translate("UploadPart", "my-bucket", "datasets/w/x.parquet", exc)
    assert (error.status_code, error.code) == (503, "storage_unavailable")
    assert error.headers["Retry-After"] == "5"
    assert error.message == (
        f"object storage failed: S3 UploadPart on bucket 'my-bucket': {type(exc).__name__}"
    )
    assert "private-endpoint-path" not in error.message + str(error.details)
