"""The app in-process: unknown routes and unhandled errors in the one error shape,
request ids, the OpenAPI schema."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar import get
from litestar.testing import AsyncTestClient

from lakehouse.app import create_app
from lakehouse.config import Settings


def assert_error_shape(body: Any, code: str) -> None:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


async def test_unknown_route_is_json_404(local_settings: Settings) -> None:
    async with AsyncTestClient(app=create_app(local_settings)) as client:
        response = await client.get("/no/such/route")
    assert response.status_code == 404
    assert_error_shape(response.json(), "not_found")
    assert response.headers["x-request-id"]


async def test_unhandled_exception_is_json_500_without_internals(
    local_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    @get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail /etc/something")

    app = create_app(local_settings)
    app.register(boom)
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert_error_shape(response.json(), "internal_error")
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert any(
        r.exc_info and "secret internal detail" in str(r.exc_info[1]) for r in caplog.records
    )


async def test_request_id_generated_when_absent(local_settings: Settings) -> None:
    async with AsyncTestClient(app=create_app(local_settings)) as client:
        first = await client.get("/health")
        second = await client.get("/health")
        bogus = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", bogus.headers["x-request-id"])


def test_openapi_schema_served(local_settings: Settings) -> None:
    from litestar.testing import TestClient

    with TestClient(app=create_app(local_settings)) as client:
        response = client.get("/docs/openapi.json")
    assert response.status_code == 200
    assert "/health" in response.json()["paths"]
