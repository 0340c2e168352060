"""The fast path of POST /v1/sql (ADR 0017) answers exactly as the Litestar route does.

A request with a query parameter the fast path does not take (``x``, which the
route ignores) goes through the route, so each pair below compares the two."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from lakehouse.app import REQUEST_MAX_BODY_BYTES, create_app
from lakehouse.config import Settings

CASES = [
    ("", {"sql": "SELECT 1 AS one, 'a' AS t"}, {}),
    ("format=csv", {"sql": "SELECT 1 AS one, 'a' AS t"}, {}),
    ("", {"sql": "SELECT ? AS n", "params": [7]}, {"accept": "application/x-ndjson"}),
    ("timeout=5", {"sql": "SELECT range AS i FROM range(3)"}, {}),
    ("format=xml", {"sql": "SELECT 1"}, {}),  # 400 unsupported_format
    ("", {"sql": "DROP VIEW x"}, {}),  # 403
    ("", {"sql": "SELEC 1"}, {}),  # 400 invalid_query
    ("", {"sql": "SELECT * FROM nowhere"}, {}),  # 404
]


def _visible(response: Any) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in response.headers.items() if k != "x-request-id"}
    return response.status_code, headers, response.content


@pytest.mark.parametrize(("query", "body", "headers"), CASES)
async def test_fast_path_and_route_answer_alike(
    local_settings: Settings, query: str, body: dict[str, Any], headers: dict[str, str]
) -> None:
    async with AsyncTestClient(app=create_app(local_settings)) as http:
        fast = await http.post(f"/v1/sql?{query}", json=body, headers=headers)
        routed = await http.post(f"/v1/sql?{query}&x=1", json=body, headers=headers)
    assert _visible(fast) == _visible(routed)
    assert fast.headers["x-request-id"]


async def test_a_body_past_the_limit_is_413(local_settings: Settings) -> None:
    padding = " " * REQUEST_MAX_BODY_BYTES
    async with AsyncTestClient(app=create_app(local_settings)) as http:
        response = await http.post(
            "/v1/sql",
            content=b'{"sql": "SELECT 1"' + padding.encode() + b"}",
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_a_body_of_its_declared_length_is_answered_without_waiting_for_its_end(
    local_settings: Settings,
) -> None:
    """Granian delivers a small body as one message saying more may follow, then an
    empty last one a runtime round trip later (ADR 0017): a body whose Content-Length
    bytes have all come is answered at once, and its connection is kept alive."""
    app = create_app(local_settings)
    body = b'{"sql": "SELECT 41 + 1 AS answer"}'
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/sql",
        "raw_path": b"/v1/sql",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"test"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 3110),
        "state": {},
    }
    messages = [{"type": "http.request", "body": body, "more_body": True}]
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await never.wait()  # the empty last message, which must not be waited for
        raise AssertionError("unreachable")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async with AsyncTestClient(app=app):  # the app's start-up (storage, engine)
        await asyncio.wait_for(app(scope, receive, send), timeout=10)
    start, *bodies = sent
    assert start["status"] == 200
    assert (b"connection", b"close") not in start["headers"]
    assert b"".join(m.get("body", b"") for m in bodies) == b'[{"answer":42}]'
