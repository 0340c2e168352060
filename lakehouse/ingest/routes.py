"""HTTP routes of the ingest module (placeholder until its issue lands)."""

from __future__ import annotations

from litestar import Router, route

from lakehouse.errors import NotImplementedYet


@route("/{path:path}", http_method=["GET", "POST", "PUT", "DELETE"], include_in_schema=False)
async def not_yet(path: str) -> None:
    raise NotImplementedYet("the ingest module is not implemented yet")


router = Router(path="/ingest", route_handlers=[not_yet])
