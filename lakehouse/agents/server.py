"""The MCP endpoint: the SDK's low-level server and its Streamable HTTP session manager,
serving ``DatasetTools`` at ``/mcp`` inside the app (ADR 0018).

Stateless, JSON responses: each POST carries one JSON-RPC message and gets one answer,
so there is no session to keep, time out or lose on a restart. A tool's failure (bad
SQL, a sandbox refusal, an unknown dataset, a time limit) is a tool result with
``isError`` and our error's ``{"error": {"code", "message"}}``, not a protocol error:
the agent reads it and can correct itself. Every call logs one audit line.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import msgspec
from litestar import asgi
from litestar.handlers import ASGIRouteHandler
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import (
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    Tool,
    ToolAnnotations,
)

from lakehouse import __version__
from lakehouse.agents.tools import CallRecord, DatasetTools
from lakehouse.errors import BadRequest, LakehouseError

audit_log = logging.getLogger("lakehouse.mcp.audit")
log = logging.getLogger("lakehouse.mcp")

T = TypeVar("T")
PATH = "/mcp"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

_READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)
TOOLS = [
    Tool(
        name="list_datasets",
        description="Every dataset: name, rows, columns, current version, last update.",
        input_schema={"type": "object", "properties": {}, "additionalProperties": False},
        annotations=_READ_ONLY,
    ),
    Tool(
        name="describe_dataset",
        description=(
            "One dataset: its columns with types and how each was typed at ingest, a few "
            "sample rows, a profile per column (min, max, approximate distinct values, "
            "percentage of nulls) and its version history."
        ),
        input_schema={
            "type": "object",
            "properties": {"name": {"type": "string", "description": "The dataset's name"}},
            "required": ["name"],
            "additionalProperties": False,
        },
        annotations=_READ_ONLY,
    ),
    Tool(
        name="query",
        description=(
            "Run one read-only SQL statement (DuckDB dialect; every dataset is a table named "
            "after it; `SELECT ... FROM t AT (VERSION => n)` reads an older version). Returns "
            "columns and rows. The server caps the rows and bytes returned: when the result "
            "has more, `truncated` is true and `total_rows` says how many when known, so "
            "aggregate or filter rather than page through everything."
        ),
        input_schema={
            "type": "object",
            "properties": {
                "sql": {"type": "string", "description": "One read-only statement"},
                "max_rows": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Return at most this many rows (the server's cap still holds)",
                },
            },
            "required": ["sql"],
            "additionalProperties": False,
        },
        annotations=_READ_ONLY,
    ),
]


class _NoArguments(msgspec.Struct, forbid_unknown_fields=True):
    pass


class _DescribeArguments(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class _QueryArguments(msgspec.Struct, forbid_unknown_fields=True):
    sql: str
    max_rows: int | None = None


class InvalidArguments(BadRequest):
    """A tool call's arguments do not match the tool's input schema."""

    code = "invalid_arguments"


class McpEndpoint:
    """The ASGI app to mount at ``/mcp`` and the context its session manager runs in."""

    def __init__(self, tools: DatasetTools, host: str) -> None:
        self._tools = tools
        server: Server[Any] = Server(
            "lakehouse",
            version=__version__,
            instructions=(
                "Read-only SQL over the lakehouse's datasets: list_datasets, then "
                "describe_dataset, then query. Results are capped; see `truncated`."
            ),
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )
        self._sessions = StreamableHTTPSessionManager(
            app=server,
            json_response=True,
            stateless=True,
            security_settings=_transport_security(host),
        )

    def running(self) -> AbstractAsyncContextManager[None]:
        """The session manager's task group, entered for the app's lifetime (its lifespan)."""
        return self._sessions.run()

    def route(self) -> ASGIRouteHandler:
        """The Litestar handler that hands every request under ``/mcp`` to the SDK."""

        @asgi(PATH, is_mount=True, copy_scope=True)
        async def mcp(scope: Any, receive: Any, send: Any) -> None:
            await self._sessions.handle_request(scope, receive, send)

        return mcp

    async def _list_tools(self, _: Any, __: PaginatedRequestParams | None) -> ListToolsResult:
        return ListToolsResult(tools=TOOLS)

    async def _call_tool(self, _: Any, params: CallToolRequestParams) -> CallToolResult:
        started = time.perf_counter()
        record = CallRecord()
        outcome = "ok"
        try:
            answer = await self._run(params.name, params.arguments or {}, record)
        except LakehouseError as exc:
            outcome = exc.code
            if exc.status_code >= 500 and exc.retry_after_seconds is None:  # a server fault
                log.error("MCP tool %s failed: %s", params.name, exc.message, exc_info=exc)
            return _error_result(exc.code, exc.message, exc.details)
        except Exception:
            outcome = "internal_error"
            log.exception("MCP tool %s failed", params.name)
            return _error_result("internal_error", "the tool failed; see the server log")
        else:
            record.bytes = len(answer)
            return CallToolResult(
                content=[TextContent(type="text", text=answer.decode())],
                structured_content=msgspec.json.decode(answer),
            )
        finally:
            _audit(params.name, record, outcome, started)

    async def _run(self, tool: str, arguments: dict[str, Any], record: CallRecord) -> bytes:
        if tool == "list_datasets":
            _arguments(arguments, _NoArguments)
            return await self._tools.list_datasets(record)
        if tool == "describe_dataset":
            describe = _arguments(arguments, _DescribeArguments)
            return await self._tools.describe_dataset(describe.name, record)
        if tool == "query":
            query = _arguments(arguments, _QueryArguments)
            return await self._tools.query(query.sql, query.max_rows, record)
        known = ", ".join(tool.name for tool in TOOLS)
        raise InvalidArguments(f"no tool named {tool!r}; the tools are {known}")


def _arguments(arguments: dict[str, Any], schema: type[T]) -> T:
    try:
        return msgspec.convert(arguments, schema)
    except msgspec.ValidationError as exc:
        raise InvalidArguments(f"invalid arguments: {exc}") from None


def _error_result(code: str, message: str, details: Any = None) -> CallToolResult:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    body = msgspec.json.encode({"error": error}, enc_hook=str)
    return CallToolResult(
        content=[TextContent(type="text", text=body.decode())],
        structured_content=msgspec.json.decode(body),
        is_error=True,
    )


def _audit(tool: str, record: CallRecord, outcome: str, started: float) -> None:
    """One line per tool call: what, on which data, and how much went back. The log's
    formatter adds the HTTP request's id (the SDK serves the call within that request)."""
    audit_log.info(
        "mcp tool call",
        extra={
            "tool": tool,
            "dataset": record.dataset,
            "sql_sha256": record.sql_sha256,
            "outcome": outcome,
            "rows": record.rows,
            "bytes": record.bytes,
            "truncated": record.truncated,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        },
    )


def _transport_security(host: str) -> TransportSecuritySettings | None:
    """On a loopback bind, the SDK's DNS-rebinding protection (only loopback Host and
    Origin headers). On any other bind the Host clients use is not known here, and the
    bearer token (required there, ADR 0012) is what keeps other pages out."""
    if host not in LOOPBACK_HOSTS:
        return None
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )
