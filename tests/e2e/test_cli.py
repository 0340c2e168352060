"""The command-line client: the real ``lakehouse`` console script, run as a subprocess
against a ``lakehouse serve`` (forked, tests/support/zygote.py) that requires a token
(one server for the module).

Every run goes through ``lakehouse()``, which also checks that the token appears in
neither stdout nor stderr.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import pty
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.http import HTTP
from tests.support.servers import VENV_BIN, LakehouseServer, free_port
from tests.support.settings import make_settings

TOKEN = "cli-test-token-4f1d9a-never-printed"
CSV = (
    "id,zip,state,amount\n"
    "1,01234,IL,9.5\n"
    "2,60601,IL,12\n"
    "3,10001,NY,7.25\n"
)  # fmt: skip
ROWS = [
    {"id": 1, "zip": "01234", "amount": 9.5},
    {"id": 2, "zip": "60601", "amount": 12.0},
    {"id": 3, "zip": "10001", "amount": 7.25},
]
SELECT = "SELECT id, zip, amount FROM people ORDER BY id"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LakehouseServer]:
    tmp_path = tmp_path_factory.mktemp("cli")
    settings = make_settings("local", tmp_path, None)
    settings.server.auth_token = TOKEN
    proc = LakehouseServer(settings, tmp_path).start()
    yield proc
    proc.stop()


def client_env(server: LakehouseServer, token: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env.update({"LAKEHOUSE_URL": server.url, "COLUMNS": "120"})
    if token:
        env["LAKEHOUSE_AUTH_TOKEN"] = TOKEN
    return env


def lakehouse(
    *args: str | Path, env: dict[str, str], stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        [VENV_BIN / "lakehouse", *map(str, args)],
        input=stdin.encode() if stdin is not None else None,
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )
    assert TOKEN.encode() not in result.stdout + result.stderr
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result


@pytest.fixture(scope="module")
def ingested(
    server: LakehouseServer, tmp_path_factory: pytest.TempPathFactory
) -> subprocess.CompletedProcess[bytes]:
    """``lakehouse ingest people.csv`` run once; the dataset the other tests query."""
    source = tmp_path_factory.mktemp("cli-data") / "people.csv"
    source.write_text(CSV)
    return lakehouse("ingest", source, env=client_env(server))


def test_ingest_uploads_and_prints_the_schema_and_warnings(
    server: LakehouseServer, ingested: subprocess.CompletedProcess[bytes]
) -> None:
    assert ingested.returncode == 0, ingested.stderr.decode()
    out = ingested.stdout.decode()
    assert "people: version 1, 3 rows ingested" in out
    for column, type_name in [("id", "BIGINT"), ("zip", "VARCHAR"), ("amount", "DOUBLE")]:
        assert re.search(rf"│ {column} +│ {type_name} +│", out), out
    assert "warning: zip is VARCHAR: numbers with leading zeros" in out
    # The progress bar's last state: every byte of the file sent.
    assert f"{len(CSV)}/{len(CSV)} bytes" in ingested.stderr.decode()
    history = HTTP.get(
        f"{server.url}/v1/datasets/people/history",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).json()
    assert history["versions"][0]["source_file"] == "people.csv"


def read_back(result_format: str, data: bytes) -> list[dict[str, object]]:
    if result_format == "csv":
        return [
            {"id": int(r["id"]), "zip": r["zip"], "amount": float(r["amount"])}
            for r in csv.DictReader(io.StringIO(data.decode()))
        ]
    if result_format == "json":
        return json.loads(data)  # type: ignore[no-any-return]
    if result_format == "ndjson":
        return [json.loads(line) for line in data.splitlines()]
    if result_format == "parquet":
        return pq.read_table(io.BytesIO(data)).to_pylist()  # type: ignore[no-any-return]
    return pa.ipc.open_stream(data).read_all().to_pylist()  # type: ignore[no-any-return]


@pytest.mark.parametrize("result_format", ["csv", "json", "ndjson", "parquet", "arrow"])
def test_sql_writes_each_format_to_a_file_and_to_a_pipe(
    server: LakehouseServer,
    ingested: subprocess.CompletedProcess[bytes],
    tmp_path: Path,
    result_format: str,
) -> None:
    env = client_env(server)
    target = tmp_path / f"result.{result_format}"
    to_file = lakehouse("sql", SELECT, "--format", result_format, "-o", target, env=env)
    assert to_file.returncode == 0, to_file.stderr.decode()
    assert to_file.stdout == b""
    assert read_back(result_format, target.read_bytes()) == ROWS
    piped = lakehouse("sql", SELECT, "--format", result_format, env=env)
    assert piped.returncode == 0, piped.stderr.decode()
    assert read_back(result_format, piped.stdout) == ROWS


def test_sql_piped_defaults_to_csv_and_reads_the_query_from_stdin(
    server: LakehouseServer, ingested: subprocess.CompletedProcess[bytes]
) -> None:
    result = lakehouse("sql", "-", stdin=SELECT + "\n", env=client_env(server))
    assert result.returncode == 0, result.stderr.decode()
    assert read_back("csv", result.stdout) == ROWS


def run_on_a_terminal(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run the client with a pseudo-terminal as stdout; (exit status, what it showed)."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [VENV_BIN / "lakehouse", *args], stdout=terminal, stderr=subprocess.PIPE, env=env
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:  # EIO: the client exited and closed the terminal
            break
        if not data:
            break
        shown += data
    os.close(controller)
    assert proc.stderr is not None
    proc.stderr.close()
    return proc.wait(timeout=30), ANSI.sub("", shown.decode())


def test_sql_on_a_terminal_shows_an_aligned_table(
    server: LakehouseServer, ingested: subprocess.CompletedProcess[bytes]
) -> None:
    status, shown = run_on_a_terminal(
        "sql", "SELECT state, count(*) AS n FROM people GROUP BY state ORDER BY state",
        env=client_env(server),
    )  # fmt: skip
    assert status == 0
    lines = [line for line in shown.splitlines() if line.strip()]
    table = [line for line in lines if line[:1] in "┏┃┡│└"]
    assert re.search(r"┃ state +┃ n +┃", table[1]), shown
    assert [re.findall(r"│ (\S+)", line) for line in table if line.startswith("│")] == [
        ["IL", "2"],
        ["NY", "1"],
    ]
    assert len({len(line) for line in table}) == 1, shown  # every row as wide: aligned
    assert "2 rows" in shown


def test_datasets_describe_and_history(
    server: LakehouseServer, ingested: subprocess.CompletedProcess[bytes]
) -> None:
    env = client_env(server)
    datasets = lakehouse("datasets", env=env)
    assert datasets.returncode == 0, datasets.stderr.decode()
    assert re.search(r"│ people +│ 3 +│ 4 +│", datasets.stdout.decode()), datasets.stdout.decode()

    describe = lakehouse("describe", "people", env=env)
    assert describe.returncode == 0, describe.stderr.decode()
    out = describe.stdout.decode()
    assert "people: version 1, 3 rows" in out
    # Type, how it was typed, then nulls %, distinct count, min and max.
    assert re.search(r"│ amount +│ DOUBLE +│ inferred +│ 0 +│ 3 +│ 7\.25 +│ 12\.0 +│", out), out
    leading_zeros = r"inferred: numbers with leading zeros[^│]+"
    assert re.search(rf"│ zip +│ VARCHAR +│ {leading_zeros}│ 0 +│ 3 +│ 01234 +│ 60601 +│", out)

    history = lakehouse("history", "people", env=env)
    assert history.returncode == 0, history.stderr.decode()
    assert re.search(
        r"│ 1 +│ [\d-]+ [\d:]+Z +│ \w+ +│ 3 +│ 0 +│ 3 +│ people\.csv +│", history.stdout.decode()
    )


def test_describe_profiles_doubles_at_the_edge_of_their_range(
    server: LakehouseServer, tmp_path: Path
) -> None:
    env = client_env(server)
    source = tmp_path / "extreme.csv"
    source.write_text("x\n1e308\n-1e308\n1.5\n")
    assert lakehouse("ingest", source, env=env).returncode == 0
    describe = lakehouse("describe", "extreme", env=env)
    assert describe.returncode == 0, describe.stderr.decode()
    assert re.search(
        r"│ x +│ DOUBLE +│ inferred +│ 0 +│ 3 +│ -1e\+308 +│ 1e\+308 +│", describe.stdout.decode()
    )


def test_a_failed_request_exits_1_with_the_servers_message(
    server: LakehouseServer, ingested: subprocess.CompletedProcess[bytes], tmp_path: Path
) -> None:
    env = client_env(server)
    target = tmp_path / "never.csv"
    bad_sql = lakehouse("sql", "SELEC 1", "-o", target, env=env)
    assert bad_sql.returncode == 1
    assert bad_sql.stderr.decode().startswith(
        'lakehouse: Parser Error: syntax error at or near "SELEC"'
    )
    assert not target.exists()  # no output file for a failed query
    missing = lakehouse("describe", "nobody", env=env)
    assert (missing.returncode, missing.stderr) == (1, b"lakehouse: no dataset named 'nobody'\n")


def test_a_server_that_is_down_is_one_line_and_exit_1(server: LakehouseServer) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    result = lakehouse("datasets", "--url", down, env=client_env(server))
    assert result.returncode == 1
    assert result.stderr.decode().count("\n") == 1
    assert result.stderr.decode().startswith(f"lakehouse: cannot connect to {down}")


@pytest.mark.parametrize(
    "args",
    [
        ["sql"],
        ["sql", "SELECT 1", "--format", "xml"],
        ["sql", "SELECT 1", "--format", "table", "-o", "out.txt"],
        ["sql", "-"],  # and stdin is empty
        ["ingest", "no-such-file.csv"],
        ["ingest", "people.csv", "--mode", "merge"],
        ["ingest"],  # neither a file nor --source
        ["ingest", "people.csv", "--source", "in/people.csv"],
        ["ingest", "people.csv", "--format", "xls"],
        ["frobnicate"],
        ["datasets", "--url", "127.0.0.1:3110"],
    ],
)
def test_bad_usage_exits_2(server: LakehouseServer, args: list[str], tmp_path: Path) -> None:
    result = lakehouse(*args, env=client_env(server), stdin="", cwd=tmp_path)
    assert result.returncode == 2, result.stderr.decode()
    assert result.stderr.decode().strip()
    assert not (tmp_path / "out.txt").exists()


@pytest.mark.parametrize("token", ["sek\x01ret", "sekret\r\nX-Evil: 1", "s\u00e9kret"])
def test_a_token_a_header_cannot_carry_is_a_usage_error_that_never_shows_it(
    server: LakehouseServer, token: str
) -> None:
    result = lakehouse("datasets", "--token", token, env=client_env(server, token=False))
    assert result.returncode == 2
    assert result.stderr == b"lakehouse: the token contains characters a header cannot carry\n"
    assert b"ret" not in result.stdout + result.stderr


def test_surrounding_whitespace_of_the_token_is_ignored(
    server: LakehouseServer, ingested: subprocess.CompletedProcess[bytes]
) -> None:
    env = client_env(server, token=False)
    result = lakehouse("datasets", "--token", f" {TOKEN}\r\n", env=env)
    assert result.returncode == 0, result.stderr.decode()
    assert b"people" in result.stdout


def test_an_output_file_that_cannot_be_written_is_one_line(
    server: LakehouseServer, tmp_path: Path
) -> None:
    result = lakehouse(
        "sql", "SELECT 1", "-o", tmp_path / "nowhere" / "x.csv", env=client_env(server)
    )
    assert result.returncode == 2
    assert result.stderr.decode().count("\n") == 1
    assert result.stderr.decode().startswith("lakehouse: cannot write ")


def test_a_stream_that_fails_midway_leaves_no_partial_file(
    server: LakehouseServer, tmp_path: Path
) -> None:
    target = tmp_path / "partial.csv"
    # Fails once the first rows have been sent: the answer is cut mid-stream.
    sql = (
        "SELECT CASE WHEN range < 2000000 THEN range ELSE error('boom') END AS n "
        "FROM range(3000000)"
    )
    result = lakehouse("sql", sql, "-o", target, env=client_env(server))
    assert result.returncode == 1, result.stderr.decode()
    assert not target.exists()


def test_ingest_names_the_dataset_after_the_file_as_the_console_does(
    server: LakehouseServer, tmp_path: Path
) -> None:
    source = tmp_path / "2024 my-data.csv"
    source.write_text("zip,n\n01234,1\n")
    result = lakehouse("ingest", source, "--types", "n:string", env=client_env(server))
    assert result.returncode == 0, result.stderr.decode()
    assert "_2024_my_data: version 1" in result.stdout.decode()
    assert re.search(r"│ n +│ VARCHAR +│ type given by --types +│", result.stdout.decode())


def test_ingest_sends_the_file_name_so_the_server_tells_format_and_compression(
    server: LakehouseServer, tmp_path: Path
) -> None:
    # A gzip-compressed TSV whose bytes sniff as comma-separated: only its name says it
    # is TSV, so the client must send the name.
    source = tmp_path / "rates.tsv.gz"
    source.write_bytes(gzip.compress(b"code,kind\tlabel\n1,2\t3\n4,5\t6\n"))
    result = lakehouse("ingest", source, env=client_env(server))
    assert result.returncode == 0, result.stderr.decode()
    assert "rates: version 1, 2 rows ingested" in result.stdout.decode()
    assert re.search(r"│ code,kind +│ VARCHAR +│", result.stdout.decode())
    assert re.search(r"│ label +│ BIGINT +│", result.stdout.decode())

    # --source: the same bytes put in storage, read there; --format says what the name does not.
    env = client_env(server)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    put = HTTP.put(
        f"{server.url}/storage/put/in/rates-export", content=source.read_bytes(), headers=headers
    )
    assert put.status_code == 200, put.text
    result = lakehouse(
        "ingest", "--source", "in/rates-export", "--format", "tsv", "--name", "rates2", env=env
    )
    assert result.returncode == 0, result.stderr.decode()
    assert "rates2: version 1, 2 rows ingested" in result.stdout.decode()
    forbidden = lakehouse("ingest", "--source", "_catalog/x", "--name", "rates3", env=env)
    assert forbidden.returncode == 1
    assert "_catalog/" in forbidden.stderr.decode()


def test_the_token_comes_from_the_option_or_the_environment(
    server: LakehouseServer, ingested: subprocess.CompletedProcess[bytes]
) -> None:
    without = lakehouse("datasets", env=client_env(server, token=False))
    assert without.returncode == 1
    assert without.stderr.decode().startswith("lakehouse: ")
    assert "token" in without.stderr.decode()
    with_option = lakehouse("datasets", "--token", TOKEN, env=client_env(server, token=False))
    assert with_option.returncode == 0, with_option.stderr.decode()
    with_env = lakehouse("datasets", env=client_env(server))
    assert with_env.returncode == 0, with_env.stderr.decode()
    assert with_option.stdout == with_env.stdout
    assert b"people" in with_env.stdout
