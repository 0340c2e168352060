"""Unit tests of the key rules every backend shares (``validate_key``)."""

from __future__ import annotations

import pytest

from lakehouse.storage import InvalidKey, validate_key, validate_prefix
from lakehouse.storage.keys import MAX_KEY_BYTES


@pytest.mark.parametrize(
    "key",
    [
        "x",
        "datasets/workers/0b6c2f3e-1b8e-4d0e-9a55-6f1f5b7c3a10.parquet",
        "_catalog/manifests/workers.parquet",
        "a/b/c/d.csv",
        "with space/and-dash_und.erscore",
        "ünïcødé/数据.parquet",
        "...x",  # dots inside a name are not a '..' segment
        "a..b/c",
        "k" * MAX_KEY_BYTES,
    ],
)
def test_safe_keys_are_accepted_unchanged(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty"),
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("a/..", "'..'"),
        ("./x", "'.'"),
        ("a/./x", "'.'"),
        ("a//b", "empty"),
        ("a/", "empty"),
        ("/etc/passwd", "absolute"),
        ("//server/share", "absolute"),
        ("C:/windows", "absolute"),
        ("c:x", "absolute"),
        ("a\\b", "backslash"),
        ("..\\x", "backslash"),
        ("a\x00b", "NUL"),
        ("a\nb", "control"),
        ("a\x1fb", "control"),
        ("a\x7fb", "control"),
        ("k" * (MAX_KEY_BYTES + 1), "longer"),
        ("é" * (MAX_KEY_BYTES // 2 + 1), "longer"),  # the bound is in UTF-8 bytes
        # Temp files of writes in progress are invisible to LIST and the sweep:
        # no key may name one.
        (".tmp-x", "reserved"),
        ("x/.tmp-hidden", "reserved"),
        ("_tmp/ingest/.tmp-ingest-abc.csv", "reserved"),
    ],
)
def test_unsafe_keys_are_invalid(key: str, reason: str) -> None:
    with pytest.raises(InvalidKey) as caught:
        validate_key(key)
    assert caught.value.status_code == 400
    assert caught.value.code == "invalid_key"
    assert reason in caught.value.message


@pytest.mark.parametrize("prefix", ["", "datasets/", "datasets/wor", "_catalog/manifests/"])
def test_list_prefixes(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["../", "/", "/etc", "a//", "a\x00"])
def test_unsafe_list_prefixes(prefix: str) -> None:
    with pytest.raises(InvalidKey):
        validate_prefix(prefix)
