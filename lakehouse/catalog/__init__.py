"""Catalog: dataset manifests persisted as Parquet through an ObjectStore."""

from lakehouse.catalog.interface import Catalog, Column, Manifest, RegisterRequest, Registration

__all__ = ["Catalog", "Column", "Manifest", "RegisterRequest", "Registration"]
