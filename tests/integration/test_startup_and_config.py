"""How `lakehouse serve` finds its configuration and starts, and what it never shows:

- the config file: ``--config`` over ``LAKEHOUSE_CONFIG`` over ``./lakehouse.toml``;
- a non-loopback address is served when a token is set (and the token is required);
- a storage error while loading stops start-up with a one-line reason, no
  traceback, no secret;
- error responses never hold the server's local data directory.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import msgspec
import pyarrow as pa
from litestar.testing import AsyncTestClient

from lakehouse.app import create_app
from lakehouse.config import Settings
from tests.support.http import HTTP
from tests.support.query import register_table
from tests.support.servers import VENV_BIN, MotoServer, free_port, stop_process, wait_until_ready
from tests.support.settings import TEST_ACCESS_KEY, TEST_SECRET_KEY, make_settings

TOKEN = "config-test-token-0001"


def serve(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "lakehouse"), "serve", *args],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_config_lookup_order(tmp_path: Path) -> None:
    """Each candidate file holds a key of its own that does not exist: the error
    naming it tells which file ``serve`` read."""
    for name in ("cwd", "env", "flag"):
        (tmp_path / f"{name}.toml").write_text(f"[server]\nfrom_{name}_file = 1\n")
    (tmp_path / "lakehouse.toml").write_text("[server]\nfrom_cwd_file = 1\n")
    env = {"LAKEHOUSE_CONFIG": str(tmp_path / "env.toml")}

    flag = serve(tmp_path, "--config", str(tmp_path / "flag.toml"), env=env)
    from_env = serve(tmp_path, env=env)
    from_cwd = serve(tmp_path)
    for result, expected in ((flag, "flag"), (from_env, "env"), (from_cwd, "cwd")):
        assert result.returncode == 2, result.stderr
        read = {name for name in ("cwd", "env", "flag") if f"from_{name}_file" in result.stderr}
        assert read == {expected}, result.stderr


def test_non_loopback_address_is_served_when_a_token_is_set(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(VENV_BIN / "lakehouse"), "serve", "--host", "0.0.0.0", "--port", str(port)],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "LAKEHOUSE_AUTH_TOKEN": TOKEN},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/health", proc)
        url = f"http://127.0.0.1:{port}/catalog/list"
        assert HTTP.get(url).status_code == 401
        authed = HTTP.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert authed.status_code == 200
    finally:
        assert stop_process(proc) == 0
    assert TOKEN not in log.read_text()


def test_storage_error_at_start_up_exits_with_a_one_line_reason(
    moto: MotoServer, tmp_path: Path
) -> None:
    settings = make_settings("s3", tmp_path, moto)
    settings.storage.s3.create_bucket = False  # the bucket does not exist
    config = tmp_path / "lakehouse.toml"
    config.write_bytes(msgspec.toml.encode(settings))
    result = serve(tmp_path, "--config", str(config), "--port", str(free_port()))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("lakehouse: cannot start: "), result.stderr
    assert settings.storage.s3.bucket in last
    assert "NoSuchBucket" in last
    for never in ("Traceback", TEST_SECRET_KEY, TEST_ACCESS_KEY, "Unclosed client session"):
        assert never not in result.stderr, result.stderr
    assert "listening" not in result.stderr


def break_objects(data_dir: Path) -> None:
    """Under running views: one dataset's object deleted, another's overwritten."""
    [gone] = (data_dir / "datasets" / "gone").glob("*.parquet")
    gone.unlink()
    [broken] = (data_dir / "datasets" / "broken").glob("*.parquet")
    broken.write_bytes(b"not parquet any more")


async def test_query_errors_never_show_the_data_directory(local_settings: Settings) -> None:
    # Read from the files each time (no in-memory copies, no cached answers), so the
    # objects broken behind the catalog's back are noticed.
    local_settings.query.hot_dataset_bytes = 0
    local_settings.query.result_cache_bytes = 0
    data_dir = Path(local_settings.storage.data_dir).resolve()  # noqa: ASYNC240 - not I/O
    async with AsyncTestClient(app=create_app(local_settings)) as http:
        for name in ("gone", "broken"):
            await register_table(http, name, pa.table({"n": pa.array([1, 2], pa.int64())}))
            assert (await http.post("/sql", json={"sql": f"SELECT * FROM {name}"})).json()
        await asyncio.to_thread(break_objects, data_dir)
        answers = {
            "vanished object": await http.post("/sql", json={"sql": "SELECT * FROM gone"}),
            "corrupt object": await http.post("/sql", json={"sql": "SELECT * FROM broken"}),
            "no such file": await http.post(
                "/sql", json={"sql": f"SELECT * FROM read_parquet('{data_dir}/datasets/x.parquet')"}
            ),
        }
    for what, answer in answers.items():
        assert 400 <= answer.status_code < 600, (what, answer.text)
        assert str(data_dir) not in answer.text, (what, answer.text)
    assert answers["vanished object"].json()["error"]["code"] == "dataset_object_missing"
    assert "datasets/gone/" in answers["vanished object"].text  # the key, not the path
