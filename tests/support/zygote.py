"""`lakehouse serve` started by forking a process that has already imported the app.

The suite starts the server about 300 times, and each start spent about a second of
CPU importing Litestar, pyiceberg, SQLAlchemy, DuckDB and pyarrow before doing anything
of its own: on two cores that was the largest single cost of the suite. Python's
forkserver keeps one process per pytest worker that has imported them (``PRELOAD``,
no threads, no storage opened) and forks it for each server; the child then runs the
console script's own ``lakehouse.cli.main(["serve"])`` with the server's environment,
working directory and log file, so what is tested is the same code as
``lakehouse serve``, minus the imports. Tests of the console script itself, and of
start-up with the environment alone, run the real executable (``LakehouseServer(...,
exec_=True)``, the CLI tests, the fresh-clone and README tests).

``ForkedServer`` has the part of ``subprocess.Popen`` the tests use: ``pid``,
``poll()``, ``wait()``, ``send_signal()``, ``kill()`` and ``returncode`` (the exit
status, or minus the signal that ended it, as Popen reports it).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
from multiprocessing.context import ForkServerContext
from pathlib import Path

PRELOAD = [
    "lakehouse.cli",
    "lakehouse.app",
    "lakehouse.storage.s3",
    "granian.server.embed",
]

_context: ForkServerContext | None = None


def _forkserver() -> ForkServerContext:
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        _context = context
    return _context


def _serve(workdir: str, env: dict[str, str], log_path: str) -> None:
    """In the forked child: become `lakehouse serve` run from ``workdir``."""
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update(env)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from lakehouse.cli import main

    sys.argv = ["lakehouse", "serve"]
    code = main(["serve"])
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


class ForkedServer:
    """A `lakehouse serve` forked from the preloaded process."""

    def __init__(self, workdir: Path, env: dict[str, str], log_path: Path) -> None:
        self._process = _forkserver().Process(
            target=_serve, args=(str(workdir), env, str(log_path)), daemon=True
        )
        self._process.start()
        assert self._process.pid is not None
        self.pid: int = self._process.pid
        self.args = ["lakehouse", "serve"]

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            # As Popen: a process that has just exited (its status not read yet) is no error.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
