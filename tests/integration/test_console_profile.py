"""The console's profile fragment (/ui/datasets/NAME/profile) in-process, on datasets
that used to break it: one column, header only, a column or dataset named ``v``, and
doubles at the edge of their range; and the console page's link to the API docs."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from lakehouse.app import create_app
from lakehouse.config import Settings

Client = AsyncTestClient  # type: ignore[type-arg]


@pytest.fixture
async def client(local_settings: Settings) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=create_app(local_settings)) as test_client:
        yield test_client


async def ingest(client: Client, name: str, csv: str, **params: str) -> None:
    response = await client.post(
        "/v1/ingest",
        params={"name": name, **params},
        content=csv.encode(),
        headers={"content-type": "text/csv"},
    )
    assert response.status_code in (200, 201), response.text


async def profile(client: Client, name: str) -> str:
    response = await client.get(f"/ui/datasets/{name}/profile")
    assert response.status_code == 200, response.text
    assert "could not be computed" not in response.text
    return response.text


def field(html: str, column: str, name: str) -> str:
    section = html.split(f'data-column="{column}"', 1)[1].split("</section>", 1)[0]
    match = re.search(rf'<dd class="{name}">([^<]*)</dd>', section)
    assert match is not None, section
    return match.group(1)


async def test_a_one_column_dataset_is_profiled(client: Client) -> None:
    await ingest(client, "single", "city\nOslo\nOslo\nRome\n")
    html = await profile(client, "single")
    assert field(html, "city", "distinct") == "2"
    assert '<td>Oslo</td><td class="num">2</td>' in html


async def test_a_header_only_file_is_profiled(client: Client) -> None:
    await ingest(client, "empty", "city\n")
    html = await profile(client, "empty")
    assert field(html, "city", "nulls") == "0"


async def test_columns_and_a_dataset_named_v(client: Client) -> None:
    await ingest(client, "v", "V,n\na,1\na,2\nb,3\n")
    html = await profile(client, "v")
    assert field(html, "V", "distinct") == "2"
    assert '<td>a</td><td class="num">2</td>' in html


async def test_doubles_at_the_edge_of_their_range(client: Client) -> None:
    await ingest(client, "extreme", "x,label\n1e308,a\n-1e308,b\n1.5,c\n")
    html = await profile(client, "extreme")
    assert field(html, "x", "min") == "-1e+308"
    assert field(html, "x", "distinct") == "3"
    assert field(html, "x", "max") == "1e+308"
    assert '<svg class="histogram"' in html


async def test_with_a_token_the_api_docs_link_says_it_needs_one(local_settings: Settings) -> None:
    local_settings.server.auth_token = "console-docs-token"
    async with AsyncTestClient(app=create_app(local_settings)) as http:
        page = await http.get("/")
        docs = await http.get("/docs")
    assert page.status_code == 200
    assert docs.status_code == 401  # what a browser following the link gets
    assert "API docs (token needed)" in page.text
    assert "/docs/openapi.json with an Authorization: Bearer header" in page.text
