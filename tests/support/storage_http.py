"""A tiny raw HTTP/1.1 client for storage tests.

httpx normalises ``..`` and ``.`` segments out of a URL before sending it,
and always finishes sending a body before it reads the response. Tests that
need the exact bytes of a request line (``/storage/put/../x``), or that want
to hold a request open mid-body and still read the server's early answer
(a 503 or 413 sent before the body is complete), talk to the socket directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class RawRequest:
    """One request on its own connection; the body is sent piece by piece."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(
        cls, base_url: str, method: str, raw_path: bytes, headers: dict[str, str] | None = None
    ) -> RawRequest:
        parts = urlsplit(base_url)
        assert parts.hostname
        assert parts.port
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        lines = [method.encode() + b" " + raw_path + b" HTTP/1.1", f"Host: {parts.netloc}".encode()]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}".encode())
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
        await writer.drain()
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_chunk(self, data: bytes) -> None:
        """One chunk of a ``Transfer-Encoding: chunked`` body (b"" ends it)."""
        await self.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    async def response(self) -> RawResponse:
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked()
        else:
            body = await self.reader.read()
        return RawResponse(status, headers, body)

    async def _read_chunked(self) -> bytes:
        body = bytearray()
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return bytes(body)
            body += await self.reader.readexactly(size)
            await self.reader.readexactly(2)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


async def raw_request(
    base_url: str,
    method: str,
    raw_path: bytes,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> RawResponse:
    """Send one complete request with an exact request line; return the answer."""
    all_headers = {"Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
    request = await RawRequest.open(base_url, method, raw_path, all_headers)
    try:
        await request.send(body)
        return await request.response()
    finally:
        await request.close()
