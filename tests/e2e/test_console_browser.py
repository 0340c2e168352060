"""The web console in a real browser: the system Chromium driven by Playwright against a
real `lakehouse serve`. One server and one browser for the module (a second server only
for the token test); each test has its own page, screenshotted when the test fails."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from lakehouse.config import Settings
from tests.support.browser import ChromiumNotFound, artifacts_dir, chromium_executable
from tests.support.http import HTTP
from tests.support.servers import LakehouseServer
from tests.support.settings import make_settings

TOKEN = "console-test-token-0001"
XSS_HEADER = "<script>window.__xss = 1</script>"
XSS_CELL = '"><img src=x onerror="window.__xss = 2">'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LakehouseServer]:
    workdir = tmp_path_factory.mktemp("console")
    lakehouse = LakehouseServer(make_settings("local", workdir, None), workdir).start()
    yield lakehouse
    lakehouse.stop()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # A missing Chromium fails (never skips): make test installs it (scripts/ensure_chromium.sh).
    try:
        executable = chromium_executable()
    except ChromiumNotFound as exc:
        pytest.fail(str(exc), pytrace=False)
    chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
    yield chromium
    chromium.close()


@pytest.fixture
def page(
    browser: Browser, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Page]:
    context = browser.new_context(accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        shot = artifacts_dir(tmp_path_factory.getbasetemp()) / f"{request.node.name}.png"
        tab.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failed test: {shot}")
    context.close()


def ingest(server: LakehouseServer, name: str, data: str, token: str = "") -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = HTTP.post(
        f"{server.url}/v1/ingest?name={name}",
        files={"file": (f"{name}.csv", data.encode(), "text/csv")},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_upload_previews_then_commits_with_an_override(
    server: LakehouseServer, page: Page, tmp_path: Path
) -> None:
    source = tmp_path / "staff.csv"
    source.write_text("id,zip,hours\n1,01234,5\n2,60601,7\n3,10001,8\n")
    page.goto(f"{server.url}/console/upload")
    page.set_input_files("#file", str(source))
    expect(page.locator("#dataset-name")).to_have_value("staff")
    page.click("#preview-button")

    preview = page.locator("#preview-columns")
    expect(preview).to_be_visible()
    expect(page.locator("#upload-progress")).to_have_js_property("value", 100)
    expect(page.locator("#progress-text")).to_have_text("done")
    zip_row = preview.locator("tr[data-column=zip]")
    expect(zip_row.locator("select")).to_have_value("varchar")
    expect(zip_row.locator("td.risk")).to_have_text("⚠ leading zeros")
    expect(preview.locator("tr[data-column=hours] select")).to_have_value("bigint")
    expect(page.locator("#preview-sample tbody tr").first).to_contain_text("01234")
    # Previewed, not committed.
    assert HTTP.get(f"{server.url}/v1/datasets/staff").status_code == 404

    preview.locator("tr[data-column=hours] select").select_option("double")
    page.click("#commit-button")
    committed = page.locator("#committed-schema")
    expect(committed).to_be_visible()
    expect(committed.locator("tr", has_text="hours")).to_contain_text("DOUBLE")
    expect(committed.locator("tr", has_text="zip")).to_contain_text("VARCHAR")
    expect(page.locator("#committed-warnings")).to_contain_text("leading zeros")
    schema = HTTP.get(f"{server.url}/v1/datasets/staff").json()["columns"]
    assert [(c["name"], c["type"]) for c in schema] == [
        ("id", "BIGINT"), ("zip", "VARCHAR"), ("hours", "DOUBLE")
    ]  # fmt: skip

    page.goto(server.url)
    expect(page.locator("#datasets a", has_text="staff")).to_be_visible()
    page.fill("#dataset-filter", "no_such")
    expect(page.locator("#datasets")).to_contain_text("No dataset matches")


def test_upload_of_a_compressed_tsv_previews_its_format(
    server: LakehouseServer, page: Page, tmp_path: Path
) -> None:
    source = tmp_path / "rates.tsv.gz"
    source.write_bytes(gzip.compress(b"code,kind\tlabel\n1,2\t3\n"))
    page.goto(f"{server.url}/console/upload")
    page.set_input_files("#file", str(source))
    expect(page.locator("#dataset-name")).to_have_value("rates")
    page.click("#preview-button")
    expect(page.locator("#preview-summary")).to_contain_text('(tsv, gzip, delimiter "\\t")')
    expect(page.locator("#preview-columns tr[data-column='code,kind']")).to_be_visible()


def test_upload_shows_the_servers_progress_after_the_file_is_sent(
    server: LakehouseServer, page: Page, tmp_path: Path
) -> None:
    source = tmp_path / "big.csv"
    with source.open("w") as out:  # big enough that converting it takes a while
        out.write("id,zip,label,amount\n")
        for i in range(300_000):
            out.write(f"{i},{i % 99999:05d},label {i % 1000},{i * 0.25}\n")
    page.goto(f"{server.url}/console/upload")
    # Every text the progress line shows, in order.
    page.evaluate(
        """() => {
            window.__progress = [];
            const text = document.getElementById("progress-text");
            new MutationObserver(() => window.__progress.push(text.textContent))
                .observe(text, {childList: true, characterData: true, subtree: true});
        }"""
    )
    page.set_input_files("#file", str(source))
    page.click("#preview-button")
    expect(page.locator("#preview-columns")).to_be_visible(timeout=60_000)
    expect(page.locator("#progress-text")).to_have_text("done")
    seen = page.evaluate("window.__progress")
    server_side = [t for t in seen if "server: " in t]
    assert server_side, seen
    assert all(
        re.search(r"server: (receiving|converting|committing) · [\d,]+ rows converted", t)
        for t in server_side
    ), server_side
    # The job is known to the server, finished, with every row.
    [job] = [j for j in HTTP.get(f"{server.url}/v1/ingest/jobs").json() if j["name"] == "big"]
    assert (job["phase"], job["rows_converted"]) == ("done", 300_000)


def test_dataset_page_shows_schema_profile_sample_and_versions(
    server: LakehouseServer, page: Page
) -> None:
    ingest(
        server,
        "shifts",
        "day,zip,hours\n2024-01-01,01234,5\n2024-01-03,01234,\n2024-01-09,60601,9\n",
    )
    page.goto(f"{server.url}/console/datasets/shifts")
    expect(page.locator("#schema tr", has_text="zip")).to_contain_text("leading zeros")
    hours = page.locator(".profile[data-column=hours]")
    expect(hours.locator(".nulls")).to_have_text("1")
    expect(hours.locator(".distinct")).to_have_text("2")
    expect(hours.locator(".min")).to_have_text("5")
    expect(hours.locator(".max")).to_have_text("9")
    expect(hours.locator("svg.histogram rect")).to_have_count(10)
    zip_profile = page.locator(".profile[data-column=zip]")
    expect(zip_profile.locator("table.top tr").first).to_have_text(re.compile(r"01234\s*2"))
    expect(page.locator(".profile[data-column=day] svg.histogram")).to_be_visible()
    expect(page.locator("#sample tbody tr")).to_have_count(3)
    expect(page.locator("#history tbody tr")).to_have_count(1)
    page.click("#query-this")
    expect(page.locator("#row-count")).to_have_text("3 rows")


def test_sql_page_runs_pages_and_remembers(server: LakehouseServer, page: Page) -> None:
    page.goto(f"{server.url}/console/sql")
    page.fill("#sql-text", "SELECT range AS n FROM range(250)")
    page.press("#sql-text", "Control+Enter")
    expect(page.locator("#row-count")).to_have_text("250 rows")
    expect(page.locator("#elapsed")).to_have_text(re.compile(r"[0-9.]+ ms"))
    expect(page.locator("#result-table tbody tr")).to_have_count(100)
    page.click("#next-page")
    expect(page.locator("#result-table tbody tr").first).to_have_text("100")
    assert "q=SELECT%20range" in page.url
    # The URL reproduces the query; the browser remembers it.
    page.goto(page.url)
    expect(page.locator("#row-count")).to_have_text("250 rows")
    expect(page.locator("#recent .recent-query").first).to_have_text(
        "SELECT range AS n FROM range(250)"
    )


def test_sql_error_is_shown_with_its_position(server: LakehouseServer, page: Page) -> None:
    page.goto(f"{server.url}/console/sql")
    page.fill("#sql-text", "SELECT 1\nFRM nowhere")
    page.click("#run")
    error = page.locator("#result .error")
    expect(error).to_contain_text("invalid_sql at line 2, column 5")
    expect(error.locator(".error-message")).to_contain_text("syntax error")


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json", "arrow"])
def test_download_reads_back(server: LakehouseServer, page: Page, fmt: str) -> None:
    page.goto(f"{server.url}/console/sql")
    page.fill("#sql-text", "SELECT range AS n, 'x' || range AS label FROM range(3)")
    with page.expect_download() as download_info:
        page.click(f"button.download[data-format={fmt}]")
    download = download_info.value
    assert download.suggested_filename == f"result.{fmt}"
    data = Path(download.path()).read_bytes()
    if fmt == "csv":
        rows = [[int(r["n"]), r["label"]] for r in csv.DictReader(io.StringIO(data.decode()))]
    elif fmt == "json":
        rows = [[r["n"], r["label"]] for r in json.loads(data)]
    else:
        table = (
            pq.read_table(pa.BufferReader(data))
            if fmt == "parquet"
            else ipc.open_stream(data).read_all()
        )
        rows = [[r["n"], r["label"]] for r in table.to_pylist()]
    assert rows == [[0, "x0"], [1, "x1"], [2, "x2"]]


def test_xss_probes_render_as_text(server: LakehouseServer, page: Page, tmp_path: Path) -> None:
    header = XSS_HEADER.replace('"', '""')
    cell = XSS_CELL.replace('"', '""')
    data = f'id,"{header}"\n1,"{cell}"\n2,plain\n'
    ingest(server, "probes", data)
    page.goto(f"{server.url}/console/datasets/probes")
    expect(page.locator("#sample th", has_text=XSS_HEADER)).to_be_visible()
    expect(page.locator("#sample td", has_text=XSS_CELL)).to_be_visible()
    expect(page.locator(f'.profile h3:has-text("{XSS_HEADER}")')).to_be_visible()

    page.goto(f"{server.url}/console/sql")
    page.fill("#sql-text", "SELECT * FROM probes")
    page.click("#run")
    expect(page.locator("#result-table td", has_text=XSS_CELL)).to_be_visible()
    expect(page.locator("#recent .recent-query").first).to_have_text("SELECT * FROM probes")

    source = tmp_path / "probes.csv"
    source.write_text(data)
    page.goto(f"{server.url}/console/upload")
    page.set_input_files("#file", str(source))
    page.fill("#dataset-name", "probes_preview")
    page.click("#preview-button")
    expect(page.locator("#preview-sample td", has_text=XSS_CELL)).to_be_visible()
    expect(page.locator("#preview-columns td", has_text=XSS_HEADER)).to_be_visible()
    for path in ["/", "/console/datasets/probes", "/console/upload"]:
        if path != "/console/upload":
            page.goto(f"{server.url}{path}")
            page.wait_for_load_state("networkidle")
        assert page.locator("main img").count() == 0, path
        assert page.evaluate("window.__xss") is None, path


def test_pages_carry_a_strict_csp(server: LakehouseServer) -> None:
    for path in ["/", "/console/sql", "/ui/datasets", "/v1/datasets", "/nowhere"]:
        response = HTTP.get(f"{server.url}{path}")
        csp = response.headers["content-security-policy"]
        assert "'unsafe-inline'" not in csp, path
        assert "'unsafe-eval'" not in csp, path
        assert "frame-ancestors 'none'" in csp, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    assert "script-src 'self';" in HTTP.get(server.url).headers["content-security-policy"]


def test_docs_render_with_no_request_leaving_the_server(
    server: LakehouseServer, page: Page
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{server.url}/docs")
    expect(page.get_by_role("heading", name="Lakehouse (0.1.0)")).to_be_visible()
    expect(page.get_by_role("menuitem", name="query")).to_be_visible()
    outside = [u for u in requested if not u.startswith((server.url, "data:", "blob:"))]
    assert outside == []


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[LakehouseServer]:
    settings: Settings = make_settings("local", tmp_path, None)
    settings.server.auth_token = TOKEN
    lakehouse = LakehouseServer(settings, tmp_path).start()
    yield lakehouse
    lakehouse.stop()


def test_with_a_token_nothing_loads_until_it_is_given(
    token_server: LakehouseServer, page: Page
) -> None:
    ingest(token_server, "secret_rows", "id\n1\n", token=TOKEN)
    requests: list[tuple[str, str | None]] = []
    page.on("request", lambda r: requests.append((r.url, r.headers.get("authorization"))))
    page.goto(token_server.url)
    expect(page.locator("#token-form")).to_be_visible()
    page.wait_for_load_state("networkidle")
    expect(page.locator("#datasets")).not_to_contain_text("secret_rows")
    assert not [url for url, _ in requests if "/ui/" in url]

    page.fill("#token-form input[name=token]", TOKEN)
    page.click("#token-form button")
    expect(page.locator("#datasets a", has_text="secret_rows")).to_be_visible()
    expect(page.locator("#token-form")).to_be_hidden()
    fragments = [auth for url, auth in requests if "/ui/" in url]
    assert fragments
    assert all(auth == f"Bearer {TOKEN}" for auth in fragments)
    assert not [url for url, _ in requests if TOKEN in url]
    assert TOKEN not in token_server.logs()
