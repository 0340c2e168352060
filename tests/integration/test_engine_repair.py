"""ADR 0008's self-repair on a real server: a fatal DuckDB error answers 503
``engine_restarted`` with Retry-After, /health reports ``restarting`` then ``ok``
with the restart counted, and the next query (on a dataset) succeeds.

DuckDB 1.5.5 offers no reproducible fatal error through a sandboxed SELECT, so
the fault comes from the test-only switch ``LAKEHOUSE_TEST_FATAL_SQL`` (off
unless set; see ``lakehouse/query/engine.py``)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pyarrow as pa

from lakehouse.config import Settings
from lakehouse.query.engine import TEST_FATAL_SQL_ENV
from tests.support.query import register_table
from tests.support.servers import LakehouseServer

FAULT_SQL = "SELECT 'the test-only fault' AS fault"


async def test_fatal_error_is_503_and_the_engine_heals(
    local_settings: Settings, tmp_path: Path
) -> None:
    server = LakehouseServer(local_settings, tmp_path, env={TEST_FATAL_SQL_ENV: FAULT_SQL})
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            await register_table(http, "heal", pa.table({"n": pa.array([1, 2, 3], pa.int64())}))
            before = (await http.get("/health")).json()
            assert before["status"] == "ok"
            assert before["query"]["restarts"] == 0

            failed = await http.post("/sql", json={"sql": FAULT_SQL})
            assert failed.status_code == 503, failed.text
            assert failed.json()["error"]["code"] == "engine_restarted"
            assert failed.headers["retry-after"] == "1"

            # The reopen takes a DuckDB start (tens of ms); /health answers meanwhile.
            seen = [(await http.get("/health")).json()]
            deadline = time.monotonic() + 10
            while seen[-1]["query"]["status"] != "ok" and time.monotonic() < deadline:
                seen.append((await http.get("/health")).json())
            statuses = [h["query"]["status"] for h in seen]
            assert statuses[0] == "restarting", statuses
            assert seen[0]["status"] == "degraded"
            assert set(statuses) <= {"restarting", "ok"}, statuses
            assert statuses[-1] == "ok", statuses
            assert seen[-1]["status"] == "ok"
            assert seen[-1]["query"]["restarts"] == 1

            answer = await http.post("/sql", json={"sql": "SELECT sum(n) AS total FROM heal"})
            assert answer.status_code == 200, answer.text
            assert answer.json() == [{"total": 6}]
            assert "the query engine failed" in server.logs()
    finally:
        assert server.stop() == 0, server.logs()
