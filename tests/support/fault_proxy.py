"""A fault-injecting HTTP proxy between the server under test and moto's S3 server.

Real S3 fails in ways moto never does on its own: throttling, 5xx answers,
connections reset in the middle of a body, reads that stall. The proxy sits on
a loopback port, forwards each HTTP/1.1 request to moto, and the test decides
per request what happens instead:

    proxy.inject(Fault.error(503, "SlowDown"))      # every request, until cleared
    proxy.inject(Fault.error(500, "InternalError", times=2))   # the next two only
    proxy.inject(Fault.reset_response(after_bytes=100, methods={"GET"}))
    proxy.clear()

``proxy.rewrite(old, new)`` replaces bytes in the bodies of moto's answers: moto
says every multipart upload was initiated on one fixed day in 2010, and a test of
"uploads younger than the grace period are kept" needs it to say "now".

It parses just enough HTTP to keep one decision per request (a keep-alive
connection opened before a fault is set still sees the fault), and it runs its
own event loop in a thread, so sync and async tests use it alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["latency", "error", "reset_request", "reset_response", "stall"]

_ERROR_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>{code}</Code><Message>injected by the test's fault proxy</Message>"
    "<RequestId>fault-proxy</RequestId></Error>"
)


@dataclass
class Fault:
    """What the proxy does to the requests it matches.

    ``methods`` limits the fault to those HTTP methods, ``path_contains`` to
    request targets containing the string; ``times`` to that many requests
    (``None``: until cleared).
    """

    kind: FaultKind
    status: int = 503
    code: str = "SlowDown"
    delay: float = 0.0
    after_bytes: int = 0
    methods: frozenset[str] | None = None
    path_contains: str = ""
    times: int | None = None

    @classmethod
    def latency(cls, seconds: float, **match: object) -> Fault:
        """Forward the request after ``seconds``."""
        return cls("latency", delay=seconds, **match)  # type: ignore[arg-type]

    @classmethod
    def error(cls, status: int, code: str, **match: object) -> Fault:
        """Answer with S3's XML error ``code`` and ``status``; moto never sees the request."""
        return cls("error", status=status, code=code, **match)  # type: ignore[arg-type]

    @classmethod
    def reset_request(cls, after_bytes: int = 0, **match: object) -> Fault:
        """Reset the connection after ``after_bytes`` of the request body arrived."""
        return cls("reset_request", after_bytes=after_bytes, **match)  # type: ignore[arg-type]

    @classmethod
    def reset_response(cls, after_bytes: int = 0, **match: object) -> Fault:
        """Forward the request, send the response head and ``after_bytes`` of its body, reset."""
        return cls("reset_response", after_bytes=after_bytes, **match)  # type: ignore[arg-type]

    @classmethod
    def stall(cls, **match: object) -> Fault:
        """Read the request and never answer (the connection closes when the fault clears)."""
        return cls("stall", **match)  # type: ignore[arg-type]

    def matches(self, method: str, target: str) -> bool:
        if self.methods is not None and method not in self.methods:
            return False
        return self.path_contains in target


@dataclass
class _Request:
    method: str
    target: str
    head: bytes  # request line and headers, Expect removed
    headers: dict[str, str]


