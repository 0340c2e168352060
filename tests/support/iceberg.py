"""Another engine's view of our tables: pyiceberg's own ``SqlCatalog`` on the app's
catalog database and storage, sharing nothing with the app but the settings."""

from __future__ import annotations

from pathlib import Path

from pyiceberg.catalog.sql import SqlCatalog

from lakehouse.config import Settings
from tests.support.settings import TEST_ACCESS_KEY, TEST_SECRET_KEY


def storage_properties(settings: Settings) -> dict[str, str]:
    """pyiceberg FileIO properties for the settings' storage (the test credentials)."""
    if settings.storage.backend != "s3":
        return {"warehouse": str(Path(settings.storage.data_dir).resolve()) + "/"}
    s3 = settings.storage.s3
    assert s3.endpoint_url
    return {
        "warehouse": f"s3://{s3.bucket}/",
        "s3.endpoint": s3.endpoint_url,
        "s3.access-key-id": TEST_ACCESS_KEY,
        "s3.secret-access-key": TEST_SECRET_KEY,
        "s3.region": s3.region,
        "s3.path-style-access": "true",
    }


def pyiceberg_catalog(settings: Settings) -> SqlCatalog:
    """A SqlCatalog of our own on the app's catalog database (the default SQLite)."""
    database = Path(settings.storage.data_dir).resolve() / "_state" / "catalog.db"
    assert database.is_file(), database
    return SqlCatalog(
        settings.catalog.name, uri=f"sqlite:///{database}", **storage_properties(settings)
    )
