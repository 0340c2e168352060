"""Every command and curl example in the README runs, and prints what the README says.

The quick-start blocks run against a real server: ``127.0.0.1:3110`` becomes
the test server's address and the 500,000-row fixture a 3,000-row one. A
comment right under a command that starts with ``{`` or ``[`` is its expected
output (``...`` matches anything); other comments are prose.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from lakehouse.config import Settings, load_settings
from tests.support.http import HTTP
from tests.support.servers import VENV_BIN, LakehouseServer, MotoServer, free_port, wait_until_ready
from tests.support.settings import TEST_ACCESS_KEY, TEST_SECRET_KEY

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
ROWS = 3000


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def commands_with_expectations(block: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) pairs; backslash continuations joined."""
    steps: list[tuple[str, list[str]]] = []
    pending = ""
    for line in block.splitlines():
        if pending:
            pending += "\n" + line
            if not line.endswith("\\"):
                steps.append((pending, []))
                pending = ""
        elif line.startswith(("# {", "# [")) and steps:
            steps[-1][1].append(line[2:])
        elif line.strip() and not line.startswith("#"):
            if line.endswith("\\"):
                pending = line
            else:
                steps.append((line, []))
    return steps


def localise(text: str, url: str) -> str:
    return (
        text.replace("http://127.0.0.1:3110", url)
        .replace("500000", str(ROWS))
        .replace(".venv/bin/", f"{VENV_BIN}/")
        .replace(" scripts/", f" {REPO}/scripts/")
    )


def run_block(block: str, url: str, cwd: Path) -> None:
    for command, expected in commands_with_expectations(block):
        command = localise(command, url)
        result = subprocess.run(
            ["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        for line in expected:
            pattern = ".*".join(re.escape(part) for part in localise(line, url).split("..."))
            assert re.search(pattern, result.stdout), f"{command}\n{result.stdout[:500]}"


def test_quick_start_examples_run(local_settings: Settings, tmp_path: Path) -> None:
    blocks = [b for b in code_blocks("sh") if "curl" in b]
    assert len(blocks) >= 2
    server = LakehouseServer(local_settings, tmp_path).start()
    try:
        for block in blocks:
            run_block(block, server.url, tmp_path)
    finally:
        server.stop()
    assert (tmp_path / "result.parquet").stat().st_size > 0


def test_s3_config_snippet_serves(tmp_path: Path, moto: MotoServer) -> None:
    [snippet] = code_blocks("toml")
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        f'[s3]\naccess_key_id = "{TEST_ACCESS_KEY}"\nsecret_access_key = "{TEST_SECRET_KEY}"\n'
    )
    config = tmp_path / "lakehouse.toml"
    config.write_text(
        snippet.replace("http://127.0.0.1:9000", moto.endpoint_url).replace(
            "/etc/lakehouse/secrets.toml", str(secrets)
        )
    )
    settings = load_settings(str(config), env={})
    assert settings.storage.backend == "s3"
    [serve] = [b for b in code_blocks("sh") if "serve --config" in b]
    port = free_port()
    proc = subprocess.Popen(
        ["bash", "-c", localise(serve.strip(), "")],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "LAKEHOUSE_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/health", proc)
        assert HTTP.get(f"{url}/health").json()["storage"]["backend"] == "s3"
        ingest = HTTP.post(f"{url}/v1/ingest?name=s3demo", content=b"a,b\n1,x\n")
        assert ingest.status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["lint", "typecheck"])
def test_make_quality_targets_pass(target: str) -> None:
    result = subprocess.run(["make", target], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
