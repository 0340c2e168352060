"""What an S3 failure means to our clients: botocore's exceptions as our errors.

botocore has retried by the time an error gets here (the budget of ADR 0015), so
what is left is what the client must hear about:

    throttling (SlowDown, 429, a 503 without a code)   503 storage_throttled, Retry-After
    server errors (InternalError, 5xx), transport
    failures (reset, refused, timeouts, cut bodies)     503 storage_unavailable, Retry-After
    the server's credentials refused (AccessDenied)     502 storage_access_denied
    a missing object (NoSuchKey, a 404 HEAD)            404 object_not_found
    a multipart upload gone (NoSuchUpload)              503 storage_unavailable: a write
                                                        whose object may exist is no 404
    a conditional write refused (PreconditionFailed)    409 storage_precondition_failed
    any other refusal (NoSuchBucket, InvalidBucketName) 502 storage_misconfigured

Messages name the operation, the bucket and S3's code (or the exception's class),
never ``str(exc)``, whose wording we do not control and which may hold a URL.
"""

from __future__ import annotations

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from lakehouse.errors import LakehouseError
from lakehouse.storage.errors import (
    ObjectNotFound,
    StorageAccessDenied,
    StorageMisconfigured,
    StoragePreconditionFailed,
    StorageThrottled,
    StorageUnavailable,
)

THROTTLING_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequests",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "BandwidthLimitExceeded",
    }
)
ACCESS_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AccountProblem",
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound"})
UPLOAD_GONE_CODES = frozenset({"NoSuchUpload"})
PRECONDITION_CODES = frozenset({"PreconditionFailed"})
TRANSIENT_CODES = frozenset(
    {"InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed"}
)

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    BotoCoreError,  # ConnectionClosedError, EndpointConnectionError, ReadTimeoutError ...
    aiohttp.ClientError,  # a response body cut short (ClientPayloadError)
    OSError,
    TimeoutError,
)
"""What reading a response body may raise when the connection fails."""


class UploadGone(StorageUnavailable):
    """The multipart upload is gone: completed by an earlier attempt whose answer was
    lost, or aborted (by a sweep elsewhere). The write's caller finds out which."""


def error_code(exc: BaseException) -> str:
    """S3's error code, or the HTTP status as a string when the answer had no body (HEAD)."""
    if not isinstance(exc, ClientError):
        return ""
    code = exc.response.get("Error", {}).get("Code")
    return str(code or http_status(exc) or "")


def http_status(exc: ClientError) -> int:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status is None and str(exc.response.get("Error", {}).get("Code", "")).isdigit():
        status = exc.response["Error"]["Code"]
    return int(status or 0)


def translate(operation: str, bucket: str, key: str, exc: BaseException) -> LakehouseError:
    """Our error for ``exc``, raised by S3 ``operation`` on ``key`` in ``bucket``."""
    if not isinstance(exc, ClientError):
        reason = type(exc).__name__
        return StorageUnavailable(
            _message(operation, bucket, reason), details=_details(operation, reason)
        )
    code, status = error_code(exc), http_status(exc)
    kind: type[LakehouseError]
    if code in NOT_FOUND_CODES or (status == 404 and code == "404"):
        return ObjectNotFound(f"no object {key!r}")
    if code in UPLOAD_GONE_CODES:
        return UploadGone(_message(operation, bucket, code), details=_details(operation, code))
    if code in THROTTLING_CODES or status == 429 or (status == 503 and code == "503"):
        kind = StorageThrottled
    elif code in ACCESS_DENIED_CODES or status == 403:
        kind = StorageAccessDenied
    elif code in PRECONDITION_CODES or status == 412:
        kind = StoragePreconditionFailed
    elif code in TRANSIENT_CODES or status >= 500:
        kind = StorageUnavailable
    else:
        kind = StorageMisconfigured
    return kind(_message(operation, bucket, code), details=_details(operation, code))


def _message(operation: str, bucket: str, reason: str) -> str:
    return f"object storage failed: S3 {operation} on bucket {bucket!r}: {reason}"


def _details(operation: str, reason: str) -> dict[str, str]:
    return {"operation": operation, "reason": reason}
