"""Configuration: defaults, file and environment, errors that name the key, the sample file."""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

import msgspec
import pytest

from lakehouse.config import ENV_OVERRIDES, ConfigError, Settings, load_settings
from lakehouse.storage.secrets import ChainSecretsProvider, EnvSecretsProvider, FileSecretsProvider

REPO = Path(__file__).resolve().parents[2]


def test_defaults_without_any_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 3110
    assert settings.storage.backend == "local"
    assert settings.storage.data_dir == "./data"


def test_missing_config_path_warns_and_uses_defaults(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "nope.toml"
    with caplog.at_level(logging.WARNING, logger="lakehouse.config"):
        settings = load_settings(str(missing), env={})
    assert settings == Settings()
    [record] = [r for r in caplog.records if r.name == "lakehouse.config"]
    assert record.path == str(missing)  # type: ignore[attr-defined]
    assert "LAKEHOUSE_CONFIG" in record.hint  # type: ignore[attr-defined]


def test_env_config_path_and_overrides(tmp_path: Path) -> None:
    config = tmp_path / "custom.toml"
    config.write_text('[server]\nport = 4000\n[storage]\ndata_dir = "/srv/lake"\n')
    settings = load_settings(
        env={
            "LAKEHOUSE_CONFIG": str(config),
            "LAKEHOUSE_HOST": "127.0.0.2",
            "LAKEHOUSE_STORAGE_BACKEND": "s3",
        }
    )
    assert settings.server.port == 4000  # from the file
    assert settings.storage.data_dir == "/srv/lake"
    assert settings.server.host == "127.0.0.2"  # from the environment
    assert settings.storage.backend == "s3"
    overridden = load_settings(
        str(config), env={"LAKEHOUSE_PORT": "4100", "LAKEHOUSE_DATA_DIR": "/x"}
    )
    assert overridden.server.port == 4100
    assert overridden.storage.data_dir == "/x"


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[server]\nprot = 1\n", "prot"),
        ('[server]\nport = "abc"\n', "$.server.port"),
        ('[storage]\nbackend = "ftp"\n', "$.storage.backend"),
        ("[nonsense]\nx = 1\n", "nonsense"),
        ("[storage.s3]\nmax_attempts = 0\n", "max_attempts must be 1..10"),
        ("[storage.s3]\nmax_attempts = 11\n", "max_attempts must be 1..10"),
        ('[storage.s3]\nretry_mode = "legacy"\n', "$.storage.s3.retry_mode"),
        ("[storage.s3]\nread_timeout_seconds = 0\n", "read_timeout_seconds must be positive"),
        ("[storage.s3]\nconnect_timeout_seconds = -1\n", "connect_timeout_seconds must be"),
        ("[ingest]\nmax_field_bytes = 0\n", "max_field_bytes must be at least 1"),
        ("[ingest]\nmax_decompressed_bytes = -1\n", "max_decompressed_bytes must be at least 1"),
        ("[ingest]\nmax_upload_bytes = 0\n", "max_upload_bytes must be at least 1"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, toml: str, named: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_settings(str(config), env={})


def test_every_setting_is_documented_in_sample_config() -> None:
    """lakehouse.toml must mention every key with its default value."""
    sample = (REPO / "lakehouse.toml").read_text()
    documented = msgspec.toml.decode(sample.encode())
    defaults = msgspec.to_builtins(Settings())
    assert documented == defaults
    # ...and each key has a comment line right above it.
    lines = sample.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-z_]+ = ", line):
            assert lines[i - 1].startswith("#"), f"undocumented key: {line}"


# A value for each environment override, unlike the key's default and valid for it.
OVERRIDE_VALUES: dict[str, tuple[str, object]] = {
    "LAKEHOUSE_HOST": ("127.0.0.9", "127.0.0.9"),
    "LAKEHOUSE_PORT": ("4321", 4321),
    "LAKEHOUSE_AUTH_TOKEN": ("t0ken-from-env", "t0ken-from-env"),
    "LAKEHOUSE_STORAGE_BACKEND": ("s3", "s3"),
    "LAKEHOUSE_DATA_DIR": ("/srv/lake", "/srv/lake"),
    "LAKEHOUSE_S3_ENDPOINT_URL": ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
    "LAKEHOUSE_S3_BUCKET": ("lake-from-env", "lake-from-env"),
    "LAKEHOUSE_SECRETS_FILE": ("/run/secrets/lake.toml", "/run/secrets/lake.toml"),
    "LAKEHOUSE_CATALOG_URI": ("postgresql://db.internal/lake", "postgresql://db.internal/lake"),
    "LAKEHOUSE_LOG_LEVEL": ("warning", "warning"),
    "LAKEHOUSE_RESULT_CACHE_BYTES": ("0", 0),
    "LAKEHOUSE_MAX_DECOMPRESSED_BYTES": ("1048576", 1048576),
}
# Variables read elsewhere, each with a test of its own.
OTHER_VARIABLES = {
    "LAKEHOUSE_CONFIG",  # tests/integration/test_startup_and_config.py::test_config_lookup_order
    "LAKEHOUSE_CATALOG_PASSWORD",  # test_catalog_password_from_the_environment below
    "LAKEHOUSE_TEST_FATAL_SQL",  # tests/integration/test_engine_repair.py
    "LAKEHOUSE_TESTING",  # its guard, same test
    "LAKEHOUSE_URL",  # the CLI client's server: tests/e2e/test_cli.py
}


def dotted(settings: Settings, key: str) -> object:
    return functools.reduce(getattr, key.split("."), settings)


def test_every_environment_override_beats_the_file(tmp_path: Path) -> None:
    assert set(OVERRIDE_VALUES) == set(ENV_OVERRIDES), "a new override needs a value here"
    config = tmp_path / "lakehouse.toml"
    config.write_bytes(msgspec.toml.encode(Settings()))  # every key, at its default
    defaults = Settings()
    for var, (raw, expected) in OVERRIDE_VALUES.items():
        key = ENV_OVERRIDES[var]
        assert dotted(defaults, key) != expected, var
        settings = load_settings(str(config), env={var: raw})
        assert dotted(settings, key) == expected, var
        # Only that key changed.
        for other in ENV_OVERRIDES.values():
            if other != key:
                assert dotted(settings, other) == dotted(defaults, other), (var, other)


def test_every_lakehouse_variable_in_the_code_is_known() -> None:
    named = set()
    for source in (REPO / "lakehouse").rglob("*.py"):
        named |= set(re.findall(r"\bLAKEHOUSE_[A-Z0-9_]+\b", source.read_text()))
    assert named == set(ENV_OVERRIDES) | OTHER_VARIABLES
    readme = (REPO / "README.md").read_text()
    undocumented = {var for var in named if var not in readme}
    assert undocumented == set()


def test_catalog_password_from_the_environment(tmp_path: Path) -> None:
    in_file = tmp_path / "secrets.toml"
    in_file.write_text('[catalog]\npassword = "from-file"\n')
    env = {"LAKEHOUSE_CATALOG_PASSWORD": "from-env"}
    only_env = ChainSecretsProvider(FileSecretsProvider(str(tmp_path / "none.toml")),
                                    EnvSecretsProvider(env))  # fmt: skip
    assert only_env.catalog_password() == "from-env"
    both = ChainSecretsProvider(FileSecretsProvider(str(in_file)), EnvSecretsProvider(env))
    assert both.catalog_password() == "from-file"  # the file first (ADR 0006)
