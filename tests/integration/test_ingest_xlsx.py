"""Excel ingest through the real `lakehouse serve` on both backends: a workbook written by
xlsxwriter, sent raw with ``?format=xlsx``, read back with SQL; ``?sheet=``; a renamed CSV
and an unknown sheet are 400s that leave nothing behind; an xlsx appended to a dataset
first loaded from CSV. (The converter's rules one by one: tests/unit/test_ingest_xlsx.py.)"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from lakehouse.app import build_services
from lakehouse.storage import ObjectStore
from tests.support.ingest import spool_dir
from tests.support.servers import LakehouseServer
from tests.support.xlsx import Formula, Merged, rewritten, xlsx_bytes

OCTET_STREAM = {"content-type": "application/octet-stream"}


def _zip_without_workbook() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "no workbook here")
    return buffer.getvalue()


NOT_A_WORKBOOK = _zip_without_workbook()
WORKBOOK = xlsx_bytes(
    {
        "shifts": [
            ["worker", "zip", "hours", "rate", "pay", "day", Merged("notes", 2), "shift"],
            ["Ann", "01234", 8, 12.5, Formula("=C2*D2", 100), dt.datetime(2024, 1, 2),
             "late", "ok", 1],
            ["Bo", "60601", 6, 10, Formula("=C3*D3", 60), dt.datetime(2024, 1, 3), None, None,
             "night"],
        ],
        "rates": [["role", "rate"], ["cook", 15], ["host", 12.25]],
    }
)  # fmt: skip


@pytest.fixture
async def http(module_server: LakehouseServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=module_server.url, timeout=60) as client:
        yield client


@pytest.fixture
async def store(module_server: LakehouseServer) -> AsyncIterator[ObjectStore]:
    services = build_services(module_server.settings)
    await services.store.start()
    yield services.store
    await services.store.close()


async def ingest(http: httpx.AsyncClient, query: str, body: bytes) -> httpx.Response:
    return await http.post(f"/v1/ingest?{query}", content=body, headers=OCTET_STREAM)


async def sql(http: httpx.AsyncClient, statement: str) -> list[list[Any]]:
    """The rows of a query, each as a list of its values."""
    response = await http.post("/v1/sql", json={"sql": statement})
    assert response.status_code == 200, response.text
    return [list(row.values()) for row in response.json()]


async def test_a_workbook_is_ingested_typed_from_its_cells_and_queried(
    http: httpx.AsyncClient,
) -> None:
    response = await ingest(http, "name=shifts&format=xlsx", WORKBOOK)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["row_count"] == 2
    assert body["schema"] == [
        {"name": "worker", "type": "VARCHAR"},
        {"name": "zip", "type": "VARCHAR"},
        {"name": "hours", "type": "BIGINT"},
        {"name": "rate", "type": "DOUBLE"},
        {"name": "pay", "type": "BIGINT"},
        {"name": "day", "type": "DATE"},
        {"name": "notes", "type": "VARCHAR"},
        {"name": "column_8", "type": "VARCHAR"},
        {"name": "shift", "type": "VARCHAR"},
    ]
    [defaulted] = body["ingest"]["defaulted"]  # reported as a CSV column mixing kinds is
    assert defaulted["name"] == "shift"
    assert "'night' (text)" in defaulted["reason"]
    assert body["ingest"]["widened"] == []
    rows = await sql(
        http,
        "SELECT worker, zip, hours * rate = pay, CAST(day AS VARCHAR), notes, column_8, shift "
        "FROM shifts ORDER BY worker",
    )
    assert rows == [
        ["Ann", "01234", True, "2024-01-02", "late", "ok", "1"],
        ["Bo", "60601", True, "2024-01-03", None, None, "night"],
    ]
    described = (await http.get("/v1/datasets/shifts")).json()
    typing = {c["name"]: c for c in described["columns"]}
    assert (typing["zip"]["type"], typing["zip"]["source"]) == ("VARCHAR", "inferred")
    assert typing["zip"]["reason"] is None  # text cells: no guess was made
    assert typing["shift"]["reason"] == defaulted["reason"]

    response = await ingest(http, "name=rates&format=xlsx&sheet=rates", WORKBOOK)
    assert response.status_code == 200, response.text
    assert await sql(http, "SELECT role, rate FROM rates ORDER BY role") == [
        ["cook", 15.0],
        ["host", 12.25],
    ]


async def test_a_renamed_csv_an_unknown_or_empty_sheet_is_a_400_and_leaves_nothing(
    http: httpx.AsyncClient, store: ObjectStore, module_server: LakehouseServer
) -> None:
    response = await ingest(http, "name=fake&format=xlsx", b"id,name\n1,Ann\n")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "format_mismatch"
    assert error["details"]["declared"] == "xlsx"
    assert error["details"]["detected"] == "csv"
    # A zip that is no workbook gets past detection, and the reader refuses it.
    response = await ingest(http, "name=fake&format=xlsx", NOT_A_WORKBOOK)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_xlsx"
    assert "holds no Excel workbook" in error["message"]
    assert "/" not in error["message"]  # no local path

    response = await ingest(http, "name=fake&format=xlsx&sheet=Sheet1", WORKBOOK)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "unknown_sheet"
    assert error["details"]["sheets"] == ["shifts", "rates"]

    response = await ingest(http, "name=fake&format=xlsx", xlsx_bytes({"blank": []}))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "empty_sheet"
    listing = (await http.get("/catalog/list")).json()
    assert "fake" not in {m["name"] for m in listing["datasets"]}
    assert await store.list("datasets/fake/") == []
    spool = spool_dir(module_server.settings)
    assert not spool.exists() or list(spool.iterdir()) == []


async def test_an_xlsx_is_appended_to_a_dataset_loaded_from_csv(http: httpx.AsyncClient) -> None:
    csv = b"worker,zip,rate,day\nCy,02134,9.5,2023-12-31\n"
    created = await http.post(
        "/v1/ingest?name=roster", content=csv, headers={"content-type": "text/csv"}
    )
    assert created.status_code == 200, created.text
    appended = await ingest(
        http,
        "name=roster&format=xlsx&mode=append",
        xlsx_bytes(
            {"s": [["worker", "zip", "rate", "day"], ["Di", "00501", 11, dt.datetime(2024, 1, 5)]]}
        ),
    )
    assert appended.status_code == 200, appended.text
    # rate: whole numbers in this sheet, written as the dataset's DOUBLE.
    assert appended.json()["schema"] == created.json()["schema"]
    assert await sql(
        http, "SELECT worker, zip, rate, CAST(day AS VARCHAR) FROM roster ORDER BY worker"
    ) == [
        ["Cy", "02134", 9.5, "2023-12-31"],
        ["Di", "00501", 11.0, "2024-01-05"],
    ]


def _with_long_cell(characters: int) -> bytes:
    """A workbook whose cell B2 holds ``characters`` x's. Excel stops at 32,767, and so
    do openpyxl and xlsxwriter when writing: the text is put into the sheet's XML."""
    placeholder = b"LONG-CELL-PLACEHOLDER"
    original = xlsx_bytes({"notes": [["id", "note"], [1, placeholder.decode()]]})
    workbook = rewritten(
        original, lambda name, data: (name, data.replace(placeholder, b"x" * characters))
    )
    with zipfile.ZipFile(io.BytesIO(workbook)) as archive:
        assert any(b"x" * characters in archive.read(name) for name in archive.namelist())
    return workbook


async def test_a_cell_longer_than_max_field_bytes_is_refused_before_it_is_parsed(
    http: httpx.AsyncClient, store: ObjectStore, module_server: LakehouseServer
) -> None:
    """openpyxl and its XML parser hold a cell's text whole, several times over (a 1 GB
    cell peaked at 12.5 GB): a text past ``ingest.max_field_bytes``, CSV's largest field,
    is a 400 before the workbook is read."""
    limit = module_server.settings.ingest.max_field_bytes
    response = await ingest(http, "name=long_cell&format=xlsx", _with_long_cell(limit + 1))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "field_too_large"
    assert error["details"]["max_field_bytes"] == limit
    assert error["details"]["part"].startswith("xl/")
    assert await store.list("datasets/long_cell/") == []
    # A long cell within the limit is read as usual.
    response = await ingest(http, "name=long_cell&format=xlsx", _with_long_cell(limit - 64))
    assert response.status_code == 200, response.text
    rows = await sql(http, "SELECT id, length(note) FROM long_cell")
    assert rows == [[1, limit - 64]]
