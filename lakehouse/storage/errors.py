"""Storage errors: both backends raise these, never OSError or botocore's.

InvalidKey (400)          the key is unsafe or malformed
ReservedKey (403)         PUT or DELETE under _catalog/, _tmp/ or _state/ through the storage API
ObjectNotFound (404)      no object under the key
KeyConflict (409)         local backend: the key's path collides with another object's
ObjectTooLarge (413)      more than the allowed bytes arrived
StorageBusy (503)         too many PUTs in flight (Retry-After)
StorageUnavailable (502)  the backend itself failed (disk, S3)
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


class StorageUnavailable(LakehouseError):
    """The backend failed (disk error, S3 unreachable): a 502-style server fault."""

    status_code = 502
    code = "storage_unavailable"
