"""Storage errors: both backends raise these, never OSError or botocore's."""

from __future__ import annotations

from lakehouse.errors import BadRequest, LakehouseError, NotFound, PayloadTooLarge, ServiceBusy


class InvalidKey(BadRequest):
    code = "invalid_key"


class ObjectNotFound(NotFound):
    code = "object_not_found"


class ObjectTooLarge(PayloadTooLarge):
    code = "object_too_large"


class StorageBusy(ServiceBusy):
    code = "storage_busy"


class StorageUnavailable(LakehouseError):
    """The backend failed (disk error, S3 unreachable): a 502-style server fault."""

    status_code = 502
    code = "storage_unavailable"
