"""Key validation shared by every backend: keys can never escape the root."""

from __future__ import annotations

from lakehouse.layout import IN_PROGRESS_PREFIX
from lakehouse.storage.errors import InvalidKey

MAX_KEY_BYTES = 1024  # S3's own limit


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise ``InvalidKey``.

    Safe means: non-empty, at most 1024 UTF-8 bytes, relative (no leading
    ``/`` or backslash, no drive letter), no ``.``/``..``/empty segments, no
    NUL, control characters or backslashes, no segment starting with
    ``IN_PROGRESS_PREFIX`` (reserved for writes in progress: a key can never
    name, list or overwrite one).
    """
    if not key:
        raise InvalidKey("object key is empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKey(f"object key is longer than {MAX_KEY_BYTES} bytes")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise InvalidKey("object key contains a NUL or control character")
    if "\\" in key:
        raise InvalidKey("object key contains a backslash")
    if key.startswith("/") or (len(key) > 1 and key[1] == ":"):
        raise InvalidKey("object key must be relative, not an absolute path")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidKey(f"object key {key!r} has an empty, '.' or '..' segment")
        if segment.startswith(IN_PROGRESS_PREFIX):
            raise InvalidKey(
                f"object key segments may not start with {IN_PROGRESS_PREFIX!r} (reserved)"
            )
    return key


def validate_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a key-like string (a trailing ``/`` is fine)."""
    if prefix == "":
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix
