"""The DuckDB database: opened once, sandboxed, shared through a pool of cursors.

Set-up order matters (ADR 0005, 0006, 0008): load httpfs from the wheel's
file, create the S3 secret, turn external access off with
``allowed_directories`` = the data location, then lock the configuration.
Nothing after that (neither our view DDL nor a user's query) can change a
setting; view DDL is not a setting, so it keeps working.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import duckdb

from lakehouse.config import QuerySettings, StorageSettings
from lakehouse.storage.secrets import SecretsProvider

log = logging.getLogger("lakehouse.query")

DUCKDB_VERSION = "1.5.5"


def httpfs_extension_path() -> Path:
    """The httpfs extension shipped in the ``duckdb-extension-httpfs`` wheel (never INSTALLed)."""
    import duckdb_extension_httpfs

    path = (
        Path(duckdb_extension_httpfs.__file__).parent
        / "extensions"
        / f"v{DUCKDB_VERSION}"
        / "httpfs.duckdb_extension"
    )
    if not path.is_file():
        raise RuntimeError(
            f"httpfs extension not found at {path}: duckdb and duckdb-extension-httpfs "
            f"must both be {DUCKDB_VERSION} (see ADR 0005)"
        )
    return path


def _literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def s3_secret_sql(storage: StorageSettings, secrets: SecretsProvider, bucket_root: str) -> str:
    """``CREATE SECRET`` for the primary bucket, from the SecretsProvider (ADR 0006)."""
    s3 = storage.s3
    options = [
        "TYPE S3",
        f"REGION {_literal(s3.region)}",
        f"URL_STYLE {_literal('path' if s3.path_style else 'vhost')}",
        f"SCOPE {_literal(bucket_root)}",
    ]
    if s3.endpoint_url:
        parts = urlsplit(s3.endpoint_url)
        options.append(f"ENDPOINT {_literal(parts.netloc)}")
        options.append(f"USE_SSL {'true' if parts.scheme == 'https' else 'false'}")
    credentials = secrets.s3_credentials()
    # No credentials: an anonymous secret (public buckets); the credential_chain
    # provider would need the aws extension, which we do not ship.
    if credentials is not None:
        options.append(f"KEY_ID {_literal(credentials.access_key_id)}")
        options.append(f"SECRET {_literal(credentials.secret_access_key)}")
        if credentials.session_token:
            options.append(f"SESSION_TOKEN {_literal(credentials.session_token)}")
    return f"CREATE SECRET lakehouse_primary ({', '.join(options)})"


class Database:
    """One in-memory DuckDB database, configured and locked."""

    def __init__(
        self,
        query: QuerySettings,
        storage: StorageSettings,
        secrets: SecretsProvider,
        data_root: str,
    ) -> None:
        self._temp_dir = Path(tempfile.mkdtemp(prefix="lakehouse-duckdb-"))
        config: dict[str, str | bool | int | float | list[str]] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_persistent_secrets": False,
            "allow_community_extensions": False,
        }
        if query.threads:
            config["threads"] = query.threads
        if query.memory_limit:
            config["memory_limit"] = query.memory_limit
        self.connection = duckdb.connect(":memory:", config=config)
        con = self.connection
        con.execute(f"LOAD {_literal(str(httpfs_extension_path()))}")
        if data_root.startswith("s3://"):
            # The statement holds the secret: never log it, never put it in an error.
            try:
                con.execute(s3_secret_sql(storage, secrets, data_root))
            except duckdb.Error as exc:
                raise RuntimeError(
                    f"could not create the DuckDB S3 secret ({type(exc).__name__})"
                ) from None
        # Spill files go to a private directory; it is readable by queries
        # (DuckDB adds it to allowed_directories), so nothing else lives there.
        con.execute(f"SET temp_directory = {_literal(str(self._temp_dir))}")
        # Objects are immutable once written (keys are unique), so caching
        # Parquet footers and HTTP metadata is safe and saves a round trip per query.
        con.execute("SET parquet_metadata_cache = true")
        con.execute("SET enable_http_metadata_cache = true")
        con.execute(f"SET allowed_directories = [{_literal(data_root)}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        self.data_root = data_root

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new connection (cursor) to the same database."""
        return self.connection.cursor()

    def close(self) -> None:
        self.connection.close()
        shutil.rmtree(self._temp_dir, ignore_errors=True)


class CursorPool:
    """A fixed set of cursors; a query borrows one and gives it back.

    ``acquire`` waits (on the event loop, without blocking it) until one is
    free. ``size`` never changes; ``idle`` is how many are free now.
    """

    def __init__(self, database: Database, size: int) -> None:
        if size < 1:
            raise ValueError("query.pool_size must be at least 1")
        self.size = size
        self._cursors = [database.cursor() for _ in range(size)]
        self._free: asyncio.Queue[duckdb.DuckDBPyConnection] = asyncio.Queue()
        for cursor in self._cursors:
            self._free.put_nowait(cursor)

    @property
    def idle(self) -> int:
        return self._free.qsize()

    async def acquire(self) -> duckdb.DuckDBPyConnection:
        return await self._free.get()

    def release(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self._free.put_nowait(cursor)

    def close(self) -> None:
        for cursor in self._cursors:
            cursor.close()
