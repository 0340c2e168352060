"""The README's two commands work on a fresh clone with only Python 3.11 and make."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.servers import free_port, wait_until_ready

REPO = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    """The commands in the README's first code block."""
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S)
    assert block, "README has no sh code block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_run_and_test_commands() -> None:
    assert readme_commands() == ["make run", "make test"]


@pytest.mark.slow(seconds=110)
def test_fresh_clone_runs_server_and_tests(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    # Nothing from this test run's venv: only the system's Python, make and git.
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "LAKEHOUSE_PORT": str(free_port()),
    }
    if "PIP_INDEX_URL" in os.environ:
        env["PIP_INDEX_URL"] = os.environ["PIP_INDEX_URL"]
    if "PIP_CONFIG_FILE" in os.environ:
        env["PIP_CONFIG_FILE"] = os.environ["PIP_CONFIG_FILE"]

    log = (tmp_path / "run.log").open("wb")
    run = subprocess.Popen(
        ["make", "run"], cwd=clone, env=env, stdout=log, stderr=log, start_new_session=True
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{env['LAKEHOUSE_PORT']}/health", run, timeout=400)
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        run.wait(60)
        log.close()
    assert (clone / "data").is_dir(), "the default local data directory was not created"

    tests = subprocess.run(
        [
            "make",
            "test",
            # One process and a small part of the suite: that the clone's suite runs is
            # what this checks; the rest of it runs here.
            "PYTEST_WORKERS=0",
            "PYTEST_ARGS=tests/unit/test_config.py tests/integration/test_app.py"
            " -q -p no:cacheprovider",
        ],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert re.search(r"\d+ passed", tests.stdout)
