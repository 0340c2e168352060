"""The floor for bench/query.py: a bare ASGI app (no Litestar) under embedded Granian.

    .venv/bin/python bench/bare_granian.py PORT THREADS PARQUET [PARQUET ...]

Served the same way as ``lakehouse serve`` (embedded Granian, ASGI, one
process, one event loop). ``POST /v1/sql`` with ``{"sql": "..."}``: the body
is decoded with msgspec, the query runs on one of 4 DuckDB cursors in a
worker thread (the event loop never blocks, as in the real server), and the
rows go back as a JSON list of objects. THREADS is DuckDB's ``threads``
(0: DuckDB's default, one per core), as ``[query] threads``. No sandbox, no views refresh, no
streaming, no time limit: what is left is HTTP + a thread hop + DuckDB.
"""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb
import msgspec

POOL = 4


class Body(msgspec.Struct):
    sql: str


def build_app(threads: int, paths: list[str]) -> Any:
    con = duckdb.connect(config={"threads": threads} if threads else {})
    con.execute(f"CREATE VIEW workers_500k AS SELECT * FROM read_parquet({paths!r})")
    con.execute("SET parquet_metadata_cache = true")
    free: asyncio.Queue[duckdb.DuckDBPyConnection] = asyncio.Queue()
    for _ in range(POOL):
        free.put_nowait(con.cursor())
    executor = ThreadPoolExecutor(max_workers=POOL)
    decoder = msgspec.json.Decoder(Body)
    encoder = msgspec.json.Encoder()

    def run(cursor: duckdb.DuckDBPyConnection, sql: str) -> bytes:
        cursor.execute(sql)
        names = [d[0] for d in cursor.description or []]
        return encoder.encode([dict(zip(names, row, strict=True)) for row in cursor.fetchall()])

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        sql = decoder.decode(body).sql if body else "SELECT 1"
        cursor = await free.get()
        try:
            out = await asyncio.get_running_loop().run_in_executor(executor, run, cursor, sql)
        finally:
            free.put_nowait(cursor)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(out)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": out})

    return app


async def serve(port: int, threads: int, paths: list[str]) -> None:
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server

    server = Server(
        build_app(threads, paths),
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        log_enabled=False,
        log_level=LogLevels.warning,
        backlog=1024,
    )
    await server.serve()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]))