@dataclass
class FaultProxy:
    """Forwards 127.0.0.1:<port> to ``upstream`` (host, port), injecting faults."""

    upstream: tuple[str, int]
    port: int = 0
    requests: int = 0  # requests seen
    injected: int = 0  # requests a fault was applied to
    missed: int = 0  # reset_response faults whose body was too short to cut (not injected)
    seen: list[tuple[str, str]] = field(default_factory=list)  # (method, target) of each request
    _fault: Fault | None = None
    _rewrites: dict[bytes, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.base_events.Server | None = None
    _cleared: asyncio.Event | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- control (any thread) --------------------------------------------------

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._fault = fault
        self._call_soon(self._new_cleared_event)

    def clear(self) -> None:
        with self._lock:
            self._fault = None
        self._call_soon(self._set_cleared)

    def rewrite(self, old: bytes, new: bytes | None) -> None:
        """From now on, ``old`` in a forwarded response body reads ``new`` (``None``: as is)."""
        with self._lock:
            if new is None:
                self._rewrites.pop(old, None)
            else:
                self._rewrites[old] = new

    @contextlib.contextmanager
    def faulty(self, fault: Fault) -> Iterator[FaultProxy]:
        """The fault while the block runs, cleared after it whatever happens."""
        self.inject(fault)
        try:
            yield self
        finally:
            self.clear()

    # -- life cycle ------------------------------------------------------------

    def start(self) -> FaultProxy:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._cleared = asyncio.Event()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", self.port)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        loop = self._loop

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        self._thread.join(10)
        loop.close()
        self._loop = None

    # -- the proxy -------------------------------------------------------------

    def _call_soon(self, callback: Callable[[], None]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(callback)

    def _new_cleared_event(self) -> None:
        self._cleared = asyncio.Event()

    def _set_cleared(self) -> None:
        if self._cleared is not None:
            self._cleared.set()

    def _take_fault(self, request: _Request) -> Fault | None:
        with self._lock:
            self.requests += 1
            self.seen.append((request.method, request.target))
            fault = self._fault
            if fault is None or not fault.matches(request.method, request.target):
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._fault = None
            self.injected += 1
            return fault

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                request = await _read_request_head(client_r)
                if request is None:
                    return
                if request.headers.get("expect", "").lower() == "100-continue":
                    client_w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                fault = self._take_fault(request)
                if fault is not None and fault.kind == "reset_request":
                    await _skip(client_r, min(fault.after_bytes, _body_length(request)))
                    _reset(client_w)
                    return
                body = await _read_body(client_r, request.headers)
                if fault is not None and fault.kind == "error":
                    client_w.write(_error_response(fault, request.method))
                    await client_w.drain()
                    continue
                if fault is not None and fault.kind == "stall":
                    cleared = self._cleared
                    if cleared is not None:
                        with contextlib.suppress(asyncio.CancelledError):
                            await cleared.wait()
                    return
                if fault is not None and fault.kind == "latency":
                    await asyncio.sleep(fault.delay)
                if upstream is None:
                    upstream = await asyncio.open_connection(*self.upstream)
                up_r, up_w = upstream
                up_w.write(request.head + body)
                await up_w.drain()
                limit = fault.after_bytes if fault and fault.kind == "reset_response" else None
                with self._lock:
                    rewrites = dict(self._rewrites)
                keep_alive, sent = await _relay_response(
                    up_r, client_w, request.method, limit, rewrites
                )
                if limit is not None:
                    if sent <= limit:  # the whole body went out: nothing was cut
                        with self._lock:
                            self.injected -= 1
                            self.missed += 1
                    _reset(client_w)
                    return
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            if upstream is not None:
                upstream[1].close()
            if not client_w.is_closing():
                client_w.close()


async def _read_request_head(reader: asyncio.StreamReader) -> _Request | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = raw.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    kept = [lines[0]]
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
        if name.strip().lower() != "expect":  # the proxy answered 100-continue itself
            kept.append(line)
    head = ("\r\n".join(kept) + "\r\n\r\n").encode("latin-1")
    return _Request(method, target, head, headers)


def _body_length(request: _Request) -> int:
    return int(request.headers.get("content-length", "0"))


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return await _read_chunked(reader)
    length = int(headers.get("content-length", "0"))
    return await reader.readexactly(length) if length else b""


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked body, verbatim (size lines and trailer included)."""
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        parts.append(size_line)
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            while True:  # trailer lines, then the empty line
                line = await reader.readuntil(b"\r\n")
                parts.append(line)
                if line == b"\r\n":
                    return b"".join(parts)
        parts.append(await reader.readexactly(size + 2))


async def _skip(reader: asyncio.StreamReader, count: int) -> None:
    if count:
        await reader.readexactly(count)


async def _relay_response(
    upstream: asyncio.StreamReader,
    client: asyncio.StreamWriter,
    method: str,
    limit: int | None,
    rewrites: dict[bytes, bytes],
) -> tuple[bool, int]:
    """Copy one response; with ``limit``, only its head and ``limit`` body bytes.
    Returns whether the connection may carry another request, and the body's length."""
    while True:
        raw = await upstream.readuntil(b"\r\n\r\n")
        status = int(raw.split(b" ", 2)[1])
        if status >= 200:
            break
        client.write(raw)
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (
            line.partition(":") for line in raw.decode("latin-1").split("\r\n")[1:] if line
        )
    }
    if method == "HEAD" or status in (204, 304):
        body = b""
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(upstream)
    elif "content-length" in headers:
        body = await upstream.readexactly(int(headers["content-length"]))
    else:
        body = await upstream.read()
    if rewrites and "content-length" in headers:
        for old, new in rewrites.items():
            body = body.replace(old, new)
        raw = _with_content_length(raw, len(body))
    client.write(raw)
    client.write(body if limit is None else body[:limit])
    await client.drain()
    keep_alive = headers.get("connection", "").lower() != "close" and "content-length" in headers
    return keep_alive, len(body)


def _with_content_length(head: bytes, length: int) -> bytes:
    lines = head.split(b"\r\n")
    return b"\r\n".join(
        b"Content-Length: %d" % length if line.lower().startswith(b"content-length:") else line
        for line in lines
    )


def _error_response(fault: Fault, method: str) -> bytes:
    body = _ERROR_BODY.format(code=fault.code).encode()
    if method == "HEAD":  # as S3 answers a HEAD: no body, or the next answer starts with it
        body = b""
    reason = {500: "Internal Server Error", 503: "Slow Down"}.get(fault.status, "Error")
    head = (
        f"HTTP/1.1 {fault.status} {reason}\r\n"
        "Content-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}\r\n"
        "\r\n"
    )
    return head.encode() + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a dropped connection looks to the client."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
