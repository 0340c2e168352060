"""scripts/g0_smoke.sh end to end, on both backends, and proof that it fails when a check fails."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.http import HTTP

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "scripts" / "g0_smoke.sh"

pytestmark = pytest.mark.slow


def run_smoke(*args: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SMOKE), "--rows", "20000", "--workdir", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def served_url(output: str) -> str:
    match = re.search(r"lakehouse \(\w+ backend\) on (http://127\.0\.0\.1:\d+)", output)
    assert match, output
    return match.group(1)


def assert_stopped(url: str) -> None:
    with pytest.raises(httpx.TransportError):
        HTTP.get(f"{url}/health", timeout=2)


@pytest.mark.parametrize("backend", ["s3", "local"])
def test_smoke_passes(backend: str, tmp_path: Path) -> None:
    result = run_smoke("--backend", backend, workdir=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "G0 smoke: PASSED" in out
    assert 'count(*) -> [{"count_star()":20000}]' in out
    assert "(restarted): IL group-by equals DuckDB on the CSV" in out
    for timing in ("ingest seconds:", "parquet bytes:", "server peak RSS MiB:"):
        assert timing in out
    assert_stopped(served_url(out))


def test_smoke_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    result = run_smoke("--backend", "local", "--expect-count", "19999", workdir=tmp_path)
    assert result.returncode != 0
    assert "FAIL: row_count 20000, expected 19999" in result.stderr
    assert "G0 smoke: FAILED" in result.stdout
    assert_stopped(served_url(result.stdout))


def test_smoke_fails_when_the_server_cannot_start(tmp_path: Path) -> None:
    # A data directory that is a file: the server cannot start, the script must say so.
    (tmp_path / "data").write_text("not a directory")
    result = run_smoke("--backend", "local", workdir=tmp_path)
    assert result.returncode != 0
    assert "server did not become healthy" in result.stderr
