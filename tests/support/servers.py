"""Real servers for tests: `lakehouse serve` and moto's S3 server, as processes.

Both start on a free loopback port, are waited on by polling (never by
sleeping a fixed time), and are stopped by the fixture that started them.
`lakehouse serve` is forked from a process that has already imported the app
(tests/support/zygote.py) unless a test asks for the executable itself.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

import httpx
import msgspec

from lakehouse.config import Settings
from tests.support.http import HTTP
from tests.support.zygote import ForkedServer

VENV_BIN = Path(sys.executable).parent

FORK_SERVERS = False
"""Fork `lakehouse serve` from the preloaded process unless a test asks for the console
script: set by the suite (tests/conftest.py); benchmarks run the real executable."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess(Protocol):
    """What the tests use of a server process: a ``subprocess.Popen`` or a ``ForkedServer``."""

    pid: int

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


def wait_until_ready(url: str, proc: ServerProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            if HTTP.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def stop_process(proc: ServerProcess, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
    """Signal a server process, wait for it (kill it after ``timeout``), return its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class MotoServer:
    """moto's S3-protocol HTTP server on a loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoServer:
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_ready(f"{self.endpoint_url}/moto-api/", self.proc)
        return self

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc)


class LakehouseServer:
    """`lakehouse serve`, configured by a TOML file we write: the console script in a
    subprocess, or (``FORK_SERVERS``, unless ``exec_``) forked from the preloaded process."""

    def __init__(
        self,
        settings: Settings,
        workdir: Path,
        env: dict[str, str] | None = None,
        *,
        exec_: bool | None = None,
    ):
        self.workdir = workdir
        self.exec_ = not FORK_SERVERS if exec_ is None else exec_
        self.settings = settings
        self.settings.server.host = "127.0.0.1"
        self.settings.server.port = free_port()
        self.extra_env = env or {}
        self.config_path = workdir / "lakehouse.toml"
        self.log_path = workdir / "server.log"
        self.proc: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.server.port}"

    def start(self, wait: bool = True) -> LakehouseServer:
        self.config_path.write_bytes(msgspec.toml.encode(self.settings))
        env = {**os.environ, **self.extra_env, "LAKEHOUSE_CONFIG": str(self.config_path)}
        for var in ("LAKEHOUSE_HOST", "LAKEHOUSE_PORT", "LAKEHOUSE_DATA_DIR"):
            env.pop(var, None)
        if self.exec_:
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    [str(VENV_BIN / "lakehouse"), "serve"],
                    cwd=self.workdir,
                    env=env,
                    stdout=log,
                    stderr=log,
                )
        else:
            self.proc = ForkedServer(self.workdir, env, self.log_path)
        if wait:
            wait_until_ready(f"{self.url}/health", self.proc)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the server and return its exit code."""
        assert self.proc is not None
        return stop_process(self.proc, sig, timeout)

    def restart(self) -> LakehouseServer:
        exit_code = self.stop()
        assert exit_code == 0, f"server exited with {exit_code} on SIGTERM:\n{self.logs()}"
        return self.start()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def peak_rss_bytes(self) -> int:
        """VmHWM of the server process (peak resident set size)."""
        return self._status_bytes("VmHWM")

    def rss_bytes(self) -> int:
        """VmRSS of the server process (resident set size now)."""
        return self._status_bytes("VmRSS")

    def _status_bytes(self, field: str) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"{field} not found")
