"""Settings: one msgspec Struct per ``lakehouse.toml`` section.

Every key has a default, so the app runs with no file at all. Where the file
comes from, in order: an explicit path (``--config``), ``LAKEHOUSE_CONFIG``,
``./lakehouse.toml`` if present, else nothing. A few environment variables
(``ENV_OVERRIDES``) override keys after the file is read. Unknown keys and
wrong types are start-up errors that name the key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

log = logging.getLogger(__name__)

MiB = 1024 * 1024
GiB = 1024 * MiB
MAX_S3_ATTEMPTS = 10


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A config section: unknown keys are errors, not silently ignored."""


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    """Address to bind. Non-loopback addresses need ``auth_token`` (or --insecure)."""
    port: int = 3110
    """TCP port to listen on."""
    auth_token: str = ""
    """When set, every route but /health needs ``Authorization: Bearer <token>``."""
    shutdown_timeout_seconds: float = 30.0
    """How long a graceful shutdown waits for in-flight requests."""


class S3Settings(_Section):
    endpoint_url: str = ""
    """S3 endpoint, e.g. http://127.0.0.1:9000 for MinIO; empty means AWS."""
    bucket: str = "lakehouse"
    """The bucket registered as ``primary``."""
    region: str = "us-east-1"
    """Region used to sign requests."""
    path_style: bool = True
    """Path-style addressing (http://host/bucket/key), what MinIO expects."""
    create_bucket: bool = False
    """Create the bucket at start-up when it does not exist."""
    multipart_chunk_bytes: int = 8 * MiB
    """Part size of multipart uploads (S3 minimum is 5 MiB)."""
    max_attempts: int = 4
    """Attempts per S3 request, the first included (1..10); see ADR 0015 for the budget."""
    retry_mode: Literal["standard", "adaptive"] = "standard"
    """botocore's retry mode: ``standard`` (backoff with jitter) or ``adaptive`` (also
    slows the client down while S3 throttles)."""
    connect_timeout_seconds: float = 5.0
    """Longest wait for a connection to S3, per attempt."""
    read_timeout_seconds: float = 20.0
    """Longest wait for S3's next bytes, per attempt: bounds a stalled read."""

    def __post_init__(self) -> None:
        # msgspec turns these into a ConfigError naming $.storage.s3.<key>.
        if not 1 <= self.max_attempts <= MAX_S3_ATTEMPTS:
            raise ValueError(f"max_attempts must be 1..{MAX_S3_ATTEMPTS}, not {self.max_attempts}")
        for name in ("connect_timeout_seconds", "read_timeout_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive (seconds), not {getattr(self, name)}")


class StorageSettings(_Section):
    backend: Literal["local", "s3"] = "local"
    """``local`` (files under ``data_dir``) or ``s3``."""
    data_dir: str = "./data"
    """Root of the local backend; also holds temporary spool files."""
    max_put_bytes: int = 256 * MiB
    """Largest body accepted by PUT /storage/put (413 above)."""
    max_concurrent_puts: int = 4
    """PUTs in flight at once; one more gets 503 with Retry-After."""
    s3: S3Settings = msgspec.field(default_factory=S3Settings)


class SecretsSettings(_Section):
    file: str = "/etc/lakehouse/secrets.toml"
    """TOML file with [s3] access_key_id / secret_access_key; may be absent."""


class CatalogSettings(_Section):
    uri: str = ""
    """SQLAlchemy URL of the Iceberg SQL catalog's database. Empty: SQLite in
    ``data_dir/_state/catalog.db``. For several replicas: PostgreSQL, e.g.
    ``postgresql+psycopg://lakehouse@db.internal/lakehouse`` (the password comes from
    the secrets provider, never from here)."""
    name: str = "lakehouse"
    """The catalog's name in that database (Spark's and Trino's catalog must use it too)."""
    refresh_seconds: float = 0.5
    """How often the catalog looks for commits made by other replicas."""
    keep_versions: int = 100
    """Snapshot expiry keeps at least the last this many versions of a dataset ..."""
    keep_days: float = 7.0
    """... and every version younger than this many days."""
    compact_after_files: int = 16
    """An append that leaves a dataset with this many data files or more merges them
    into one, in the background, as a new version (0: never; ``POST /admin/compact``)."""
    orphan_grace_seconds: int = 3600
    """Unreferenced dataset objects younger than this are never swept."""


class IngestSettings(_Section):
    max_upload_bytes: int = 2 * GiB
    """Largest upload accepted, as sent (413 above)."""
    max_decompressed_bytes: int = 16 * GiB
    """Largest size a gzip or zstd upload may decompress to (413 above: a zip-bomb guard)."""
    max_concurrent: int = 2
    """Ingests in flight at once; one more gets 503 with Retry-After."""
    sample_rows: int = 10_000
    """Rows read to infer column types."""
    max_field_bytes: int = 8 * MiB
    """Largest CSV field, counted with the rest of its row (its values and delimiters;
    the reader needs a whole row within two blocks); a larger one is a 400 naming its line."""
    row_group_rows: int = 122_880
    """Rows per Parquet row group."""
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    """Parquet compression codec."""

    def __post_init__(self) -> None:
        # 0 or less would disable a guard, not tighten it (a limit of 0 reads nothing).
        for name in ("max_upload_bytes", "max_decompressed_bytes", "max_field_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")


