"""Fixtures every tier uses.

- ``moto``: moto's S3 server, one per session; each S3 test makes a bucket of its own.
- ``fault_proxy``: a fault-injecting HTTP proxy in front of that moto server, one per
  test (tests/support/fault_proxy.py); point a backend's endpoint at its ``endpoint_url``.
- ``settings``: a fresh Settings per test, parametrised over the storage
  backends (``local`` under tmp_path, ``s3`` on the moto server with a bucket of
  its own). Tests that use it run once per backend.
- ``local_settings``: a fresh Settings for the local backend under tmp_path.
- ``postgres``: a throwaway PostgreSQL server (tests/support/postgres.py), one per
  session, started only when a test asks for it. Its ``url()`` has no password;
  ``password`` is separate. Fails (never skips) when PostgreSQL is not installed.

``lakehouse serve`` is forked from a process that has imported the app
(tests/support/zygote.py); ``LakehouseServer(..., exec_=True)`` runs the console script.

Tests marked ``slow`` run first, longest first (``slow(seconds=...)``: about how long
one takes on a quiet machine): with several pytest-xdist workers, a long test that starts
last would finish minutes after the rest.

The tiers' own fixtures live in their conftest: ``integration/`` (``client``,
``server``, ``store``) and ``contracts/`` (every implementation of each protocol).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse.config import Settings
from tests.support import servers
from tests.support.fault_proxy import FaultProxy
from tests.support.postgres import PostgresNotFound, PostgresServer
from tests.support.servers import MotoServer
from tests.support.settings import BACKENDS, make_settings


def pytest_configure(config: pytest.Config) -> None:
    servers.FORK_SERVERS = True  # tests/support/zygote.py, ADR 0024


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def expected_seconds(item: pytest.Item) -> float:
        slow = item.get_closest_marker("slow")
        return 0 if slow is None else float(slow.kwargs.get("seconds", 1))

    items.sort(key=expected_seconds, reverse=True)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def fault_proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(("127.0.0.1", moto.port)).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    # A missing PostgreSQL fails the tests that need it, with or without CI: `make test`
    # installs it (scripts/ensure_postgres.sh), so its absence is a broken setup, not a skip.
    server = PostgresServer()
    missing = None
    try:
        server.start()
    except PostgresNotFound as exc:
        missing = str(exc)
    if missing:
        pytest.fail(missing, pytrace=False)
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    moto = request.getfixturevalue("moto") if request.param == "s3" else None
    return make_settings(request.param, tmp_path, moto)


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    return make_settings("local", tmp_path, None)
