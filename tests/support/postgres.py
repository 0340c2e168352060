"""A throwaway PostgreSQL server for tests, from the PostgreSQL installed on the machine.

``PostgresServer`` runs ``initdb`` into a fresh temp directory, starts the
server with ``pg_ctl`` listening only on a unix socket inside that directory
(no TCP), with fsync off, and creates a login role with a random password
(scram-sha-256) and a database it owns. ``stop()`` shuts it down (``pg_ctl -m
fast``, then SIGKILL for anything left) and removes the directory.

initdb and the server refuse to run as root: as root they run as the
``postgres`` OS user (which Debian's package creates) and the directory is
handed to it; otherwise they run as the current user. The bootstrap superuser
``postgres`` is reachable only over the socket by peer authentication from the
OS user running the tests (or the server's), which is what ``psql()`` uses.

The password is never in ``url()``: the app takes it from its secrets
provider, so tests hand over ``password`` separately.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

INSTALL_HINT = (
    "Install the PostgreSQL server: `apt-get install postgresql` (Debian/Ubuntu; `make test` "
    "does this itself when run as root), or point PG_BINDIR at the directory holding initdb."
)
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
SUPERUSER = "postgres"
PORT = 5432  # only names the socket file (.s.PGSQL.5432); nothing listens on TCP
SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) - 1 on Linux
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresNotFound(RuntimeError):
    """The PostgreSQL server binaries are not installed (the message says how to install them)."""


class PostgresError(RuntimeError):
    """The throwaway server could not be set up, started or queried."""


def _version_key(path: str) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin -> (15,); unparsable versions sort first.
    version = Path(path).parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit()) or (0,)


def candidate_bindirs() -> list[Path]:
    """Where the server binaries may be, most preferred first."""
    found: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        found.append(Path(os.environ["PG_BINDIR"]))
    on_path = shutil.which("initdb")
    if on_path:  # often a symlink (/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb)
        found.append(Path(os.path.realpath(on_path)).parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            bindir = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if bindir:
                found.append(Path(bindir))
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    found.extend(Path(path) for path in debian)
    found.append(Path("/usr/local/pgsql/bin"))
    return found


def find_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres; PostgresNotFound if there is none."""
    looked: list[str] = []
    for bindir in candidate_bindirs():
        if str(bindir) in looked:
            continue
        looked.append(str(bindir))
        if all(os.access(bindir / name, os.X_OK) for name in SERVER_BINARIES):
            return bindir
    missing = ", ".join(SERVER_BINARIES)
    raise PostgresNotFound(
        f"PostgreSQL server binaries not found ({missing}); looked on PATH and in "
        f"{', '.join(looked) or '(nowhere)'}. {INSTALL_HINT}"
    )


def _psql_binary(bindir: Path) -> str:
    if os.access(bindir / "psql", os.X_OK):
        return str(bindir / "psql")
    on_path = shutil.which("psql")
    if on_path:
        return on_path
    raise PostgresNotFound(f"psql not found in {bindir} nor on PATH. {INSTALL_HINT}")


