"""Where credentials come from: a SecretsProvider, never the main config file.

``S3Credentials`` hides its secret from ``repr``/``str`` so it cannot leak
into a log line or an error message by accident.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import msgspec

log = logging.getLogger(__name__)


class S3Credentials(msgspec.Struct, frozen=True, repr_omit_defaults=True):
    access_key_id: str
    secret_access_key: str
    session_token: str = ""

    def __repr__(self) -> str:
        return f"S3Credentials(access_key_id={self.access_key_id!r}, secret_access_key='***')"

    __str__ = __repr__


class SecretsProvider(Protocol):
    def s3_credentials(self) -> S3Credentials | None:
        """Credentials for the S3 backend, or None to use the AWS default chain."""

    def catalog_password(self) -> str | None:
        """The password of the catalog database (PostgreSQL), or None."""


class _CatalogSecrets(msgspec.Struct, forbid_unknown_fields=True):
    password: str


class _SecretsFile(msgspec.Struct, forbid_unknown_fields=True):
    s3: S3Credentials | None = None
    catalog: _CatalogSecrets | None = None


class FileSecretsProvider:
    """Reads ``[s3] access_key_id / secret_access_key / session_token`` and
    ``[catalog] password`` from a TOML file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileSecretsProvider(path={str(self.path)!r})"

    def s3_credentials(self) -> S3Credentials | None:
        return self._read().s3

    def catalog_password(self) -> str | None:
        catalog = self._read().catalog
        return catalog.password if catalog is not None else None

    def _read(self) -> _SecretsFile:
        if not self.path.is_file():
            return _SecretsFile()
        try:
            return msgspec.toml.decode(self.path.read_bytes(), type=_SecretsFile)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            # The message names the key, never the value.
            raise SecretsError(f"secrets file {self.path} is invalid: {exc}") from None


class EnvSecretsProvider:
    """The standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN) and LAKEHOUSE_CATALOG_PASSWORD."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if env is None else env

    def __repr__(self) -> str:
        return "EnvSecretsProvider()"

    def s3_credentials(self) -> S3Credentials | None:
        key_id = self._env.get("AWS_ACCESS_KEY_ID")
        secret = self._env.get("AWS_SECRET_ACCESS_KEY")
        if not key_id or not secret:
            return None
        return S3Credentials(key_id, secret, self._env.get("AWS_SESSION_TOKEN", ""))

    def catalog_password(self) -> str | None:
        return self._env.get("LAKEHOUSE_CATALOG_PASSWORD") or None


class ChainSecretsProvider:
    """The first provider that has credentials wins (file first, then environment)."""

    def __init__(self, *providers: SecretsProvider) -> None:
        self.providers = providers

    def __repr__(self) -> str:
        return f"ChainSecretsProvider({', '.join(map(repr, self.providers))})"

    def s3_credentials(self) -> S3Credentials | None:
        return next(
            (found for p in self.providers if (found := p.s3_credentials()) is not None), None
        )

    def catalog_password(self) -> str | None:
        return next(
            (found for p in self.providers if (found := p.catalog_password()) is not None), None
        )


class SecretsError(Exception):
    """The secrets file exists but cannot be used (start-up error)."""


def default_secrets_provider(secrets_file: str) -> SecretsProvider:
    return ChainSecretsProvider(FileSecretsProvider(secrets_file), EnvSecretsProvider())
