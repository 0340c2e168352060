"""`lakehouse serve` started by forking a process that has already imported the app.

The suite starts the server about 300 times, and each start spent about a second of
CPU importing Litestar, pyiceberg, SQLAlchemy, DuckDB and pyarrow before doing anything
of its own: on two cores that was the largest single cost of the suite. Python's
forkserver keeps one process per pytest worker that has imported them (``PRELOAD``; no
storage opened, no event loop) and forks it for each server; the child then runs the
console script's own ``lakehouse.cli.main(["serve"])`` with the server's environment,
working directory and log file. So what is tested is the code of ``lakehouse serve``,
minus the imports, with two differences that tests which care avoid by running the
console script (``LakehouseServer(..., exec_=True)``):

- The child has only the forking thread. Importing DuckDB starts threads of its own
  (jemalloc's background purging among them), which a fork does not carry over: tests
  that measure the server's memory run the console script.
- The child ends through ``os._exit``, without the interpreter's shutdown (``atexit``,
  finalizers): the S3 fault tests' server, the graceful-SIGTERM tests and the start-up
  tests run the console script and check its exit status.

The CLI client, the README and the fresh-clone tests run the executables as well.

``ForkedServer`` has the part of ``subprocess.Popen`` the tests use: ``pid``,
``poll()``, ``wait()``, ``send_signal()``, ``kill()`` and ``returncode`` (the exit
status, or minus the signal that ended it, as Popen reports it). Unlike Popen's, the
process is reaped by the forkserver as soon as it exits, so its pid may be reused
sooner; and if the forkserver itself died, ``poll()`` would report 255 while the
server ran on.
"""

from __future__ import annotations

import contextlib
import importlib.util
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
    "lakehouse.storage._s3",
    "granian.server.embed",
]
# The forkserver ignores a module it cannot import: a wrong name here would only be slow.
assert all(importlib.util.find_spec(name) for name in PRELOAD), PRELOAD

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
