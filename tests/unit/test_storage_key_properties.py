"""Property tests: no generated object key ever escapes the local storage root."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.storage import InvalidKey, LocalObjectStore, validate_key

# A valid key segment longer than a local filesystem allows in one name (255 bytes).
LONG = "x" * 256

# Pieces that path tricks are made of, plus arbitrary text.
_SEGMENTS = st.one_of(
    st.sampled_from(
        ["..", ".", "", "a", "%2e%2e", "..\\x", "/", "~", "\x00", "C:", "\\", "é", " ", LONG]
    ),
    st.text(min_size=0, max_size=12),
)
KEYS = st.lists(_SEGMENTS, min_size=1, max_size=8).map("/".join) | st.text(max_size=40)


def _files_under(directory: Path) -> set[Path]:
    return {Path(dirpath) / name for dirpath, _, names in os.walk(directory) for name in names}


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=KEYS)
def test_no_key_escapes_the_root(tmp_path: Path, key: str) -> None:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    outside_before = _files_under(tmp_path) - _files_under(root)
    store = LocalObjectStore(root)
    try:
        validate_key(key)
        accepted = True
    except InvalidKey:
        accepted = False

    async def attempt() -> None:
        try:
            info = await store.put(key, b"x")
        except InvalidKey:
            # The one key the store refuses although it is valid: a segment the
            # filesystem cannot name (S3 would take it).
            assert not accepted or LONG in key.split("/")
            return
        assert accepted
        written = (root / info.key).resolve()
        assert written.is_relative_to(root.resolve())
        assert written.read_bytes() == b"x"
        await store.delete(key)

    asyncio.run(attempt())
    outside_after = _files_under(tmp_path) - _files_under(root)
    assert outside_after == outside_before, f"{key!r} wrote outside the root"


@settings(max_examples=300, deadline=None)
@given(key=KEYS)
def test_accepted_keys_are_relative_and_clean(key: str) -> None:
    try:
        validate_key(key)
    except InvalidKey:
        return
    assert not key.startswith("/")
    assert "\x00" not in key
    assert all(part not in ("", ".", "..") for part in key.split("/"))
    assert len(key.encode("utf-8", "surrogatepass")) <= 1024