def _clean_env() -> dict[str, str]:
    """The environment without PG* variables, which would redirect initdb, the server or psql."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _conf_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


class PostgresServer:
    """A PostgreSQL cluster in a temp directory, on a unix socket only.

    >>> with PostgresServer() as pg:
    ...     engine = sqlalchemy.create_engine(pg.url(), connect_args={"password": pg.password})
    """

    def __init__(
        self,
        user: str = "lake",
        database: str = "lake",
        *,
        parent_dir: str | Path | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        for name in (user, database):
            if not _IDENTIFIER.match(name):
                raise ValueError(f"not a plain lower-case identifier: {name!r}")
        if user == SUPERUSER:
            raise ValueError(f"the role must not be the bootstrap superuser {SUPERUSER!r}")
        self.user = user
        self.database = database
        self.password = secrets.token_urlsafe(24)
        self.parent_dir = Path(parent_dir) if parent_dir else Path(tempfile.gettempdir())
        self.start_timeout = start_timeout
        self.bindir: Path | None = None
        self.base: Path | None = None
        self._run_as: pwd.struct_passwd | None = None  # the OS user running the server, as root
        self._started = False

    # -- paths -----------------------------------------------------------------

    def _base(self) -> Path:
        if self.base is None:
            raise PostgresError("the server is not started")
        return self.base

    @property
    def socket_dir(self) -> Path:
        return self._base() / "sock"

    @property
    def data_dir(self) -> Path:
        return self._base() / "data"

    @property
    def log_path(self) -> Path:
        return self._base() / "server.log"

    @property
    def port(self) -> int:
        return PORT

    # -- what tests and the app use ----------------------------------------------

    def url(self, driver: str = "postgresql+psycopg", database: str | None = None) -> str:
        """A SQLAlchemy URL without the password, e.g.
        ``postgresql+psycopg://lake@/lake?host=/tmp/lakehouse-pg-x/sock``."""
        return f"{driver}://{self.user}@/{database or self.database}?host={self.socket_dir}"

    def connect_kwargs(self, database: str | None = None) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect(**...)``, password included."""
        return {
            "host": str(self.socket_dir),
            "port": PORT,
            "dbname": database or self.database,
            "user": self.user,
            "password": self.password,
        }

    def psql(self, sql: str, database: str | None = None) -> str:
        """Run ``sql`` as the superuser (over the socket, peer auth); return the unaligned,
        tuples-only output (``|`` between columns, one row a line), stripped.
        Raises PostgresError with psql's message when a statement fails."""
        if not self._started:
            raise PostgresError("the server is not started")
        assert self.bindir is not None
        cmd = [
            _psql_binary(self.bindir),
            "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            "-h", str(self.socket_dir), "-p", str(PORT),
            "-U", SUPERUSER, "-d", database or self.database,
        ]  # fmt: skip
        proc = subprocess.run(
            cmd, input=sql, capture_output=True, text=True, env=_clean_env(), timeout=60
        )
        if proc.returncode != 0:
            raise PostgresError(f"psql failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout.strip()

    def create_database(self, name: str) -> str:
        """A fresh database owned by the role; returns its name (for ``url(database=...)``)."""
        if not _IDENTIFIER.match(name):
            raise ValueError(f"not a plain lower-case identifier: {name!r}")
        self.psql(f'CREATE DATABASE "{name}" OWNER "{self.user}"', database="postgres")
        return name

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> PostgresServer:
        if self._started:
            return self
        self.bindir = find_bindir()
        self._run_as = self._server_os_user()
        self.base = Path(tempfile.mkdtemp(prefix="lakehouse-pg-", dir=self.parent_dir))
        try:
            self._check_socket_path()
            self._prepare_dir()
            self._initdb()
            self._configure()
            self._pg_ctl("start", "-w", "-t", str(int(self.start_timeout)), "-l", self.log_path)
            self._started = True
            atexit.register(self.stop)
            self.psql(
                f'CREATE ROLE "{self.user}" LOGIN PASSWORD {_sql_literal(self.password)};\n'
                f'CREATE DATABASE "{self.database}" OWNER "{self.user}";\n',
                database="postgres",
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown; SIGKILL whatever is left) and remove its directory.
        Safe to call more than once, and on a half-started server."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        base = self.base
        if base is None:
            return
        if (base / "data" / "postmaster.pid").exists():
            with contextlib.suppress(PostgresError, subprocess.TimeoutExpired):
                self._pg_ctl("stop", "-m", "fast", "-w", "-t", "30")
            self._kill_leftovers()
        self._started = False
        shutil.rmtree(base, ignore_errors=True)
        self.base = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:  # never the password
        where = self.url() if self.base else "not started"
        return f"<PostgresServer {where}>"

    # -- internals ---------------------------------------------------------------------

    @staticmethod
    def _server_os_user() -> pwd.struct_passwd | None:
        """The OS user to run initdb and the server as: ``postgres`` when we are root
        (both refuse root), else None (the current user)."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresNotFound(
                "running as root, and initdb refuses root, but there is no 'postgres' OS user to "
                f"run it as (Debian's postgresql package creates it). {INSTALL_HINT}"
            ) from None

    def _as_server_user(self) -> dict[str, Any]:
        """subprocess.run arguments that drop to the server's OS user when we are root."""
        if self._run_as is None:
            return {}
        return {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid, "extra_groups": []}

    def _run(
        self, args: list[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            args,
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else _clean_env(),
            timeout=timeout,
            cwd=self._base(),  # not the caller's cwd, which the postgres user may not reach
            **self._as_server_user(),
        )
        if proc.returncode != 0:
            raise PostgresError(
                f"{Path(args[0]).name} {args[1] if len(args) > 1 else ''} failed "
                f"({proc.returncode}): {(proc.stderr or proc.stdout).strip()}{self._log_tail()}"
            )
        return proc

    def _check_socket_path(self) -> None:
        socket_file = self.socket_dir / f".s.PGSQL.{PORT}"
        if len(str(socket_file)) > SOCKET_PATH_MAX:
            raise PostgresError(
                f"socket path {socket_file} is longer than {SOCKET_PATH_MAX} bytes; "
                "pass a shorter parent_dir (or TMPDIR)"
            )

    def _prepare_dir(self) -> None:
        base = self._base()
        self.socket_dir.mkdir()
        if self._run_as is None:
            return
        for path in (base, self.socket_dir):
            os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
        reachable = subprocess.run(
            ["test", "-w", str(base), "-a", "-x", str(base)],
            env=_clean_env(),
            check=False,
            cwd="/",
            **self._as_server_user(),
        )
        if reachable.returncode != 0:
            raise PostgresError(
                f"the PostgreSQL server runs as the OS user {self._run_as.pw_name!r}, which "
                f"cannot reach {base}: make its parent directories traversable (chmod o+x) "
                "or pass another parent_dir (or TMPDIR)"
            )

    def _initdb(self) -> None:
        assert self.bindir is not None
        initdb = [str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER]
        initdb += ["--auth-local=peer", "--auth-host=reject", "-E", "UTF8", "--locale=C"]
        initdb += ["--no-sync"]  # a throwaway cluster: nothing to flush to disk
        self._run(initdb, timeout=120)

    def _configure(self) -> None:
        # Only the superuser by peer (mapped from the OS users that run tests or the server);
        # everyone else with a password. No TCP lines: nothing listens there anyway.
        me = pwd.getpwuid(os.geteuid()).pw_name
        os_users = {me} | ({self._run_as.pw_name} if self._run_as else set())
        (self.data_dir / "pg_ident.conf").write_text(
            "".join(f"boot {name} {SUPERUSER}\n" for name in sorted(os_users))
        )
        (self.data_dir / "pg_hba.conf").write_text(
            f"local all {SUPERUSER} peer map=boot\nlocal all all scram-sha-256\n"
        )
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": _conf_literal(str(self.socket_dir)),
            "unix_socket_permissions": "0777",
            "port": str(PORT),
            "password_encryption": "'scram-sha-256'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "log_min_messages": "warning",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# lakehouse tests: a throwaway server\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _pg_ctl(self, action: str, *args: str | Path) -> None:
        assert self.bindir is not None
        self._run(
            [str(self.bindir / "pg_ctl"), action, "-D", str(self.data_dir), *map(str, args)],
            timeout=self.start_timeout + 30,
        )

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _kill_leftovers(self) -> None:
        """SIGKILL the postmaster (still running after a failed stop) and its children."""
        pid = self._postmaster_pid()
        if pid is None or not _is_postgres(pid, self.data_dir):
            return
        for child in [pid, *_children(pid)]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except (OSError, PostgresError):
            return ""
        return "\nserver log:\n" + "\n".join(tail) if tail else ""


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # the command name in (...) may hold spaces; the ppid is the 2nd field after it
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _is_postgres(pid: int, data_dir: Path) -> bool:
    """True when ``pid`` is the postmaster on ``data_dir`` (``postgres -D data_dir``), not a
    reused pid."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(data_dir).encode() in cmdline
