"""Whether the store works right now, for /health.

A probe (one cheap, unretried request: ``ObjectStore.probe``) answers it; its
outcome is cached for a moment, so a load balancer polling /health does not
become load on S3, and concurrent /health requests share one probe. /health never
waits for the probe longer than ``timeout_seconds``: a probe that takes longer
counts as degraded (``timeout``).
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from lakehouse.errors import LakehouseError
from lakehouse.storage.interface import ObjectStore

log = logging.getLogger("lakehouse.storage")


class StorageStatus(msgspec.Struct, frozen=True, omit_defaults=True):
    status: str
    """``ok`` or ``degraded``."""
    reason: str = ""
    """Why it is degraded: S3's error code (SlowDown, AccessDenied ...) or the failure's
    kind (ReadTimeoutError, timeout); absent when ok."""


class StorageHealth:
    """The store's health, probed at most once per ``cache_seconds``."""

    def __init__(
        self, store: ObjectStore, *, cache_seconds: float = 1.0, timeout_seconds: float = 3.0
    ) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        self._timeout_seconds = timeout_seconds
        self._lock = asyncio.Lock()
        self._checked_at = -float("inf")
        self._status = StorageStatus("ok")

    async def check(self) -> StorageStatus:
        async with self._lock:
            if time.monotonic() - self._checked_at < self._cache_seconds:
                return self._status
            try:
                await asyncio.wait_for(self._store.probe(), self._timeout_seconds)
            except TimeoutError:
                self._status = StorageStatus("degraded", "timeout")
            except LakehouseError as exc:  # storage's own errors, a 404 or 412 among them
                self._status = StorageStatus("degraded", _reason(exc))
            except Exception as exc:  # a closed client, a bug: /health still answers
                log.warning("the storage probe failed", exc_info=True)
                self._status = StorageStatus("degraded", type(exc).__name__)
            else:
                self._status = StorageStatus("ok")
            self._checked_at = time.monotonic()
            return self._status


def _reason(exc: LakehouseError) -> str:
    details = exc.details if isinstance(exc.details, dict) else {}
    return str(details.get("reason") or exc.code)
