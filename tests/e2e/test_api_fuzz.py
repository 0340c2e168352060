"""Fuzzing the HTTP API with schemathesis, from the app's own OpenAPI schema.

A real ``lakehouse serve`` answers generated requests for every operation in
the app's schema; each response must not be a 5xx and must match what the
schema declares for that operation: a documented status code, a documented
Content-Type, and a body that validates against the documented schema (the
one error shape for every 4xx). Three servers are fuzzed: the local backend
(the most cases), S3 on moto, and the local backend with an auth token, where
every generated request carries the bearer header (and the schema is the one
that declares it).

Checks deliberately left out:
- ``negative_data_rejection``: it wants every schema-invalid request refused
  with 4xx, but an unknown query parameter or an extra header is ignored,
  by design, and a string path parameter has no invalid values.
- ``positive_data_acceptance``: it wants every schema-valid request answered
  2xx, but a well-typed dataset name need not exist (404) and a well-typed
  SQL string need not parse (400); the schema cannot say which do.
- stateful checks (``use_after_free``, ``ensure_resource_availability``): links
  between operations are not declared.
- ``ignored_auth``: requests without the token are checked below, more simply
  (every operation answers 401), and in tests/integration/test_auth.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lakehouse.app import create_app
from lakehouse.config import Settings
from lakehouse.ingest.routes import IngestResponse
from lakehouse.query.routes import SqlRequest
from tests.support.http import HTTP
from tests.support.servers import LakehouseServer, MotoServer
from tests.support.settings import make_settings

MAX_EXAMPLES = 50
"""Per operation (plus schemathesis's explicit and coverage cases): about 900 requests, ~10 s."""
MAX_EXAMPLES_AGAIN = 10
"""Per operation on S3 and with a token: the same code answers, so fewer cases suffice."""

TOKEN = "fuzz-token-0001"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# (server, operation, status) -> responses seen; the last tests report and check the tally.
SEEN: Counter[tuple[str, str, int]] = Counter()

SEED_CSV = b"worker_id,name,state,hourly_rate\n1,Ada,IL,31.5\n2,Grace,CA,28.0\n"


def _start_fuzz_server(
    workdir: Path, backend: str, moto: MotoServer | None, token: str = ""
) -> LakehouseServer:
    server_settings = make_settings(backend, workdir, moto)
    server_settings.logging.level = "info"
    server_settings.server.auth_token = token
    server = LakehouseServer(server_settings, workdir).start()
    # One real dataset, so generated SQL and names sometimes meet existing data.
    seeded = HTTP.post(
        f"{server.url}/v1/ingest?name=workers",
        content=SEED_CSV,
        headers={"Content-Type": "text/csv", **(AUTH if token else {})},
    )
    assert seeded.status_code == 200, seeded.text
    return server


def _stop_fuzz_server(server: LakehouseServer) -> None:
    server.stop()
    assert "unhandled error" not in server.logs(), server.logs()


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LakehouseServer]:
    server = _start_fuzz_server(tmp_path_factory.mktemp("fuzz"), "local", None)
    yield server
    _stop_fuzz_server(server)


@pytest.fixture(scope="module")
def s3_fuzz_server(
    tmp_path_factory: pytest.TempPathFactory, moto: MotoServer
) -> Iterator[LakehouseServer]:
    server = _start_fuzz_server(tmp_path_factory.mktemp("fuzz-s3"), "s3", moto)
    yield server
    _stop_fuzz_server(server)


@pytest.fixture(scope="module")
def token_fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LakehouseServer]:
    server = _start_fuzz_server(tmp_path_factory.mktemp("fuzz-token"), "local", None, TOKEN)
    yield server
    _stop_fuzz_server(server)


def _app_openapi(token: str = "") -> dict[str, Any]:
    app_settings = Settings()
    app_settings.server.auth_token = token
    return create_app(app_settings).openapi_schema.to_schema()


# Built in-process at collection time (the servers are not up yet), and checked below
# to be the very schemas the servers serve. schemathesis.pytest.from_fixture would
# load them from a server, but it fails on pytest 9 ('Function' has no '_nodeid').
schema = schemathesis.openapi.from_dict(_app_openapi())
token_schema = schemathesis.openapi.from_dict(_app_openapi(TOKEN))


def _fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,
    )


def _call(
    case: schemathesis.Case,
    server: LakehouseServer,
    kind: str,
    headers: dict[str, str] | None = None,
) -> None:
    # Set on the case itself: it wins over an Authorization header schemathesis made up.
    case.headers = {**(case.headers or {}), **(headers or {})}
    response = case.call_and_validate(base_url=server.url, checks=CHECKS, timeout=30)
    SEEN[(kind, case.operation.label, response.status_code)] += 1


