"""The system Chromium for the browser tests, driven by Playwright (never its own download)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


class ChromiumNotFound(RuntimeError):
    pass


def chromium_executable() -> str:
    """Where Chromium is: ``LAKEHOUSE_CHROMIUM``, else the first candidate on PATH (the
    places scripts/ensure_chromium.sh looks, and installs to)."""
    configured = os.environ.get("LAKEHOUSE_CHROMIUM")
    for candidate in ([configured] if configured else []) + list(CANDIDATES):
        found = shutil.which(candidate)
        if found:
            return found
    raise ChromiumNotFound(
        "the browser tests need Chromium and none was found (chromium on PATH or "
        "LAKEHOUSE_CHROMIUM): run scripts/ensure_chromium.sh (make test does)"
    )


def artifacts_dir(base: Path) -> Path:
    """Where failed browser tests leave their screenshots."""
    path = Path(os.environ.get("LAKEHOUSE_TEST_ARTIFACTS", base / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path
