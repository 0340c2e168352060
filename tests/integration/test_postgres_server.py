"""The throwaway PostgreSQL server the suite starts (tests/support/postgres.py).

psycopg and SQLAlchemy are imported inside the tests that use them, so a
missing driver fails those tests, not the collection of the whole suite.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import postgres as pg_support
from tests.support.postgres import PostgresError, PostgresNotFound, PostgresServer


def test_listens_on_its_socket_only(postgres: PostgresServer) -> None:
    assert postgres.psql("SHOW listen_addresses") == ""
    assert postgres.psql("SHOW fsync") == "off"
    assert postgres.psql("SHOW password_encryption") == "scram-sha-256"
    assert (postgres.socket_dir / f".s.PGSQL.{postgres.port}").is_socket()
    assert postgres.url() == f"postgresql+psycopg://lake@/lake?host={postgres.socket_dir}"
    assert postgres.password not in postgres.url()
    assert postgres.password not in repr(postgres)


def test_psycopg_connects_with_the_password_over_the_socket(postgres: PostgresServer) -> None:
    import psycopg

    with psycopg.connect(**postgres.connect_kwargs()) as conn:
        row = conn.execute("SELECT current_user, current_database(), inet_server_addr()").fetchone()
    assert row == ("lake", "lake", None)  # no server address: a unix socket


def test_sqlalchemy_takes_the_url_and_the_password_apart(postgres: PostgresServer) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres.url(), connect_args={"password": postgres.password})
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE IF NOT EXISTS t_sqlalchemy (x int)"))
            conn.execute(sa.text("INSERT INTO t_sqlalchemy VALUES (1), (2)"))
            assert conn.execute(sa.text("SELECT sum(x) FROM t_sqlalchemy")).scalar() == 3
    finally:
        engine.dispose()
    assert postgres.psql("SELECT tableowner FROM pg_tables WHERE tablename = 't_sqlalchemy'") == (
        "lake"
    )


def test_a_wrong_password_is_refused_and_not_echoed(postgres: PostgresServer) -> None:
    import psycopg

    wrong = "not-the-password-" + postgres.password[::-1]
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(**{**postgres.connect_kwargs(), "password": wrong})
    message = str(refused.value)
    assert 'password authentication failed for user "lake"' in message
    assert wrong not in message
    assert postgres.password not in message


def test_no_password_is_refused(postgres: PostgresServer) -> None:
    import psycopg

    kwargs = {**postgres.connect_kwargs(), "password": ""}
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**kwargs)


def test_create_database_gives_a_fresh_database(postgres: PostgresServer) -> None:
    import psycopg

    name = postgres.create_database("lake_fresh")
    assert postgres.url(database=name).endswith(f"/{name}?host={postgres.socket_dir}")
    with psycopg.connect(**postgres.connect_kwargs(database=name)) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone() == (0,)


def test_psql_reports_errors(postgres: PostgresServer) -> None:
    with pytest.raises(PostgresError, match="no_such_table"):
        postgres.psql("SELECT * FROM no_such_table")


def test_stop_removes_the_directory() -> None:
    with PostgresServer() as server:
        base = server.base
        assert base is not None
        assert (base / "data" / "postmaster.pid").exists()
        assert server.psql("SELECT 1") == "1"
    assert not base.exists()
    server.stop()  # a second stop is a no-op


def test_two_servers_run_at_once(postgres: PostgresServer) -> None:
    import psycopg

    with PostgresServer() as other:
        assert other.socket_dir != postgres.socket_dir
        assert other.password != postgres.password
        other.psql("CREATE TABLE only_here (x int)")
        assert postgres.psql("SELECT to_regclass('only_here') IS NULL") == "t"
        with psycopg.connect(**other.connect_kwargs()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(psycopg.OperationalError):  # each has its own password
            psycopg.connect(**{**other.connect_kwargs(), "password": postgres.password})
    assert postgres.psql("SELECT 1") == "1"


def test_stop_kills_a_server_that_will_not_shut_down(monkeypatch: pytest.MonkeyPatch) -> None:
    server = PostgresServer().start()
    base = server.base
    pid = server._postmaster_pid()
    assert base is not None
    assert pid is not None

    def refuse(action: str, *args: object) -> None:
        raise PostgresError(f"pg_ctl {action} refused (simulated)")

    monkeypatch.setattr(server, "_pg_ctl", refuse)
    server.stop()
    assert not Path(f"/proc/{pid}").exists() or pg_support._alive(pid) is False
    assert not base.exists()


def test_missing_binaries_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_support, "candidate_bindirs", lambda: [Path("/nonexistent/pg/bin")])
    with pytest.raises(PostgresNotFound, match=r"apt-get install postgresql") as missing:
        PostgresServer().start()
    assert "initdb" in str(missing.value)
    assert "/nonexistent/pg/bin" in str(missing.value)


def test_runs_as_the_postgres_user_when_root(postgres: PostgresServer) -> None:
    owner = postgres.psql("SELECT pg_catalog.current_setting('data_directory')")
    uid = Path(owner).stat().st_uid
    if os.geteuid() == 0:
        import pwd

        assert uid == pwd.getpwnam("postgres").pw_uid
    else:
        assert uid == os.geteuid()
