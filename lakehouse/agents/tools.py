"""The three tools, on the catalog and the query engine: what each returns, and what
each call did (for the audit line). Nothing here knows MCP; ``server`` adapts it.

Every answer is JSON made here with msgspec (rows embedded as the query encoder wrote
them, so values read exactly as ``/v1/sql`` returns them); the server sends it both as
the tool's structured content and as its text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import msgspec

from lakehouse.agents.capped import CappedRows, doubled, fitting, read_capped
from lakehouse.catalog import Catalog, DatasetVersion, DescribedColumn, described_columns
from lakehouse.config import McpSettings
from lakehouse.errors import BadRequest
from lakehouse.query import QueryEngine, ResultFormat, column_stats_sql

SAMPLE_ROWS = 5
"""Rows of a dataset ``describe_dataset`` shows."""
HISTORY_VERSIONS = 20
"""The latest versions ``describe_dataset`` lists (``history_total`` counts them all)."""
_TRUNCATED_HINT = (
    "the result has more rows than returned: aggregate, filter, or page with "
    "ORDER BY ... LIMIT/OFFSET"
)
PROFILE_MAX_BYTES = 4 * 1024 * 1024
"""The profile is one short row per column; this only bounds a pathological table."""


@dataclass
class CallRecord:
    """What one tool call touched and returned, for the audit line."""

    dataset: str | None = None
    sql_sha256: str | None = None
    rows: int = 0
    bytes: int = 0
    truncated: bool = False


class DatasetLine(msgspec.Struct, frozen=True):
    name: str
    rows: int
    columns: int
    version: int
    updated: dt.datetime


class ColumnProfile(msgspec.Struct, frozen=True):
    """One row of ``column_stats_sql``, the parts an agent needs."""

    column: str
    min: str | None
    max: str | None
    approx_distinct: int | None
    null_percentage: float | None


class DatasetDescription(msgspec.Struct, frozen=True):
    name: str
    version: int
    rows: int
    updated: dt.datetime
    columns: list[DescribedColumn]
    """The first columns, as many as fit in a quarter of the byte cap."""
    columns_total: int
    sample: msgspec.Raw
    """Rows of the listed columns only."""
    profile: list[ColumnProfile]
    history: list[DatasetVersion]
    """The latest versions: at most ``HISTORY_VERSIONS``, as many as fit in a quarter
    of the byte cap, without the per-column typing (``columns`` says it)."""
    history_total: int


class QueryAnswer(msgspec.Struct, frozen=True):
    columns: list[dict[str, str]]
    columns_total: int
    rows: msgspec.Raw
    row_count: int
    truncated: bool
    total_rows: int | None
    """Rows of the whole result when known (null: more than were read)."""
    max_rows: int
    max_bytes: int
    hint: str | None = None


class _SummaryRow(msgspec.Struct):
    column_name: str
    min: str | None = None
    max: str | None = None
    approx_unique: int | None = None
    null_percentage: float | None = None


class DatasetTools:
    """``list_datasets``, ``describe_dataset`` and ``query``; each returns its JSON answer."""

    def __init__(self, catalog: Catalog, query_engine: QueryEngine, settings: McpSettings) -> None:
        self._catalog = catalog
        self._query = query_engine
        self._settings = settings

    async def list_datasets(self, record: CallRecord) -> bytes:
        lines = [
            DatasetLine(m.name, m.row_count, len(m.schema), m.version, m.updated_at)
            for m in await self._catalog.list()
        ]
        record.rows = len(lines)
        return msgspec.json.encode({"datasets": lines})

    async def describe_dataset(self, name: str, record: CallRecord) -> bytes:
        record.dataset = name
        manifest = await self._catalog.get(name)
        record.dataset = manifest.name
        history = await self._catalog.history(manifest.name)
        max_bytes = self._settings.max_bytes
        described = fitting(described_columns(manifest, history), max_bytes // 4)
        kept = {column.name for column in described}
        columns = [(c.name, c.type) for c in manifest.schema if c.name in kept]
        summary = await self._rows(
            column_stats_sql(manifest.name, columns), len(columns), PROFILE_MAX_BYTES
        )
        profile = [
            ColumnProfile(s.column_name, s.min, s.max, s.approx_unique, s.null_percentage)
            for s in msgspec.json.decode(summary.rows_json, type=list[_SummaryRow])
        ]
        answer = DatasetDescription(
            name=manifest.name,
            version=manifest.version,
            rows=manifest.row_count,
            updated=manifest.updated_at,
            columns=described,
            columns_total=len(manifest.schema),
            sample=msgspec.Raw(b"[]"),
            profile=profile,
            history=_latest(history, max_bytes // 4),
            history_total=len(history),
        )
        listed = ", ".join(_quote(name) for name, _ in columns) or "NULL"
        sample = await self._rows(
            f"SELECT {listed} FROM {_quote(manifest.name)}",
            SAMPLE_ROWS,
            max_bytes,
            reserved=doubled(msgspec.json.encode(answer)),
        )
        record.rows = sample.row_count
        return msgspec.json.encode(
            msgspec.structs.replace(answer, sample=msgspec.Raw(sample.rows_json))
        )

    async def query(self, sql: str, max_rows: int | None, record: CallRecord) -> bytes:
        record.sql_sha256 = hashlib.sha256(sql.encode()).hexdigest()
        cap = self._settings.max_rows
        if max_rows is not None and max_rows < 1:
            raise BadRequest(f"max_rows must be at least 1 (the server returns at most {cap})")
        limit = min(max_rows or cap, cap)
        max_bytes = self._settings.max_bytes
        # Everything but the columns and rows, its numbers as long as they can get.
        envelope = QueryAnswer(
            [], 10**9, msgspec.Raw(b"[]"), limit, True, 10**18, limit, max_bytes, _TRUNCATED_HINT
        )
        capped = await self._rows(
            sql, limit, max_bytes, reserved=doubled(msgspec.json.encode(envelope))
        )
        record.rows, record.truncated = capped.row_count, capped.truncated
        hint = _TRUNCATED_HINT if capped.truncated else None
        return msgspec.json.encode(
            QueryAnswer(
                columns=capped.columns,
                columns_total=capped.columns_total,
                rows=msgspec.Raw(capped.rows_json),
                row_count=capped.row_count,
                truncated=capped.truncated,
                total_rows=capped.total_rows,
                max_rows=limit,
                max_bytes=self._settings.max_bytes,
                hint=hint,
            )
        )

    async def _rows(self, sql: str, max_rows: int, max_bytes: int, reserved: int = 0) -> CappedRows:
        """``sql`` run as ``/v1/sql`` runs it (sandbox, time limit, errors), its rows capped."""
        result = await self._query.execute(sql, fmt=ResultFormat.ARROW)
        return await read_capped(result, max_rows, max_bytes, reserved)


def _latest(history: list[DatasetVersion], budget: int) -> list[DatasetVersion]:
    """The latest versions, oldest first, that fit in ``budget`` bytes doubled."""
    newest_first = [
        msgspec.structs.replace(version, typing=[])
        for version in reversed(history[-HISTORY_VERSIONS:])
    ]
    return fitting(newest_first, budget)[::-1]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
