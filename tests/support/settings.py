"""Settings for tests: one backend per Settings, each test with its own data."""

from __future__ import annotations

import uuid
from pathlib import Path

from lakehouse.config import Settings
from tests.support.servers import MotoServer

# Credentials moto accepts; they stand in for real ones in every S3 test.
TEST_ACCESS_KEY = "AKIATESTLAKEHOUSE0001"
TEST_SECRET_KEY = "lakehouse-test-secret-value-do-not-log-0001"

BACKENDS = ["local", "s3"]


def make_settings(backend: str, tmp_path: Path, moto: MotoServer | None) -> Settings:
    """Settings for ``backend``: a data directory under ``tmp_path``, and for
    ``s3`` a bucket of its own on the moto server (created at start)."""
    settings = Settings()
    settings.storage.data_dir = str(tmp_path / "data")
    settings.logging.level = "debug"
    # The MCP endpoint's SDK is a large import every server start would pay for; the tests
    # of /mcp (tests/e2e/test_mcp.py) turn it on.
    settings.mcp.enabled = False
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