class QuerySettings(_Section):
    pool_size: int = 4
    """DuckDB connections (cursors) shared by all queries."""
    timeout_seconds: float = 30.0
    """Longest a query may run; ``?timeout=`` may lower it per request."""
    threads: int = 0
    """DuckDB worker threads; 0 means one per core."""
    memory_limit: str = ""
    """DuckDB memory limit such as ``4GB``; empty means half of the machine's RAM."""
    spill_limit: str = "10GB"
    """Most disk DuckDB may spill to (under ``data_dir/_tmp/duckdb``) before a query fails."""
    hot_dataset_bytes: int = 512 * 1024 * 1024
    """Memory for in-memory copies of datasets' current versions, which queries then read
    instead of their Parquet objects; 0 turns the copies off (ADR 0017)."""
    result_cache_bytes: int = 64 * MiB
    """Memory for answers of deterministic queries (ADR 0019); 0 turns the cache off."""


class McpSettings(_Section):
    enabled: bool = True
    """Serve the MCP endpoint at ``/mcp`` (agents' read-only access; ADR 0018)."""
    max_rows: int = 500
    """Most rows one ``query`` tool call returns; a call may ask for fewer."""
    max_bytes: int = 256 * 1024
    """Most bytes of rows (as JSON) one ``query`` tool call returns."""

    def __post_init__(self) -> None:
        for name in ("max_rows", "max_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level written to stderr."""
    format: Literal["json", "text"] = "json"
    """``json``: one object per line; ``text``: for humans."""


class Settings(_Section):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    secrets: SecretsSettings = msgspec.field(default_factory=SecretsSettings)
    catalog: CatalogSettings = msgspec.field(default_factory=CatalogSettings)
    ingest: IngestSettings = msgspec.field(default_factory=IngestSettings)
    query: QuerySettings = msgspec.field(default_factory=QuerySettings)
    logging: LoggingSettings = msgspec.field(default_factory=LoggingSettings)
    mcp: McpSettings = msgspec.field(default_factory=McpSettings)


# environment variable -> dotted key it overrides
ENV_OVERRIDES: dict[str, str] = {
    "LAKEHOUSE_HOST": "server.host",
    "LAKEHOUSE_PORT": "server.port",
    "LAKEHOUSE_AUTH_TOKEN": "server.auth_token",
    "LAKEHOUSE_STORAGE_BACKEND": "storage.backend",
    "LAKEHOUSE_DATA_DIR": "storage.data_dir",
    "LAKEHOUSE_S3_ENDPOINT_URL": "storage.s3.endpoint_url",
    "LAKEHOUSE_S3_BUCKET": "storage.s3.bucket",
    "LAKEHOUSE_SECRETS_FILE": "secrets.file",
    "LAKEHOUSE_CATALOG_URI": "catalog.uri",
    "LAKEHOUSE_LOG_LEVEL": "logging.level",
    "LAKEHOUSE_RESULT_CACHE_BYTES": "query.result_cache_bytes",
    "LAKEHOUSE_MAX_DECOMPRESSED_BYTES": "ingest.max_decompressed_bytes",
}

DEFAULT_CONFIG_NAME = "lakehouse.toml"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and file."""


def resolve_config_path(explicit: str | None, env: Mapping[str, str]) -> tuple[Path | None, bool]:
    """Return (path, given): the file to read, and whether the user named it."""
    named = explicit or env.get("LAKEHOUSE_CONFIG")
    if named:
        return Path(named), True
    default = Path(DEFAULT_CONFIG_NAME)
    return (default if default.is_file() else None), False


def load_settings(
    explicit_path: str | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Read the config file (if any), apply environment overrides, validate."""
    env = os.environ if env is None else env
    path, given = resolve_config_path(explicit_path, env)
    raw: dict[str, object] = {}
    if path is not None:
        if path.is_file():
            try:
                raw = msgspec.toml.decode(path.read_bytes())
            except msgspec.DecodeError as exc:
                raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        elif given:
            log.warning(
                "config file not found, using defaults",
                extra={
                    "path": str(path),
                    "hint": "check --config / LAKEHOUSE_CONFIG, or copy lakehouse.toml "
                    "from the repository root",
                },
            )
    for var, dotted in ENV_OVERRIDES.items():
        if var in env:
            _set_dotted(raw, dotted, env[var])
    try:
        # strict=False lets "3110" from the environment become an int.
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        where = f" in {path}" if path is not None else ""
        raise ConfigError(f"invalid configuration{where}: {exc}") from exc


def _set_dotted(raw: dict[str, object], dotted: str, value: str) -> None:
    *sections, key = dotted.split(".")
    node = raw
    for section in sections:
        child = node.setdefault(section, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key {section!r} must be a table")
        node = child
    node[key] = value
