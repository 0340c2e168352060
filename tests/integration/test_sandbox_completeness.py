"""The SQL sandbox holds whatever DuckDB adds, on a real server (ADR 0008).

- Every table function (and table macro) DuckDB has, with the extensions the
  server loads, is either on the sandbox's allow-list or refused with 403
  ``sandbox_violation``: a DuckDB upgrade that adds one cannot open a hole.
- A ``..`` percent-encoded three times reaches nothing outside the data root:
  not through the storage routes (GET, PUT, DELETE), not through SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from lakehouse.config import Settings
from lakehouse.query.engine import httpfs_extension_path
from lakehouse.query.sandbox import PATH_TABLE_FUNCTIONS, SAFE_TABLE_FUNCTIONS
from tests.support.servers import LakehouseServer
from tests.support.settings import make_settings

# "../" with each character percent-encoded three times: %2e -> %252e -> %25252e.
DOT_DOT_SLASH_3X = "%25252e%25252e%25252f"
OUTSIDE_TEXT = b"outside the data root"


def duckdb_table_functions() -> set[str]:
    """Every table function and table macro of a DuckDB with the server's extensions."""
    con = duckdb.connect(":memory:", config={"autoload_known_extensions": False})
    try:
        con.execute(f"LOAD '{httpfs_extension_path()}'")
        rows = con.execute(
            "SELECT DISTINCT function_name FROM duckdb_functions() "
            "WHERE function_type IN ('table', 'table_macro')"
        ).fetchall()
    finally:
        con.close()
    return {name for (name,) in rows}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox")


@pytest.fixture(scope="module")
def settings(workdir: Path) -> Settings:
    return make_settings("local", workdir, None)


@pytest.fixture(scope="module")
def http(settings: Settings, workdir: Path) -> Iterator[httpx.Client]:
    (workdir / "outside.txt").write_bytes(OUTSIDE_TEXT)
    server = LakehouseServer(settings, workdir).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            yield client
    finally:
        server.stop()


def test_every_table_function_off_the_allow_list_is_refused(http: httpx.Client) -> None:
    functions = duckdb_table_functions()
    allowed = SAFE_TABLE_FUNCTIONS | PATH_TABLE_FUNCTIONS
    # Without this, a renamed function would leave a stale entry nobody reviewed.
    assert allowed <= functions, f"allow-listed but not in DuckDB: {allowed - functions}"
    refused = sorted(functions - allowed)
    assert "enable_logging" in refused  # the enumeration works
    assert "query" in refused
    let_through = {}
    for name in refused:
        response = http.post("/sql", json={"sql": f'SELECT * FROM "{name}"()'})
        error = response.json()["error"] if response.status_code == 403 else {}
        if error.get("code") != "sandbox_violation" or error["details"]["function"] != name:
            let_through[name] = (response.status_code, response.text)
    assert let_through == {}


def test_an_allow_listed_table_function_runs(http: httpx.Client) -> None:
    # The refusals above are the sandbox's verdict on names, not a server that refuses all.
    response = http.post("/sql", json={"sql": "SELECT count(*) AS n FROM range(5)"})
    assert response.status_code == 200, response.text
    assert response.json() == [{"n": 5}]


def test_triple_encoded_dot_dot_never_leaves_the_root_through_storage(
    http: httpx.Client, workdir: Path, settings: Settings
) -> None:
    outside = workdir / "outside.txt"
    data_dir = Path(settings.storage.data_dir)
    climb = f"{DOT_DOT_SLASH_3X}outside.txt"
    nested = f"scratch/{DOT_DOT_SLASH_3X}{DOT_DOT_SLASH_3X}outside.txt"
    for key in (climb, nested):
        read = http.get(f"/storage/get/{key}")
        assert read.status_code in (400, 404), read.text
        assert OUTSIDE_TEXT not in read.content

        written = http.put(f"/storage/put/{key}", content=b"written through the API")
        deleted = http.delete(f"/storage/delete/{key}")
        assert outside.read_bytes() == OUTSIDE_TEXT
        if written.status_code in (200, 201):
            # Stored, then: under the root, by the literal (once-decoded) key.
            assert deleted.status_code == 204, deleted.text
            assert written.json()["key"].count("%252e") >= 2
        else:
            assert written.status_code == 400, written.text
    escaped = set(workdir.iterdir()) - {data_dir, outside}
    assert {p.name for p in escaped} <= {"lakehouse.toml", "server.log", "secrets.toml"}


def test_triple_encoded_dot_dot_never_reaches_a_file_through_sql(
    http: httpx.Client, settings: Settings
) -> None:
    datasets = Path(settings.storage.data_dir).resolve() / "datasets"
    climb = DOT_DOT_SLASH_3X * 2 + "outside.txt"
    for query in (
        f"SELECT content FROM read_text('{datasets}/{climb}')",
        f"SELECT * FROM '{datasets}/{climb}'",
        f"SELECT content FROM read_blob(['{datasets}/{climb}'])",
    ):
        response = http.post("/sql", json={"sql": query})
        assert response.status_code == 403, (query, response.text)
        assert response.json()["error"]["code"] == "sandbox_violation"
        assert OUTSIDE_TEXT.decode() not in response.text
