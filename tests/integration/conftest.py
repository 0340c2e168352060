"""Fixtures of the integration tier.

- ``settings`` (from tests/conftest.py): a fresh Settings per test, once per
  storage backend.
- ``client``: the app in-process (fast), lifespan run, for ``settings``.
- ``server``: a real ``lakehouse serve`` subprocess for ``settings``.
- ``store``: the started ObjectStore the app would use for ``settings``.
- ``module_server``: one real ``lakehouse serve`` per backend for a whole module, for
  tests that each use datasets of their own (a server start costs seconds of CPU).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from lakehouse.app import build_services, create_app
from lakehouse.config import Settings
from lakehouse.storage import ObjectStore
from tests.support.servers import LakehouseServer
from tests.support.settings import BACKENDS, make_settings


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def server(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> Iterator[LakehouseServer]:
    # ``real_executable``: the console script, not a fork of the preloaded process
    # (tests/support/zygote.py says when that matters).
    exec_ = request.node.get_closest_marker("real_executable") is not None
    proc = LakehouseServer(settings, tmp_path, exec_=exec_).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def module_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LakehouseServer]:
    workdir = tmp_path_factory.mktemp(f"server-{request.param}")
    moto = request.getfixturevalue("moto") if request.param == "s3" else None
    server = LakehouseServer(make_settings(request.param, workdir, moto), workdir).start()
    yield server
    server.stop()


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[ObjectStore]:
    services = build_services(settings)
    await services.store.start()
    yield services.store
    await services.store.close()
