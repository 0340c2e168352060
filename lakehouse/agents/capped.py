"""A query's rows, cut at a row cap and a byte cap while the result streams in.

The query engine encodes the result as an Arrow IPC stream (so the columns and their
types are known even when there are no rows); the rows are encoded to JSON by the same
encoder as ``/v1/sql``'s NDJSON, one row at a time against the caps. Once a cap is
reached the rest of the stream is closed unread, which releases the engine's cursor:
the SQL is never rewritten, and a huge result costs no more than the rows returned.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.ipc as pa_ipc

from lakehouse.query import QueryFailed, QueryResult, ResultFormat, make_encoder


def doubled(data: bytes) -> int:
    """What ``data`` (JSON) adds to a tool call's answer: it goes out once as structured
    content and once more, escaped, as the text content older clients read."""
    return len(data) + len(msgspec.json.encode(data.decode()))


def fitting(items: list[Any], budget: int) -> list[Any]:
    """The longest head of ``items`` whose JSON takes at most ``budget`` bytes doubled."""
    kept: list[Any] = []
    size = doubled(b"[]")
    for item in items:
        size += doubled(msgspec.json.encode(item)) + 2  # and its comma, twice
        if size > budget:
            break
        kept.append(item)
    return kept


class CappedRows(msgspec.Struct, frozen=True):
    """What a capped read kept."""

    columns: list[dict[str, str]]
    """``{"name", "type"}`` per column, in order (Arrow's type names); only the first
    ones when the list alone would take more than half the budget."""
    columns_total: int
    rows_json: bytes
    """The rows kept, as a JSON array of objects (``/v1/sql``'s JSON encoding)."""
    row_count: int
    truncated: bool
    """True when the result has more rows than were kept."""
    total_rows: int | None
    """Rows of the whole result, when known (the stream was read to its end)."""


class _ArrowChunks:
    """An Arrow IPC stream arriving in chunks that need not end on message boundaries.

    Each time more bytes arrive the stream is parsed again over all of them and the
    batches already handed out are skipped (the engine's chunks are whole messages,
    so this happens rarely and costs little: the batches are zero-copy views)."""

    def __init__(self, head: bytes, rest: AsyncIterator[bytes] | None) -> None:
        self._data = head
        self._rest = rest
        self._handed_out = 0
        self.fetching = True
        """False: stop where the bytes that already arrived end (a cap was reached)."""
        self.ended = False
        """True once the whole stream was read."""

    async def items(self) -> AsyncIterator[pa.Schema | pa.RecordBatch]:
        """The schema first, then each record batch once."""
        schema_sent = False
        while True:
            schema, batches, whole = self._parse()
            if schema is not None and not schema_sent:
                schema_sent = True
                yield schema
            for batch in batches:
                self._handed_out += 1
                yield batch
            if not self.fetching:
                self.ended = whole and self._rest is None
                return
            if not await self._more():
                if not (whole and schema_sent):
                    raise QueryFailed("the query's result ended in the middle of a batch")
                self.ended = True
                return

    def _parse(self) -> tuple[pa.Schema | None, list[pa.RecordBatch], bool]:
        """The schema, the batches not handed out yet, and whether the bytes so far
        end on a message boundary."""
        try:
            reader = pa_ipc.open_stream(pa.py_buffer(self._data))
        except (pa.ArrowInvalid, OSError, EOFError):
            return None, [], False
        batches = []
        while True:
            try:
                batches.append(reader.read_next_batch())
            except StopIteration:
                return reader.schema, batches[self._handed_out :], True
            except (pa.ArrowInvalid, OSError):
                return reader.schema, batches[self._handed_out :], False

    async def _more(self) -> bool:
        """Append the next chunk; False when there is none."""
        if self._rest is None:
            return False
        async for chunk in self._rest:
            self._data += chunk
            return True
        self._rest = None
        return False

    async def aclose(self) -> None:
        """Stop reading: the engine releases the query's cursor."""
        rest, self._rest = self._rest, None
        if rest is not None:
            await rest.aclose()  # type: ignore[attr-defined]  # the engine's async generator


async def read_capped(
    result: QueryResult, max_rows: int, max_bytes: int, reserved: int = 0
) -> CappedRows:
    """At most ``max_rows`` rows of ``result`` (an Arrow stream) such that the columns
    list and the rows' JSON array, each counted ``doubled``, take at most ``max_bytes``
    less ``reserved`` (the rest of the answer); ``result`` is closed either way."""
    stream = _ArrowChunks(result.head, result.rest)
    columns: list[dict[str, str]] = []
    columns_total = 0
    encoder = None
    kept: list[bytes] = []
    budget = max_bytes - reserved
    size = doubled(b"[]")
    seen_rows = 0
    truncated = False
    try:
        async for item in stream.items():
            if isinstance(item, pa.Schema):
                every = [{"name": field.name, "type": str(field.type)} for field in item]
                columns, columns_total = fitting(every, budget // 2), len(every)
                size += doubled(msgspec.json.encode(columns))
                encoder = make_encoder(ResultFormat.NDJSON, item)
                continue
            assert encoder is not None
            seen_rows += item.num_rows
            if truncated:
                continue  # counting the rows that already arrived, for total_rows
            room = item.slice(0, max_rows - len(kept))
            for line in encoder.encode(room).split(b"\n")[:-1]:
                added = doubled(line) + (2 if kept else 0)  # and its comma, twice
                if size + added > budget:
                    break
                kept.append(line)
                size += added
            if len(kept) < seen_rows:
                truncated = True
                stream.fetching = False
    finally:
        await stream.aclose()
    return CappedRows(
        columns=columns,
        columns_total=columns_total,
        rows_json=b"[" + b",".join(kept) + b"]",
        row_count=len(kept),
        truncated=truncated,
        total_rows=seen_rows if stream.ended else None,
    )
