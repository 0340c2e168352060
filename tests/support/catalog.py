"""Helpers for catalog tests: placing data objects, building register requests and bodies."""

from __future__ import annotations

from typing import Any

from lakehouse.catalog import Column, RegisterRequest
from lakehouse.storage import ObjectStore

SCHEMA = [{"name": "id", "type": "BIGINT"}, {"name": "city", "type": "VARCHAR"}]
OTHER_SCHEMA = [{"name": "id", "type": "VARCHAR"}, {"name": "city", "type": "VARCHAR"}]
COLUMNS = [Column("id", "BIGINT"), Column("zip", "VARCHAR")]


async def put_objects(store: ObjectStore, *keys: str) -> list[str]:
    """Write a small placeholder object under each key (the catalog only checks existence)."""
    for key in keys:
        await store.put(key, b"PAR1 placeholder")
    return list(keys)


def register_body(
    name: str,
    objects: list[str],
    *,
    schema: list[dict[str, str]] | None = None,
    row_count: int = 10,
) -> dict[str, Any]:
    return {
        "name": name,
        "schema": schema if schema is not None else SCHEMA,
        "objects": objects,
        "row_count": row_count,
    }


def register_request(
    name: str, objects: list[str], columns: list[Column] = COLUMNS, rows: int = 3
) -> RegisterRequest:
    """A RegisterRequest for the Catalog protocol (``register_body`` is its JSON twin)."""
    return RegisterRequest(name=name, schema=columns, objects=objects, row_count=rows)
