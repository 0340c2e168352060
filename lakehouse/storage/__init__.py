"""Storage: one ObjectStore protocol, a local and an S3 backend.

Callers get a store from ``open_store`` (or all of them from
``open_registry``) and only ever see the ``ObjectStore`` protocol; the
concrete classes are exported for the composition root and tests.
"""

from lakehouse.config import StorageSettings
from lakehouse.storage._local import LocalObjectStore
from lakehouse.storage._s3 import S3ObjectStore
from lakehouse.storage.errors import (
    InvalidKey,
    KeyConflict,
    ObjectNotFound,
    ObjectTooLarge,
    StorageBusy,
    StorageUnavailable,
)
from lakehouse.storage.interface import ObjectInfo, ObjectStore
from lakehouse.storage.keys import TMP_PREFIX, validate_key, validate_prefix
from lakehouse.storage.registry import PRIMARY, BucketInfo, BucketRegistry, UnknownBucket
from lakehouse.storage.secrets import SecretsProvider


def open_store(settings: StorageSettings, secrets: SecretsProvider) -> ObjectStore:
    """The (not yet started) store ``settings`` describe: local or S3."""
    if settings.backend == "s3":
        s3 = settings.s3
        return S3ObjectStore(
            s3.bucket,
            secrets,
            endpoint_url=s3.endpoint_url,
            region=s3.region,
            path_style=s3.path_style,
            create_bucket=s3.create_bucket,
            part_bytes=s3.multipart_chunk_bytes,
        )
    return LocalObjectStore(settings.data_dir)


def open_registry(settings: StorageSettings, secrets: SecretsProvider) -> BucketRegistry:
    """A registry holding the one G0 store as ``primary``."""
    registry = BucketRegistry()
    store = open_store(settings, secrets)
    bucket = settings.s3.bucket if settings.backend == "s3" else ""
    registry.register(PRIMARY, store, backend=settings.backend, bucket=bucket)
    return registry


__all__ = [
    "PRIMARY",
    "TMP_PREFIX",
    "BucketInfo",
    "BucketRegistry",
    "InvalidKey",
    "KeyConflict",
    "LocalObjectStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectTooLarge",
    "S3ObjectStore",
    "SecretsProvider",
    "StorageBusy",
    "StorageUnavailable",
    "UnknownBucket",
    "open_registry",
    "open_store",
    "validate_key",
    "validate_prefix",
]
