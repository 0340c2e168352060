"""The real server's life cycle: `lakehouse serve` starts, refuses bad config, stops
gracefully on SIGTERM, exits fast and says why when it cannot start."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import msgspec

from lakehouse.config import Settings
from tests.support.http import HTTP
from tests.support.servers import VENV_BIN, LakehouseServer, free_port


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 20):
    return subprocess.run(
        [str(VENV_BIN / "lakehouse"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_unknown_key_stops_serve_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nprot = 3110\n")
    result = run_cli("serve", "--config", str(config), cwd=tmp_path)
    assert result.returncode != 0
    assert "prot" in result.stderr


# -- the real server ---------------------------------------------------------


def test_real_server_health_and_graceful_sigterm(local_settings: Settings, tmp_path: Path) -> None:
    # The console script itself, not a fork of the preloaded process (tests/support/zygote.py).
    server = LakehouseServer(local_settings, tmp_path, exec_=True).start()
    try:
        response = HTTP.get(f"{server.url}/health", headers={"X-Request-ID": "probe-1"})
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        assert body["service"] == "lakehouse"
        assert response.headers["x-request-id"] == "probe-1"
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.logs()
    logs = [msgspec.json.decode(line) for line in server.logs().splitlines() if line]
    assert any(entry["msg"] == "shutting down" for entry in logs)
    health_lines = [e for e in logs if e.get("path") == "/health"]
    assert health_lines
    assert all(e["level"] == "debug" for e in health_lines)
    assert any(e.get("request_id") == "probe-1" for e in health_lines)


def test_sigterm_lets_in_flight_request_finish(local_settings: Settings, tmp_path: Path) -> None:
    """A request that is being served when SIGTERM arrives still gets its answer."""
    server = LakehouseServer(local_settings, tmp_path, exec_=True).start()
    try:
        # A slowly-sent upload keeps the request in flight while we signal.
        def slow_body():
            yield b"a"
            time.sleep(0.5)
            server.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
            time.sleep(0.5)
            yield b"b"

        response = HTTP.put(f"{server.url}/storage/put/inflight/x", content=slow_body())
        assert response.status_code == 200  # answered, not dropped
    finally:
        assert server.stop() == 0, server.logs()
    # ...and the whole body was stored before the server exited.
    assert (Path(local_settings.storage.data_dir) / "inflight" / "x").read_bytes() == b"ab"


def test_port_in_use_exits_fast_naming_the_port(tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        started = time.monotonic()
        result = run_cli("serve", "--port", str(port), cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
        elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert f"127.0.0.1:{port}" in result.stderr
    assert "in use" in result.stderr
    assert elapsed < 10


# -- the error shape ---------------------------------------------------------


def test_failed_startup_exits_nonzero_and_logs_why(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where the data directory should be")
    result = run_cli(
        "serve", "--port", str(free_port()), cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}
    )
    assert result.returncode != 0
    failures = [
        msgspec.json.decode(line)
        for line in result.stderr.splitlines()
        if line.startswith("{") and '"start-up failed"' in line
    ]
    assert failures, result.stderr
    assert "Traceback" in failures[0]["exc"]
    assert "listening" not in result.stderr


def test_early_refusal_closes_the_connection(local_settings: Settings, tmp_path: Path) -> None:
    """An answer sent before the upload was read (413 from Content-Length) says
    ``Connection: close`` and closes: the unread body must not be taken for the
    client's next request on a kept-alive connection."""
    server = LakehouseServer(local_settings, tmp_path).start()
    port = local_settings.server.port

    def exchange(raw: bytes) -> tuple[bytes, bool]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(raw)
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
            while len(body) < length:
                body += sock.recv(65536)
            sock.settimeout(1)
            try:
                closed = sock.recv(1) == b""
            except TimeoutError:
                closed = False
            return head.lower(), closed

    try:
        head, closed = exchange(
            b"POST /v1/ingest?name=x HTTP/1.1\r\nHost: t\r\nContent-Type: text/csv\r\n"
            b"Content-Length: 99999999999\r\n\r\nid\n1\n"
        )
        assert head.startswith(b"http/1.1 413")
        assert b"connection: close" in head
        assert closed
        head, closed = exchange(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        assert head.startswith(b"http/1.1 200")
        assert b"connection: close" not in head
        assert not closed  # a request without a body keeps its connection
    finally:
        server.stop()


def test_sql_requests_keep_their_connection(local_settings: Settings, tmp_path: Path) -> None:
    """POST /v1/sql is answered once the body's Content-Length bytes came (ADR 0017), not
    after the empty message that ends it: the body counts as read, so the connection
    stays open for the client's next request."""
    server = LakehouseServer(local_settings, tmp_path).start()
    body = b'{"sql": "SELECT 41 + 1 AS answer"}'
    request = (
        b"POST /v1/sql HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    try:
        with socket.create_connection(("127.0.0.1", local_settings.server.port), timeout=5) as sock:
            for _ in range(3):  # the same socket each time
                sock.sendall(request)
                data = b""
                while not data.endswith(b'[{"answer":42}]'):
                    chunk = sock.recv(65536)
                    assert chunk, f"the connection closed after: {data!r}"
                    data += chunk
                head = data.partition(b"\r\n\r\n")[0].lower()
                assert head.startswith(b"http/1.1 200"), head
                assert b"connection: close" not in head
    finally:
        server.stop()