@schema.parametrize()
@_fuzz_settings(MAX_EXAMPLES)
def test_api_conforms_to_its_schema(case: schemathesis.Case, fuzz_server: LakehouseServer) -> None:
    _call(case, fuzz_server, "local")


@schema.parametrize()
@_fuzz_settings(MAX_EXAMPLES_AGAIN)
def test_api_on_s3_conforms_to_its_schema(
    case: schemathesis.Case, s3_fuzz_server: LakehouseServer
) -> None:
    _call(case, s3_fuzz_server, "s3")


@token_schema.parametrize()
@_fuzz_settings(MAX_EXAMPLES_AGAIN)
def test_api_with_a_token_conforms_to_its_schema(
    case: schemathesis.Case, token_fuzz_server: LakehouseServer
) -> None:
    _call(case, token_fuzz_server, "token", AUTH)


def test_without_the_token_every_operation_but_health_is_401(
    token_fuzz_server: LakehouseServer,
) -> None:
    for operation in token_schema.get_all_operations():
        api = operation.ok()
        path = api.path.replace("{key}", "k").replace("{name}", "workers")
        response = HTTP.request(api.method.upper(), f"{token_fuzz_server.url}{path}")
        if api.path == "/health":
            assert response.status_code == 200
        else:
            assert response.status_code == 401, (api.method, api.path)
            assert response.json()["error"]["code"] == "unauthorized"


def test_fuzzed_schema_is_the_one_served(fuzz_server: LakehouseServer) -> None:
    """The fuzzed schema is what /docs/openapi.json serves, with every route; /docs renders."""
    openapi = HTTP.get(f"{fuzz_server.url}/docs/openapi.json").json()
    assert openapi == _app_openapi()
    assert {"/health", "/v1/ingest", "/v1/sql", "/storage/put/{key}", "/admin/gc"} <= set(
        openapi["paths"]
    )
    page = HTTP.get(f"{fuzz_server.url}/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]


def test_schema_is_valid_openapi_with_honest_examples() -> None:
    """The spec validates, and the documented examples decode as the declared types."""
    openapi = _app_openapi()
    validate(openapi)
    ingest_ok = openapi["paths"]["/v1/ingest"]["post"]["responses"]["200"]["content"]
    for example in ingest_ok["application/json"]["examples"].values():
        msgspec.convert(example["value"], IngestResponse, strict=False)
    sql_body = openapi["paths"]["/v1/sql"]["post"]["requestBody"]["content"]["application/json"]
    assert sql_body["examples"]["count"]["value"] == {"sql": "SELECT count(*) FROM workers_500k"}
    for example in sql_body["examples"].values():
        msgspec.convert(example["value"], SqlRequest)
    ingest_body = openapi["paths"]["/v1/ingest"]["post"]["requestBody"]["content"]
    assert set(ingest_body) == {"multipart/form-data", "text/csv", "application/octet-stream"}
    description = openapi["paths"]["/v1/ingest"]["post"]["requestBody"]["description"]
    for media_type in ("application/vnd.apache.parquet", "application/gzip", "application/zstd"):
        assert media_type in description


def test_bearer_scheme_declared_only_with_a_token() -> None:
    assert "securitySchemes" not in _app_openapi().get("components", {})
    settings = Settings()
    settings.server.auth_token = "s3cret-token"
    openapi = create_app(settings).openapi_schema.to_schema()
    validate(openapi)
    assert openapi["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer"}
    }
    assert openapi["security"] == [{"bearer": []}]
    assert openapi["paths"]["/health"]["get"]["security"] == []  # /health stays open
    assert "401" in openapi["paths"]["/v1/sql"]["post"]["responses"]


@pytest.mark.parametrize("kind", ["local", "s3", "token"])
def test_fuzzing_reached_every_operation_and_both_outcomes(kind: str) -> None:
    """Guards against a fuzz run that quietly generated nothing (runs after the fuzz
    tests, in the same run: alone, it fails)."""
    seen = {(operation, status): n for (k, operation, status), n in SEEN.items() if k == kind}
    operations = {operation for operation, _ in seen}
    statuses = Counter(status for (_, status), n in seen.items() for _ in range(n))
    print(f"\nfuzz {kind}: {sum(seen.values())} requests, by status {dict(statuses)}")
    assert len(operations) == len(list(schema.get_all_operations())), "fuzzing did not run"
    assert any(200 <= status < 300 for status in statuses)
    assert any(400 <= status < 500 for status in statuses)
    if kind == "token":  # with the header, nothing is refused for want of it
        assert 401 not in statuses
