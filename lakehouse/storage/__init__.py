"""Storage: one ObjectStore protocol, a local and an S3 backend.

Callers get a store from ``open_store`` (or all of them from
``open_registry``) and only ever see the ``ObjectStore`` protocol; the
concrete classes are exported for the composition root and tests. A backend
also issues the ``DuckDBGrant`` the query module reads the data with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakehouse.config import StorageSettings
from lakehouse.storage._local import LocalObjectStore
from lakehouse.storage.errors import (
    InvalidKey,
    KeyConflict,
    ObjectNotFound,
    ObjectTooLarge,
    ReservedKey,
    StorageAccessDenied,
    StorageBusy,
    StorageMisconfigured,
    StoragePreconditionFailed,
    StorageThrottled,
    StorageUnavailable,
)
from lakehouse.storage.health import StorageHealth, StorageStatus
from lakehouse.storage.interface import (
    DuckDBGrant,
    FileIOGrant,
    GrantsDuckDBAccess,
    ObjectInfo,
    ObjectStore,
)
from lakehouse.storage.keys import validate_key, validate_prefix
from lakehouse.storage.registry import PRIMARY, BucketInfo, BucketRegistry, UnknownBucket
from lakehouse.storage.routes import put_limit
from lakehouse.storage.routes import router as storage_router
from lakehouse.storage.secrets import (
    S3Credentials,
    SecretsError,
    SecretsProvider,
    default_secrets_provider,
)

if TYPE_CHECKING:
    from lakehouse.storage._s3 import S3ObjectStore


def __getattr__(name: str) -> Any:
    # The S3 backend (aiobotocore, aiohttp, botocore) is imported when first used, so
    # a server on local storage starts without loading it.
    if name == "S3ObjectStore":
        from lakehouse.storage._s3 import S3ObjectStore

        return S3ObjectStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(
    settings: StorageSettings, secrets: SecretsProvider
) -> LocalObjectStore | S3ObjectStore:
    """The (not yet started) store ``settings`` describe: local or S3."""
    if settings.backend == "s3":
        from lakehouse.storage._s3 import S3ObjectStore

        s3 = settings.s3
        return S3ObjectStore(
            s3.bucket,
            secrets,
            endpoint_url=s3.endpoint_url,
            region=s3.region,
            path_style=s3.path_style,
            create_bucket=s3.create_bucket,
            part_bytes=s3.multipart_chunk_bytes,
            max_attempts=s3.max_attempts,
            retry_mode=s3.retry_mode,
            connect_timeout=s3.connect_timeout_seconds,
            read_timeout=s3.read_timeout_seconds,
        )
    return LocalObjectStore(settings.data_dir)


def open_registry(settings: StorageSettings, store: ObjectStore) -> BucketRegistry:
    """A registry holding ``store`` (the one ``settings`` describe) as ``primary``."""
    registry = BucketRegistry()
    bucket = settings.s3.bucket if settings.backend == "s3" else ""
    registry.register(PRIMARY, store, backend=settings.backend, bucket=bucket)
    return registry


__all__ = [
    "PRIMARY",
    "BucketInfo",
    "BucketRegistry",
    "DuckDBGrant",
    "FileIOGrant",
    "GrantsDuckDBAccess",
    "InvalidKey",
    "KeyConflict",
    "LocalObjectStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectTooLarge",
    "ReservedKey",
    "S3Credentials",
    "S3ObjectStore",
    "SecretsError",
    "SecretsProvider",
    "StorageAccessDenied",
    "StorageBusy",
    "StorageHealth",
    "StorageMisconfigured",
    "StoragePreconditionFailed",
    "StorageStatus",
    "StorageThrottled",
    "StorageUnavailable",
    "UnknownBucket",
    "default_secrets_provider",
    "open_registry",
    "open_store",
    "put_limit",
    "storage_router",
    "validate_key",
    "validate_prefix",
]
