"""Storage: one ObjectStore protocol, a local and an S3 backend."""

from lakehouse.storage._local import LocalObjectStore
from lakehouse.storage.errors import (
    InvalidKey,
    ObjectNotFound,
    ObjectTooLarge,
    StorageBusy,
    StorageUnavailable,
)
from lakehouse.storage.interface import ObjectInfo, ObjectStore
from lakehouse.storage.keys import validate_key

__all__ = [
    "InvalidKey",
    "LocalObjectStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectTooLarge",
    "StorageBusy",
    "StorageUnavailable",
    "validate_key",
]
