"""One error shape across every endpoint (after Datasette's test_error_shape).

A table of bad requests, at least one per route and per kind of failure,
each answered with its status and a body that is exactly
``{"error": {"code", "message"[, "details"]}}``: nothing else at the top
level or inside ``error``, whichever layer refused the request (our
handlers, a module's service, Litestar's routing and validation, the
bearer-token middleware).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient

from lakehouse.app import create_app
from lakehouse.config import Settings

CSV = b"worker_id,name\n1,Ada\n2,Grace\n"
JSON = {"Content-Type": "application/json"}
TEXT_CSV = {"Content-Type": "text/csv"}
LIMIT = 1024  # max_put_bytes and max_upload_bytes in these tests

# One app (and one event loop) for the whole table: a lifespan per row would cost seconds.
pytestmark = pytest.mark.asyncio(loop_scope="module")

BAD_REQUESTS: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    # id, method, url, httpx kwargs, status, code
    ("unknown route", "GET", "/nope", {}, 404, "not_found"),
    ("wrong method", "DELETE", "/health", {}, 405, "method_not_allowed"),
    # storage
    ("traversal key", "PUT", "/storage/put/a/%2e%2e/b", {"content": b"x"}, 400, "invalid_key"),
    ("absolute key", "GET", "/storage/get/%2Fetc/passwd", {}, 400, "invalid_key"),
    # found by the fuzzer: a path segment past the filesystem's limit was a 502
    ("segment too long", "DELETE", "/storage/delete/" + "a" * 300, {}, 400, "invalid_key"),
    ("key too long", "PUT", "/storage/put/" + "ab/" * 400 + "c", {"content": b"x"}, 400,
     "invalid_key"),
    ("bad list prefix", "GET", "/storage/list?prefix=%2e%2e/x", {}, 400, "invalid_key"),
    ("missing object", "GET", "/storage/get/no/such/object", {}, 404, "object_not_found"),
    ("object too large", "PUT", "/storage/put/big", {"content": b"x" * (LIMIT + 1)}, 413,
     "object_too_large"),
    # catalog
    ("register malformed JSON", "POST", "/catalog/register",
     {"content": b"{not json", "headers": JSON}, 400, "bad_request"),
    ("register missing name", "POST", "/catalog/register",
     {"json": {"schema": [], "objects": [], "row_count": 0}}, 400, "bad_request"),
    ("register invalid name", "POST", "/catalog/register",
     {"json": {"name": "no spaces!", "schema": [{"name": "a", "type": "BIGINT"}],
               "objects": ["datasets/x/a.parquet"], "row_count": 1}}, 400,
     "invalid_dataset_name"),
    ("register missing object", "POST", "/catalog/register",
     {"json": {"name": "ghost", "schema": [{"name": "a", "type": "BIGINT"}],
               "objects": ["datasets/ghost/none.parquet"], "row_count": 1}}, 400,
     "missing_objects"),
    ("unknown dataset", "GET", "/catalog/manifest/nosuch", {}, 404, "dataset_not_found"),
    ("invalid dataset name", "GET", "/catalog/manifest/bad%20name", {}, 400,
     "invalid_dataset_name"),
    ("delete unknown dataset", "DELETE", "/catalog/manifest/nosuch", {}, 404,
     "dataset_not_found"),
    # ingest
    ("ingest without name", "POST", "/v1/ingest", {"content": CSV, "headers": TEXT_CSV}, 400,
     "missing_name"),
    ("ingest invalid name", "POST", "/ingest?name=a.b", {"content": CSV, "headers": TEXT_CSV},
     400, "invalid_dataset_name"),
    ("ingest no file", "POST", "/v1/ingest?name=w", {}, 400, "missing_file"),
    ("ingest multipart without file", "POST", "/v1/ingest?name=w",
     {"files": {"other": ("a.csv", CSV)}}, 400, "missing_file"),
    ("ingest XML body", "POST", "/v1/ingest?name=w",
     {"content": b"<a/>", "headers": {"content-type": "application/xml"}}, 415,
     "unsupported_upload"),
    ("ingest ragged rows", "POST", "/v1/ingest?name=w",
     {"content": b"a,b\n1,2\n3\n", "headers": TEXT_CSV}, 400, "ragged_rows"),
    ("ingest bad type override", "POST", "/v1/ingest?name=w&types=a:nosuchtype",
     {"content": b"a\n1\n", "headers": TEXT_CSV}, 400, "invalid_type_override"),
    ("ingest too large", "POST", "/v1/ingest?name=w",
     {"content": b"a\n" + b"1\n" * LIMIT, "headers": TEXT_CSV}, 413, "upload_too_large"),
    ("ingest other schema", "POST", "/v1/ingest?name=workers",
     {"content": b"other\nx\n", "headers": TEXT_CSV}, 409, "schema_conflict"),
    # sql
    ("sql malformed JSON", "POST", "/v1/sql", {"content": b"{", "headers": JSON}, 400,
     "bad_request"),
    ("sql missing sql", "POST", "/v1/sql", {"json": {}}, 400, "bad_request"),
    ("sql unknown field", "POST", "/sql", {"json": {"sql": "SELECT 1", "x": 1}}, 400,
     "bad_request"),
    ("sql forbidden", "POST", "/v1/sql", {"json": {"sql": "DROP VIEW workers"}}, 403,
     "forbidden_statement"),
    ("sql unknown table", "POST", "/v1/sql", {"json": {"sql": "SELECT * FROM nosuch"}}, 404,
     "table_not_found"),
    ("sql syntax error", "POST", "/v1/sql", {"json": {"sql": "SELEC 1"}}, 400, "invalid_sql"),
    ("sql time travel on a CTE", "POST", "/v1/sql",
     {"json": {"sql": "WITH c AS (SELECT 1) SELECT * FROM c AT (VERSION => 1)"}}, 400,
     "invalid_sql"),
    ("sql unknown format", "POST", "/v1/sql?format=xml", {"json": {"sql": "SELECT 1"}}, 400,
     "unsupported_format"),
    ("sql timeout not a number", "POST", "/v1/sql?timeout=soon",
     {"json": {"sql": "SELECT 1"}}, 400, "bad_request"),
    ("sql timeout negative", "POST", "/v1/sql?timeout=-1", {"json": {"sql": "SELECT 1"}}, 400,
     "bad_request"),
    ("sql past its time limit", "POST", "/v1/sql?timeout=0.05",
     {"json": {"sql": "SELECT count(*) FROM range(100000000000) t(i) WHERE i % 7 = 3"}}, 408,
     "query_timeout"),
]  # fmt: skip


@pytest.fixture(scope="module")
def shape_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings()
    settings.storage.data_dir = str(tmp_path_factory.mktemp("shape") / "data")
    settings.secrets.file = str(tmp_path_factory.getbasetemp() / "no-secrets.toml")
    settings.storage.max_put_bytes = LIMIT
    settings.ingest.max_upload_bytes = LIMIT
    return settings


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shape_client(shape_settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async with AsyncTestClient(app=create_app(shape_settings)) as client:
        seeded = await client.post("/v1/ingest?name=workers", content=CSV, headers=TEXT_CSV)
        assert seeded.status_code == 200, seeded.text
        yield client


def assert_one_error_shape(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message"} <= set(error) <= {"code", "message", "details"}, body
    assert error["code"] == code, body
    assert isinstance(error["message"], str)
    assert error["message"]


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status", "code"),
    [pytest.param(*row[1:], id=row[0]) for row in BAD_REQUESTS],
)
async def test_every_error_has_the_one_shape(
    shape_client: AsyncTestClient,  # type: ignore[type-arg]
    method: str,
    url: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    response = await shape_client.request(method, url, **kwargs)
    assert_one_error_shape(response, status, code)


@pytest.mark.parametrize(
    ("method", "url"),
    [("GET", "/catalog/list"), ("POST", "/v1/sql"), ("GET", "/nope"), ("POST", "/admin/gc")],
)
async def test_missing_token_has_the_one_shape(
    shape_settings: Settings, method: str, url: str
) -> None:
    settings = msgspec.convert(msgspec.to_builtins(shape_settings), Settings)
    settings.server.auth_token = "s3cret-token"
    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await client.request(method, url)
    assert_one_error_shape(response, 401, "unauthorized")
