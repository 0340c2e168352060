"""The command-line client: ``lakehouse ingest|sql|datasets|describe|history``.

It talks to a server over HTTP only and imports nothing of the server's modules
(ADR 0016), so it can run on any machine that reaches the API.
"""

from lakehouse.client.commands import add_commands, run
from lakehouse.client.http import ClientError, LakehouseClient

__all__ = ["ClientError", "LakehouseClient", "add_commands", "run"]
