"""One DuckDB view per dataset, refreshed when the catalog's version changes (ADR 0007).

``ensure_fresh`` is called before every query. When the catalog version is
the one of the last refresh it returns after one string comparison; when
it differs, one caller (under a lock) lists the catalog and re-creates the
views, and every concurrent caller waits for that refresh and then runs.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

import duckdb

from lakehouse.catalog import Catalog, Column, Manifest
from lakehouse.errors import LakehouseError
from lakehouse.query.errors import QueryFailed

log = logging.getLogger("lakehouse.query")

# A column type as the catalog writes it (BIGINT, DECIMAL(38,0), TIMESTAMP WITH TIME ZONE,
# VARCHAR[] ...): letters, digits, spaces, parentheses, commas, brackets. Anything else
# is not spliced into our (unsandboxed) DDL.
_SAFE_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_ ,()\[\]]*")

KNOWN_PATHS_MAX = 100_000
"""Object paths remembered from views (current and replaced ones), to tell a dataset
object deleted under a running query from a wrong path in the user's SQL."""


def quote_identifier(name: str) -> str:
    """A DuckDB identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A DuckDB string literal."""
    return "'" + value.replace("'", "''") + "'"


def view_sql(manifest: Manifest, paths: Sequence[str]) -> str:
    """``CREATE OR REPLACE VIEW`` for one dataset; ``paths``: its objects as DuckDB reads them."""
    name = quote_identifier(manifest.name)
    if paths:
        # The table's columns, in its order: files of older versions may lack columns
        # added since (NULL there, by name) or hold columns dropped since.
        select = ", ".join(quote_identifier(column.name) for column in manifest.schema)
        files = ", ".join(quote_literal(path) for path in paths)
        union = ", union_by_name = true" if len(paths) > 1 else ""
        return (
            f"CREATE OR REPLACE VIEW {name} AS SELECT {select} FROM read_parquet([{files}]{union})"
        )
    # No object (nothing to read_parquet): still a view with the dataset's columns.
    return f"CREATE OR REPLACE VIEW {name} AS {empty_select(manifest.name, manifest.schema)}"


def empty_select(dataset: str, schema: Sequence[Column]) -> str:
    """A ``SELECT`` of no rows with ``schema``'s columns and types: a dataset (or one of
    its versions) with no object. Raises ``ValueError`` for a type we do not splice."""
    columns = []
    for column in schema:
        if not _SAFE_TYPE.fullmatch(column.type):
            raise ValueError(f"unsafe column type {column.type!r} in dataset {dataset!r}")
        columns.append(f"CAST(NULL AS {column.type}) AS {quote_identifier(column.name)}")
    select = ", ".join(columns) if columns else "NULL AS empty"
    return f"SELECT {select} WHERE false"


class ViewRegistrar:
    """Keeps the database's views in step with the catalog."""

    def __init__(
        self,
        catalog: Catalog,
        admin: duckdb.DuckDBPyConnection,
        duckdb_path: Callable[[str], str],
        executor: Executor,
    ) -> None:
        self._catalog = catalog
        self._admin = admin  # used only under the lock, never by user SQL
        self._duckdb_path = duckdb_path
        self._executor = executor
        self._lock = asyncio.Lock()
        self._version: str | None = None
        self._views: dict[str, str] = {}  # lower-case name -> fingerprint of its manifest
        self._paths: OrderedDict[str, None] = OrderedDict()  # every object path of a view
        self.refreshes = 0

    def names_dataset_object(self, text: str) -> bool:
        """Whether ``text`` (an error message) names an object some view read."""
        return any(path in text for path in list(self._paths))

    @property
    def version(self) -> str | None:
        """The catalog version the views reflect."""
        return self._version

    async def ensure_fresh(self) -> None:
        """Re-create the views if the catalog changed since the last refresh."""
        if await self._catalog.version() == self._version:
            return
        async with self._lock:
            # Read before listing: a change landing meanwhile refreshes again next time.
            version = await self._catalog.version()
            if version == self._version:
                return
            manifests = await self._catalog.list()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._apply, manifests)
            self._version = version
            self.refreshes += 1

    def _apply(self, manifests: list[Manifest]) -> None:
        wanted: dict[str, str] = {}
        for manifest in manifests:
            key = manifest.name.lower()
            fingerprint = f"{manifest.updated_at.isoformat()}|{','.join(manifest.objects)}"
            wanted[key] = fingerprint
            if self._views.get(key) == fingerprint:
                continue
            try:
                paths = [self._duckdb_path(object_key) for object_key in manifest.objects]
                self._admin.execute(view_sql(manifest, paths))
            except (duckdb.Error, ValueError, LakehouseError) as exc:
                # One broken dataset must not hide the others: it simply has no view.
                log.error(
                    "cannot create the view of dataset %s: %s",
                    manifest.name,
                    exc,
                    extra={"dataset": manifest.name},
                )
                wanted.pop(key)
                self._drop(key)
                continue
            self._views[key] = fingerprint
            for path in paths:
                self._paths[path] = None
                self._paths.move_to_end(path)
            while len(self._paths) > KNOWN_PATHS_MAX:
                self._paths.popitem(last=False)
        for key in list(self._views):
            if key not in wanted:
                self._drop(key)

    def _drop(self, key: str) -> None:
        try:
            self._admin.execute(f"DROP VIEW IF EXISTS {quote_identifier(key)}")
        except duckdb.Error as exc:
            raise QueryFailed(f"cannot drop the view of dataset {key!r}: {exc}") from exc
        self._views.pop(key, None)
