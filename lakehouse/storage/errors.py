"""Storage errors: both backends raise these, never OSError or botocore's.

InvalidKey (400)          the key is unsafe or malformed
ReservedKey (403)         PUT or DELETE under _catalog/, _tmp/ or _state/ through the storage API
ObjectNotFound (404)      no object under the key
KeyConflict (409)         local backend: the key's path collides with another object's
ObjectTooLarge (413)      more than the allowed bytes arrived
StorageBusy (503)         too many PUTs in flight (Retry-After)
StoragePreconditionFailed (409)  S3 refused a conditional write: another writer came first
StorageUnavailable (503)  the backend failed for a passing reason (Retry-After):
│                         S3 5xx, connection reset or refused, timeout; a disk error
├── StorageThrottled (503)      S3 asked us to slow down (SlowDown, 429 ...) (Retry-After)
├── StorageAccessDenied (502)   S3 refused the server's credentials: fix the server
└── StorageMisconfigured (502)  S3 refused the request (no such bucket ...): fix the server

The 502s are the server's fault, not the client's, and retrying will not help
until an operator acts: they never carry Retry-After, and never 401/403, which
would blame the client's own credentials. All are StorageUnavailable, so a
caller that keeps serving what it has during an outage (the catalog's refresh)
does so for them too.
"""

from __future__ import annotations

from lakehouse.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    LakehouseError,
    NotFound,
    PayloadTooLarge,
    ServiceBusy,
)


class ReservedKey(Forbidden):
    """A write or delete under a prefix only the lakehouse itself may touch."""

    code = "reserved_key"


class InvalidKey(BadRequest):
    code = "invalid_key"


class ObjectNotFound(NotFound):
    code = "object_not_found"


class KeyConflict(Conflict):
    """``a`` and ``a/b`` cannot both exist as files; S3 allows it, the local disk does not."""

    code = "key_conflict"


class ObjectTooLarge(PayloadTooLarge):
    code = "object_too_large"

    @classmethod
    def over(cls, max_bytes: int) -> ObjectTooLarge:
        """The error for a body over ``max_bytes``: the one wording routes and backends use."""
        return cls(
            f"object is larger than the limit of {max_bytes} bytes",
            details={"max_bytes": max_bytes},
        )


class StorageBusy(ServiceBusy):
    code = "storage_busy"


class StoragePreconditionFailed(Conflict):
    """S3 answered 412 to a conditional request: the object changed meanwhile."""

    code = "storage_precondition_failed"


class StorageUnavailable(LakehouseError):
    """The backend failed (S3 unreachable or erring, a disk error); retrying may help."""

    status_code = 503
    code = "storage_unavailable"
    retry_after_seconds: int | None = 5


class StorageThrottled(StorageUnavailable):
    """S3 throttles us (SlowDown, TooManyRequests ...) beyond the retry budget."""

    code = "storage_throttled"
    retry_after_seconds = 10


class StorageAccessDenied(StorageUnavailable):
    """S3 refused the server's credentials (AccessDenied, InvalidAccessKeyId ...)."""

    status_code = 502
    code = "storage_access_denied"
    retry_after_seconds = None


class StorageMisconfigured(StorageUnavailable):
    """S3 refused the request itself (NoSuchBucket, InvalidBucketName ...)."""

    status_code = 502
    code = "storage_misconfigured"
    retry_after_seconds = None
