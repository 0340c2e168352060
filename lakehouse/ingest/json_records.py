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
BATCH_BYTES = 8 * 1024 * 1024
_BOM = codecs.BOM_UTF8
_CHUNK = 1024 * 1024
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_KINDS = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


def kind_of(value: object) -> str:
    """How a JSON value is named in messages: "an object", "a string"..."""
    if value is None:
        return "null"
    return "an object" if isinstance(value, dict) else _KINDS.get(type(value), "a value")


def ndjson_batches(source: Path, max_record_bytes: int) -> Iterator[list[Record]]:
    """The records of an NDJSON (JSON Lines) file: one object per line, blank lines
    skipped, a UTF-8 BOM tolerated."""
    batch: list[Record] = []
    size = 0
    with source.open("rb") as handle:
        for number, line in enumerate(iter(lambda: handle.readline(max_record_bytes + 1), b""), 1):
            if number == 1 and line.startswith(_BOM):
                line = line[len(_BOM) :]
            if len(line) > max_record_bytes and not line.endswith(b"\n"):
                raise FieldTooLarge(
                    f"line {number} is longer than {max_record_bytes} bytes",
                    details={"line": number, "max_field_bytes": max_record_bytes},
                )
            if line.isspace() or not line:
                continue
            record = _decode_line(line, number)
            if not isinstance(record, dict):
                raise InvalidJSON(
                    f"line {number} holds {kind_of(record)}, not an object: "
                    "NDJSON has one JSON object per line",
                    details={"line": number},
                )
            batch.append(record)
            size += len(line)
            if len(batch) >= BATCH_RECORDS or size >= BATCH_BYTES:
                yield batch
                batch, size = [], 0
    if batch:
        yield batch


def _decode_line(line: bytes, number: int) -> Any:
    try:
        return msgspec.json.decode(line)
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


def array_batches(source: Path, max_record_bytes: int) -> Iterator[list[Record]]:
    """The records of one JSON array of objects, read a chunk at a time (never the
    whole array in memory); whitespace around it and a UTF-8 BOM tolerated."""
    reader = _ArrayReader(source, max_record_bytes)
    try:
        yield from reader.batches()
    finally:
        reader.close()


class _ArrayReader:
    """A sliding window of decoded text over the file: ``text[pos:]`` is unread,
    ``base`` is the byte offset of ``text[0]`` (for messages)."""

    def __init__(self, source: Path, max_record_bytes: int) -> None:
        self.handle = source.open("rb")
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.limit = max_record_bytes
        self.text = ""
        self.pos = 0
        self.base = 0
        self.read_bytes = 0
        self.eof = False
        self.json = json.JSONDecoder(parse_constant=_refuse_constant)

    def close(self) -> None:
        self.handle.close()

    def batches(self) -> Iterator[list[Record]]:
        if self._next_char() != "[":
            raise self._not_an_array()
        self.pos += 1
        batch: list[Record] = []
        size = 0
        first = True
        while True:
            char = self._next_char()
            if char == "]" and first:
                self.pos += 1
                break
            if not first:
                if char == "]":
                    self.pos += 1
                    break
                if char != ",":
                    raise self._invalid(
                        "expected ',' or ']' after an element"
                        if char
                        else "the array is never closed (the file ends inside it)"
                    )
                self.pos += 1
                self._next_char()
            start = self.pos
            record = self._element()
            batch.append(record)
            size += self.pos - start
            first = False
            if len(batch) >= BATCH_RECORDS or size >= BATCH_BYTES:
                yield batch
                batch, size = [], 0
            self._trim()
        if self._next_char():
            raise self._invalid("data after the end of the array")
        if batch:
            yield batch

    def _element(self) -> Record:
        start = self.pos
        want = _CHUNK
        while True:
            try:
                value, end = self.json.raw_decode(self.text, start)
                break
            except json.JSONDecodeError as exc:
                if self.eof or len(self.text) - start > self.limit:
                    if not self.eof:
                        raise FieldTooLarge(
                            f"the element at byte offset {self._offset(start)} is larger "
                            f"than {self.limit} bytes (or is not valid JSON)",
                            details={
                                "byte_offset": self._offset(start),
                                "max_field_bytes": self.limit,
                            },
                        ) from exc
                    reason = (
                        "the array is never closed (the file ends inside it)"
                        if exc.pos >= len(self.text)
                        else f"not valid JSON: {exc.msg}"
                    )
                    raise self._invalid(reason, exc.pos) from exc
                self._fill(want)  # the element may continue in the next chunk
                want *= 2
            except ValueError as exc:  # NaN, Infinity
                raise self._invalid(f"not valid JSON: {exc}", start) from exc
        if not isinstance(value, dict):
            raise self._invalid(f"the array holds {kind_of(value)}, not an object", start)
        self.pos = end
        return value

    def _next_char(self) -> str:
        """The next character that is not whitespace (reading on as needed); '' at the end."""
        while True:
            self.pos = _WHITESPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text):
                return self.text[self.pos]
            if self.eof:
                return ""
            self._fill(_CHUNK)

    def _fill(self, size: int) -> None:
        if self.eof:
            return
        data = self.handle.read(size)
        if not self.read_bytes and data.startswith(_BOM):
            self.base = len(_BOM)  # the decoder drops it: offsets count it
        self.eof = not data
        try:
            self.text += self.decoder.decode(data, final=self.eof)
        except UnicodeDecodeError as exc:
            offset = self.read_bytes + exc.start
            raise NotUTF8(
                f"the JSON is not valid UTF-8 (byte offset {offset})",
                details={"byte_offset": offset},
            ) from exc
        self.read_bytes += len(data)

    def _trim(self) -> None:
        if self.pos > _CHUNK:
            self.base += len(self.text[: self.pos].encode())
            self.text = self.text[self.pos :]
            self.pos = 0

    def _offset(self, position: int) -> int:
        return self.base + len(self.text[:position].encode())

    def _invalid(self, reason: str, position: int | None = None) -> InvalidJSON:
        offset = self._offset(self.pos if position is None else position)
        return InvalidJSON(
            f"the JSON array is invalid at byte offset {offset}: {reason}",
            details={"byte_offset": offset},
        )

    def _not_an_array(self) -> Exception:
        first = self.text[self.pos : self.pos + 1]
        if not first:
            return EmptyJSON("the upload holds no JSON")
        if first == "{":
            return self._invalid(
                "expected a JSON array of objects, found an object (one object per line is "
                "NDJSON: send it with ?format=ndjson)"
            )
        return self._invalid("expected a JSON array of objects")
