"""Fuzzing the HTTP API with schemathesis, from the app's own OpenAPI schema.

A real ``lakehouse serve`` (local backend) answers generated requests for
every operation in the app's schema; each response must not be a 5xx and
must match what the schema declares for that operation: a documented status
code, a documented Content-Type, and a body that validates against the
documented schema (the one error shape for every 4xx).

Checks deliberately left out:
- ``negative_data_rejection``: it wants every schema-invalid request refused
  with 4xx, but an unknown query parameter or an extra header is ignored,
  by design, and a string path parameter has no invalid values.
- ``positive_data_acceptance``: it wants every schema-valid request answered
  2xx, but a well-typed dataset name need not exist (404) and a well-typed
  SQL string need not parse (400); the schema cannot say which do.
- stateful checks (``use_after_free``, ``ensure_resource_availability``) and
  ``ignored_auth``: the server runs without a token here (tests/integration/test_auth.py
  covers auth), and links between operations are not declared.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
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
from tests.support.servers import LakehouseServer
from tests.support.settings import make_settings

MAX_EXAMPLES = 50
"""Per operation (plus schemathesis's explicit and coverage cases): about 900 requests, ~10 s."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# (operation, status) -> responses seen; the last test reports and checks the tally.
SEEN: Counter[tuple[str, int]] = Counter()

SEED_CSV = b"worker_id,name,state,hourly_rate\n1,Ada,IL,31.5\n2,Grace,CA,28.0\n"


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LakehouseServer]:
    workdir = tmp_path_factory.mktemp("fuzz")
    server_settings = make_settings("local", workdir, None)
    server_settings.logging.level = "info"
    server = LakehouseServer(server_settings, workdir).start()
    # One real dataset, so generated SQL and names sometimes meet existing data.
    seeded = httpx.post(
        f"{server.url}/v1/ingest?name=workers",
        content=SEED_CSV,
        headers={"Content-Type": "text/csv"},
    )
    assert seeded.status_code == 200, seeded.text
    yield server
    server.stop()
    assert "unhandled error" not in server.logs(), server.logs()


def _app_openapi() -> dict[str, Any]:
    return create_app(Settings()).openapi_schema.to_schema()


# Built in-process at collection time (the server is not up yet), and checked below
# to be the very schema the server serves. schemathesis.pytest.from_fixture would
# load it from the server, but it fails on pytest 9 ('Function' has no '_nodeid').
schema = schemathesis.openapi.from_dict(_app_openapi())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
)
def test_api_conforms_to_its_schema(case: schemathesis.Case, fuzz_server: LakehouseServer) -> None:
    response = case.call_and_validate(base_url=fuzz_server.url, checks=CHECKS, timeout=30)
    SEEN[(case.operation.label, response.status_code)] += 1


def test_fuzzed_schema_is_the_one_served(fuzz_server: LakehouseServer) -> None:
    """The fuzzed schema is what /docs/openapi.json serves, with every route; /docs renders."""
    openapi = httpx.get(f"{fuzz_server.url}/docs/openapi.json").json()
    assert openapi == _app_openapi()
    assert {"/health", "/v1/ingest", "/v1/sql", "/storage/put/{key}", "/admin/gc"} <= set(
        openapi["paths"]
    )
    page = httpx.get(f"{fuzz_server.url}/docs")
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
    assert set(ingest_body) == {"multipart/form-data", "text/csv"}


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


def test_fuzzing_reached_every_operation_and_both_outcomes() -> None:
    """Guards against a fuzz run that quietly generated nothing (runs after the fuzz tests)."""
    if not SEEN:
        pytest.skip("only meaningful in the same run as test_api_conforms_to_its_schema")
    operations = {operation for operation, _ in SEEN}
    statuses = Counter(status for (_, status), n in SEEN.items() for _ in range(n))
    total = sum(SEEN.values())
    print(f"\nfuzz: {total} requests, {len(operations)} operations, by status {dict(statuses)}")
    assert len(operations) == len(list(schema.get_all_operations()))
    assert any(200 <= status < 300 for status in statuses)
    assert any(400 <= status < 500 for status in statuses)
