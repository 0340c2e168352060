"""Agents: an MCP endpoint at ``/mcp`` to list, describe and query the datasets,
read-only, capped and audited (ADR 0018). Named so as not to shadow the ``mcp`` SDK."""

from lakehouse.agents.server import PATH, McpEndpoint
from lakehouse.agents.tools import DatasetTools

__all__ = ["PATH", "DatasetTools", "McpEndpoint"]
