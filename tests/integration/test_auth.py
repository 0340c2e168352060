"""Optional bearer-token auth, and refusing to expose an open server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from lakehouse.app import create_app
from lakehouse.config import Settings
from tests.support.http import HTTP
from tests.support.servers import VENV_BIN, LakehouseServer, free_port, wait_until_ready

TOKEN = "s3cr3t-token-for-tests"


@pytest.fixture
async def auth_client(local_settings: Settings):  # type: ignore[no-untyped-def]
    local_settings.server.auth_token = TOKEN
    async with AsyncTestClient(app=create_app(local_settings)) as client:
        yield client


async def test_health_needs_no_token(auth_client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    response = await auth_client.get("/health")
    assert response.status_code == 200
    assert TOKEN not in response.text


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}],
)
async def test_other_routes_need_the_token(
    auth_client: AsyncTestClient,
    headers: dict[str, str],  # type: ignore[type-arg]
) -> None:
    for method, path in [("GET", "/storage/list"), ("POST", "/sql"), ("GET", "/docs/openapi.json")]:
        response = await auth_client.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.json()["error"]["code"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "x-request-id" in response.headers


async def test_right_token_passes(auth_client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    response = await auth_client.get(
        "/docs/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200


def test_token_from_environment_on_real_server(local_settings: Settings, tmp_path: Path) -> None:
    server = LakehouseServer(local_settings, tmp_path, env={"LAKEHOUSE_AUTH_TOKEN": TOKEN}).start()
    try:
        assert HTTP.get(f"{server.url}/docs/openapi.json").status_code == 401
        authed = HTTP.get(
            f"{server.url}/docs/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert authed.status_code == 200
    finally:
        assert server.stop() == 0
    assert TOKEN not in server.logs()


def test_refuses_non_loopback_without_token(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "lakehouse"), "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode != 0
    assert "auth token" in result.stderr
    assert "--insecure" in result.stderr


def test_insecure_flag_allows_non_loopback(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            str(VENV_BIN / "lakehouse"),
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--insecure",
        ],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/health", proc)
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
