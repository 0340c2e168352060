"""Reading NDJSON and JSON arrays record by record, in batches, with bounded memory.

Each reader yields lists of decoded records (Python dicts, integers of any size kept
exact) and raises an ingest ``BadRequest`` naming where the input is wrong: the line
of an NDJSON file, the byte offset in a JSON array. A record larger than
``max_record_bytes`` is a 400 too: without that bound one line could fill memory.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from lakehouse.ingest.errors import EmptyJSON, FieldTooLarge, InvalidJSON, NotUTF8

Record = dict[str, Any]

BATCH_RECORDS = 8192
BATCH_BYTES = 2 * 1024 * 1024
_DECODER = msgspec.json.Decoder()
_BOM = codecs.BOM_UTF8
_CHUNK = 1024 * 1024
_WHITESPACE = re.compile(rb"[ \t\n\r]*")
# A line starting with whitespace may be blank (a regex over the block costs more than
# the decoding): then the block is read line by line.
_WHITESPACE_STARTS = (b"\n\n", b"\n\r", b"\n ", b"\n\t")
_KINDS = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


def kind_of(value: object) -> str:
    """How a JSON value is named in messages: "an object", "a string"..."""
    if value is None:
        return "null"
    return "an object" if isinstance(value, dict) else _KINDS.get(type(value), "a value")


def ndjson_batches(source: Path, max_record_bytes: int) -> Iterator[list[Record]]:
    """The records of an NDJSON (JSON Lines) file: one object per line, blank lines
    skipped, a UTF-8 BOM tolerated. Read a block of lines at a time."""
    line = 1  # the number of the block's first line
    rest = b""
    with source.open("rb") as handle:
        while block := handle.read(BATCH_BYTES):
            if line == 1 and not rest and block.startswith(_BOM):
                block = block[len(_BOM) :]
            block = rest + block
            end = block.rfind(b"\n") + 1
            if not end:
                if len(block) > max_record_bytes:
                    raise _too_long(line, max_record_bytes)
                rest = block
                continue
            block, rest = block[:end], block[end:]
            if records := _lines(block, line, max_record_bytes):
                yield records
            line += block.count(b"\n")
    if rest.strip():
        yield _lines(rest, line, max_record_bytes)


def _lines(block: bytes, line: int, max_record_bytes: int) -> list[Record]:
    """The records of a block of whole lines; ``line``: the number of its first."""
    if len(block) > max_record_bytes:  # a line carried over several reads
        return _line_by_line(block, line, max_record_bytes)
    try:
        records = _DECODER.decode_lines(block)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        records = None
    lines = block.count(b"\n") + (not block.endswith(b"\n"))
    # One record a line, each an object; else (a blank line, two objects on a line, a
    # number beyond a double, an error) line by line, which also says where.
    if (
        records is None
        or len(records) != lines
        or block[:1].isspace()
        or any(start in block for start in _WHITESPACE_STARTS)
        or not all(type(r) is dict for r in records)
    ):
        records = _line_by_line(block, line, max_record_bytes)
    return records


def _line_by_line(block: bytes, first: int, max_record_bytes: int) -> list[Record]:
    records = []
    for number, line in enumerate(block.split(b"\n"), first):
        if len(line) > max_record_bytes:
            raise _too_long(number, max_record_bytes)
        if line.isspace() or not line:
            continue
        record = _decode_line(line, number)
        if not isinstance(record, dict):
            raise InvalidJSON(
                f"line {number} holds {kind_of(record)}, not an object: "
                "NDJSON has one JSON object per line",
                details={"line": number},
            )
        records.append(record)
    return records


def _too_deep(where: str, details: dict[str, int]) -> InvalidJSON:
    return InvalidJSON(f"{where} is nested too deeply for a JSON parser", details=details)


def _too_long(line: int, limit: int) -> FieldTooLarge:
    return FieldTooLarge(
        f"line {line} is longer than {limit} bytes",
        details={"line": line, "max_field_bytes": limit},
    )


def _decode_line(line: bytes, number: int) -> Any:
    try:
        return msgspec.json.decode(line)
    except RecursionError:
        raise _too_deep(f"line {number}", {"line": number}) from None
    except UnicodeDecodeError as exc:
        raise NotUTF8(
            f"line {number} is not valid UTF-8", details={"line": number, "reason": str(exc)}
        ) from exc
    except msgspec.ValidationError:
        # msgspec refuses numbers beyond a double's range (1e400); Python's parser
        # reads them (as infinity), as any JSON reader would.
        return _strict_loads(line.decode(), number)
    except msgspec.DecodeError as exc:
        hint = " (a JSON array? send it with ?format=json)" if line.lstrip()[:1] == b"[" else ""
        raise InvalidJSON(
            f"line {number} is not valid JSON: {exc}{hint}", details={"line": number}
        ) from exc


def _strict_loads(text: str, number: int) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise InvalidJSON(
            f"line {number} is not valid JSON: {exc}", details={"line": number}
        ) from exc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_STRICT = json.JSONDecoder(parse_constant=_refuse_constant)


def array_batches(source: Path, max_record_bytes: int) -> Iterator[list[Record]]:
    """The records of one JSON array of objects, read a block at a time (never the
    whole array in memory); whitespace around it and a UTF-8 BOM tolerated."""
    reader = _ArrayReader(source, max_record_bytes)
    try:
        yield from reader.batches()
    finally:
        reader.close()


class _ArrayReader:
    """A sliding window over the file: ``data[pos:]`` is unread, ``base`` is the
    byte offset of ``data[0]``.

    Elements are decoded a block at a time: the unread bytes up to a ``}`` are
    decoded as ``[`` + them + ``]``. That succeeds only when the ``}`` ends an element
    (one inside a string or closing a nested object leaves the brackets unbalanced),
    so a success is exactly the next elements. Where a block does not decode (an element
    longer than the window, or an error), one element is read on its own, by a reader
    that says where an error is.
    """

    def __init__(self, source: Path, max_record_bytes: int) -> None:
        self.handle = source.open("rb")
        self.limit = max_record_bytes
        self.data = b""
        self.pos = 0
        self.base = 0
        self.eof = False

    def close(self) -> None:
        self.handle.close()

    def batches(self) -> Iterator[list[Record]]:
        self._fill(BATCH_BYTES)
        if self.data.startswith(_BOM):
            self.pos = len(_BOM)
        if self._next_byte() != b"[":
            raise self._not_an_array()
        self.pos += 1
        batch: list[Record] = []
        first = True
        while True:
            char = self._next_byte()
            if char == b"]":
                self.pos += 1
                break
            if not first:
                if char != b",":
                    raise self._invalid(
                        "expected ',' or ']' after an element"
                        if char
                        else "the array is never closed (the file ends inside it)"
                    )
                self.pos += 1
                self._next_byte()
            first = False
            batch.extend(self._block() or [self._element()])
            if len(batch) >= BATCH_RECORDS:
                yield batch
                batch = []
            self._trim()
        if self._next_byte():
            raise self._invalid("data after the end of the array")
        if batch:
            yield batch

    def _block(self) -> list[Record] | None:
        """The elements up to a ``}`` of the next block, or None (none decode)."""
        if len(self.data) - self.pos < BATCH_BYTES:
            self._fill(BATCH_BYTES)
        end = len(self.data)
        for _ in range(3):
            end = self.data.rfind(b"}", self.pos, end)
            if end < 0:
                return None
            try:
                records = _DECODER.decode(b"[" + self.data[self.pos : end + 1] + b"]")
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                continue
            if all(type(r) is dict for r in records):
                self.pos = end + 1
                return list(records)
            return None
        return None

    def _element(self) -> Record:
        """One element, read with Python's parser (errors at a byte offset)."""
        want = BATCH_BYTES
        while True:
            text = self._text()
            try:
                value, end = _STRICT.raw_decode(text)
                break
            except RecursionError:
                offset = self.base + self.pos
                raise _too_deep(
                    f"the element at byte offset {offset}", {"byte_offset": offset}
                ) from None
            except json.JSONDecodeError as exc:
                if self.eof or len(text) > self.limit:
                    if not self.eof:
                        raise FieldTooLarge(
                            f"the element at byte offset {self.base + self.pos} is larger "
                            f"than {self.limit} bytes (or is not valid JSON)",
                            details={
                                "byte_offset": self.base + self.pos,
                                "max_field_bytes": self.limit,
                            },
                        ) from exc
                    at = self.pos + len(text[: exc.pos].encode())
                    reason = (
                        "the array is never closed (the file ends inside it)"
                        if exc.pos >= len(text)
                        else f"not valid JSON: {exc.msg}"
                    )
                    raise self._invalid(reason, at) from exc
                self._fill(want)  # the element may continue past the window
                want *= 2
            except ValueError as exc:  # NaN, Infinity
                raise self._invalid(f"not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise self._invalid(f"the array holds {kind_of(value)}, not an object")
        self.pos += len(text[:end].encode())
        return value

    def _text(self) -> str:
        """The unread bytes as text; a character cut at the window's end is left out."""
        unread = self.data[self.pos :]
        try:
            return unread.decode()
        except UnicodeDecodeError as exc:
            if self.eof or exc.start < len(unread) - 3:
                offset = self.base + self.pos + exc.start
                raise NotUTF8(
                    f"the JSON is not valid UTF-8 (byte offset {offset})",
                    details={"byte_offset": offset},
                ) from exc
            return unread[: exc.start].decode()

    def _next_byte(self) -> bytes:
        """The next byte that is not whitespace (reading on as needed); b'' at the end."""
        while True:
            self.pos = _WHITESPACE.match(self.data, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.data):
                return self.data[self.pos : self.pos + 1]
            if self.eof:
                return b""
            self._fill(BATCH_BYTES)

    def _fill(self, size: int) -> None:
        if not self.eof:
            data = self.handle.read(size)
            self.eof = not data
            self.data += data

    def _trim(self) -> None:
        if self.pos > BATCH_BYTES:
            self.base += self.pos
            self.data = self.data[self.pos :]
            self.pos = 0

    def _invalid(self, reason: str, position: int | None = None) -> InvalidJSON:
        offset = self.base + (self.pos if position is None else position)
        return InvalidJSON(
            f"the JSON array is invalid at byte offset {offset}: {reason}",
            details={"byte_offset": offset},
        )

    def _not_an_array(self) -> Exception:
        first = self.data[self.pos : self.pos + 1]
        if not first:
            return EmptyJSON("the upload holds no JSON")
        if first == b"{":
            return self._invalid(
                "expected a JSON array of objects, found an object (one object per line is "
                "NDJSON: send it with ?format=ndjson)"
            )
        return self._invalid("expected a JSON array of objects")
