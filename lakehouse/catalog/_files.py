"""What a commit reads of a table's own files, remembered by location (ADR 0014).

Iceberg never rewrites a table file: a commit writes a new metadata file, manifest
list and manifests, each under a fresh name, and points the SQL catalog at the new
metadata file. So what was read (or written) at a location holds for as long as the
location is named anywhere, and a commit need not read the table's metadata JSON and
every manifest again each time. The SQL catalog's row is still read on every load:
it says which metadata file is current, and its optimistic update is what detects a
concurrent commit of another replica.

The same goes for a new data file: its footer is read once, to check the file before
the commit, and the commit describes the file from that footer. And for the metadata a
commit stages: worked out once per change (``MemoTransaction``), not on every read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import IcebergTables, SqlCatalog
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    _check_pyarrow_schema_compatible,
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat, ManifestFile
from pyiceberg.table import CommitTableResponse, Table, TableProperties, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import TableRequirement, TableUpdate
from pyiceberg.utils.properties import property_as_bool

K = TypeVar("K")
V = TypeVar("V")

METADATA_CACHE_SIZE = 256
"""Metadata files remembered (a few per table: the current one and its predecessor)."""
MANIFEST_CACHE_SIZE = 4096
"""Manifests whose live data files are remembered."""


class LruCache(Generic[K, V]):
    """A bounded map, least recently used out first, shared by the catalog's threads."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        with self._lock:
            self._items.pop(key, None)

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        value = self.get(key)
        if value is None:
            value = load()
            self.put(key, value)
        return value


class CachingSqlCatalog(SqlCatalog):
    """pyiceberg's ``SqlCatalog`` that reads a metadata file once: a table is loaded
    from the SQL catalog's row as before, but the metadata at that row's location
    comes from memory when this process read or committed it already. A commit still
    checks that the file is there (one HEAD, not a GET and a parse)."""

    def __init__(self, name: str, **properties: Any) -> None:
        super().__init__(name, **properties)
        self._metadata: LruCache[str, TableMetadata] = LruCache(METADATA_CACHE_SIZE)

    def _convert_orm_to_iceberg(self, orm_table: IcebergTables) -> Table:
        location = orm_table.metadata_location
        metadata = self._metadata.get(location) if location else None
        if location and metadata and orm_table.table_namespace and orm_table.table_name:
            namespace = Catalog.identifier_to_tuple(orm_table.table_namespace)
            return Table(
                identifier=(*namespace, orm_table.table_name),
                metadata=metadata,
                metadata_location=location,
                io=self._load_file_io(metadata.properties, location),
                catalog=self,
            )
        table = super()._convert_orm_to_iceberg(orm_table)  # reads the file (or says why not)
        self._metadata.put(table.metadata_location, table.metadata)
        return table

    def commit_table(
        self,
        table: Table,
        requirements: tuple[TableRequirement, ...],
        updates: tuple[TableUpdate, ...],
    ) -> CommitTableResponse:
        location = table.metadata_location
        if self._metadata.get(location) is not None and not table.io.new_input(location).exists():
            # Deleted behind the catalog: forgotten, so that the load inside the commit
            # reads the file and fails as it would have without the cache (the table is
            # damaged; a commit must not paper over that from memory).
            self._metadata.pop(location)
        response = super().commit_table(table, requirements, updates)
        self._metadata.put(response.metadata_location, response.metadata)
        return response


def live_files(
    cache: LruCache[str, list[DataFile]], io: FileIO, manifest: ManifestFile
) -> list[DataFile]:
    """The data files a manifest holds that are not marked deleted (read once)."""
    return cache.get_or_load(
        manifest.manifest_path,
        lambda: [e.data_file for e in manifest.fetch_manifest_entry(io, discard_deleted=True)],
    )


class MemoTransaction(Transaction):
    """pyiceberg's ``Transaction`` computing ``table_metadata`` once per state. pyiceberg
    computes it, a deep copy of the whole metadata, on every read (more than ten in a
    commit), at a cost that grows with the versions kept. A state is the table's
    metadata and the updates staged so far: both are replaced, never changed in place,
    and the metadata models are frozen, so one copy can serve every reader."""

    _memo: tuple[TableMetadata, tuple[TableUpdate, ...], TableMetadata] | None = None

    @property
    def table_metadata(self) -> TableMetadata:
        base, updates = self._table.metadata, self._updates
        memo = self._memo
        if memo is None or memo[0] is not base or memo[1] is not updates:
            memo = (base, updates, super().table_metadata)
            self._memo = memo
        return memo[2]


@dataclass(frozen=True)
class Footer:
    """A new Parquet file's footer and size, as the check before its commit read them."""

    metadata: pq.FileMetaData
    size: int


def data_file_from_footer(table_metadata: TableMetadata, location: str, footer: Footer) -> DataFile:
    """pyiceberg's ``parquet_file_to_data_file`` (0.12), from a footer in hand: that one
    reads the footer again and asks the store for the file's size."""
    schema = table_metadata.schema()
    _check_pyarrow_schema_compatible(
        schema,
        footer.metadata.schema.to_arrow_schema(),
        format_version=table_metadata.format_version,
    )
    statistics = data_file_statistics_from_parquet_metadata(
        parquet_metadata=footer.metadata,
        stats_columns=compute_statistics_plan(schema, table_metadata.properties),
        parquet_column_mapping=parquet_path_to_id_mapping(schema),
    )
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=location,
        file_format=FileFormat.PARQUET,
        partition=statistics.partition(table_metadata.spec(), schema),
        file_size_in_bytes=footer.size,
        sort_order_id=None,
        spec_id=table_metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **statistics.to_serialized_dict(),
    )


def append_files(tx: Transaction, footers: dict[str, Footer], properties: dict[str, str]) -> None:
    """``Transaction.add_files`` (0.12, without its duplicate check) for files whose
    footers are in hand: a name mapping for a table that has none (the files carry no
    field ids), then a merge or fast append as the table's properties say."""
    if tx.table_metadata.name_mapping() is None:
        mapping = tx.table_metadata.schema().name_mapping.model_dump_json()
        tx.set_properties({TableProperties.DEFAULT_NAME_MAPPING: mapping})
    update = tx.update_snapshot(snapshot_properties=properties)
    merge = property_as_bool(
        tx.table_metadata.properties,
        TableProperties.MANIFEST_MERGE_ENABLED,
        TableProperties.MANIFEST_MERGE_ENABLED_DEFAULT,
    )
    with update.merge_append() if merge else update.fast_append() as append:
        metadata = tx.table_metadata
        for location, footer in footers.items():
            append.append_data_file(data_file_from_footer(metadata, location, footer))
