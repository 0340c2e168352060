"""Shared fixtures.

- ``settings``: a fresh Settings per test, parametrised over the storage
  backends (``local`` under tmp_path, ``s3`` on a real moto server with a
  bucket of its own). Tests that use it run once per backend.
- ``local_settings``: the same, local backend only.
- ``client``: the app in-process (fast), lifespan run, for ``settings``.
- ``server``: a real ``lakehouse serve`` subprocess for ``settings``.
- ``store``: the started ObjectStore the app would use for ``settings``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from lakehouse.app import build_services, create_app
from lakehouse.config import Settings
from lakehouse.storage import ObjectStore
from tests.support.servers import LakehouseServer, MotoServer

# Credentials moto accepts; they stand in for real ones in every S3 test.
TEST_ACCESS_KEY = "AKIATESTLAKEHOUSE0001"
TEST_SECRET_KEY = "lakehouse-test-secret-value-do-not-log-0001"

BACKENDS = ["local", "s3"]


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


def make_settings(backend: str, tmp_path: Path, moto: MotoServer | None) -> Settings:
    settings = Settings()
    settings.storage.data_dir = str(tmp_path / "data")
    settings.logging.level = "debug"
    secrets_file = tmp_path / "secrets.toml"
    settings.secrets.file = str(secrets_file)
    if backend == "s3":
        assert moto is not None
        secrets_file.write_text(
            f'[s3]\naccess_key_id = "{TEST_ACCESS_KEY}"\nsecret_access_key = "{TEST_SECRET_KEY}"\n'
        )
        settings.storage.backend = "s3"
        settings.storage.s3.endpoint_url = moto.endpoint_url
        settings.storage.s3.bucket = f"t-{uuid.uuid4().hex[:20]}"
        settings.storage.s3.create_bucket = True
    return settings


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    moto = request.getfixturevalue("moto") if request.param == "s3" else None
    return make_settings(request.param, tmp_path, moto)


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    return make_settings("local", tmp_path, None)


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
