"""Fixtures of the integration tier.

- ``settings`` (from tests/conftest.py): a fresh Settings per test, once per
  storage backend.
- ``client``: the app in-process (fast), lifespan run, for ``settings``.
- ``server``: a real ``lakehouse serve`` subprocess for ``settings``.
- ``store``: the started ObjectStore the app would use for ``settings``.
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


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async with AsyncTestClient(app=create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def server(settings: Settings, tmp_path: Path) -> Iterator[LakehouseServer]:
    proc = LakehouseServer(settings, tmp_path).start()
    yield proc
    proc.stop()


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[ObjectStore]:
    services = build_services(settings)
    await services.store.start()
    yield services.store
    await services.store.close()
