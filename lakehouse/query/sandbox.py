"""Which SQL the read-only surface runs, decided by DuckDB's own parser.

Two independent layers (ADR 0008):

1. ``check_statement`` (here): exactly one statement, and DuckDB's parser
   must call it a read (``SELECT``; DuckDB parses WITH, VALUES, FROM-first,
   DESCRIBE, SHOW, SUMMARIZE, UNPIVOT as SELECT) or an ``EXPLAIN`` of one.
   DuckDB rewrites ``PRAGMA x`` into ``SELECT * FROM pragma_x()`` before we
   see the type, so the statement's first keyword (from DuckDB's tokenizer)
   must also be a read keyword. Anything else is refused before it runs.
   Then ``check_functions`` walks DuckDB's parse tree (``json_serialize_sql``):
   table functions come from an allow-list, a few scalar functions are
   denied, file paths must be literals with no ``..`` segment.
2. The database configuration (``engine.Database``): external access
   off, ``allowed_directories`` = the data location only, configuration
   locked. That is what stops a SELECT such as ``read_csv('/etc/passwd')``.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import duckdb

from lakehouse.query.errors import ForbiddenStatement, InvalidQuery, SandboxViolation

# First keywords of the statements we run (upper case, as the tokenizer's text).
READ_KEYWORDS = frozenset(
    {"SELECT", "WITH", "VALUES", "FROM", "TABLE", "DESCRIBE", "DESC", "SHOW", "SUMMARIZE",
     "UNPIVOT", "PIVOT", "EXPLAIN"}
)  # fmt: skip

# Table functions a query may call (ADR 0008): an allow-list, because DuckDB's
# table functions include ones that change the database's state or write files
# (enable_logging, checkpoint, truncate_duckdb_logs ...), run SQL given as a string
# (query, query_table, json_execute_serialized_sql) or show what other clients run
# or where the server keeps things (duckdb_logs, duckdb_settings, duckdb_views,
# duckdb_temporary_files, duckdb_secrets, which_secret ...). A new DuckDB version's
# new functions are refused until someone looks at them.
SAFE_TABLE_FUNCTIONS = frozenset(
    {"range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree",
     "summary", "histogram", "histogram_values", "icu_calendar_names", "pg_timezone_names",
     "test_all_types", "duckdb_columns", "duckdb_constraints", "duckdb_databases",
     "duckdb_dependencies", "duckdb_functions", "duckdb_indexes", "duckdb_keywords",
     "duckdb_schemas", "duckdb_sequences", "duckdb_tables", "duckdb_types",
     "duckdb_extensions", "pragma_version", "pragma_table_info", "pragma_show",
     "pragma_collations", "pragma_platform", "pragma_database_size"}
)  # fmt: skip
# Table functions that read files: allowed, but their path argument must be a string
# literal (or a list of them) that we can check; DuckDB's allowed_directories does the rest.
PATH_TABLE_FUNCTIONS = frozenset(
    {"read_parquet", "parquet_scan", "read_csv", "read_csv_auto", "read_json", "read_json_auto",
     "read_json_objects", "read_json_objects_auto", "read_ndjson", "read_ndjson_auto",
     "read_ndjson_objects", "read_text", "read_blob", "glob", "parquet_metadata",
     "parquet_schema", "parquet_file_metadata", "parquet_kv_metadata", "parquet_full_metadata",
     "parquet_bloom_probe", "sniff_csv"}
)  # fmt: skip
# Scalar functions that write (write_log), change a pooled cursor's state for the next
# client (setseed) or show server paths (current_setting: temp_directory,
# allowed_directories). Scalars are a deny-list: there are hundreds of harmless ones.
DENIED_SCALAR_FUNCTIONS = frozenset(
    {"write_log", "setseed", "current_setting", "json_execute_serialized_sql"}
)
_DOT_DOT = re.compile(r"(^|[/\\])\.\.($|[/\\])")

ALLOWED_CACHE_SIZE = 256
"""SQL texts already found to be one read statement (LRU). The check is purely
syntactic, so the same text always gets the same verdict: a dashboard sending
the same queries skips the parse and the tokenizer. Refusals are not cached."""
ALLOWED_CACHE_MAX_CHARS = 4096
"""Longer texts are checked every time (bounds the cache's memory)."""

_allowed: OrderedDict[str, None] = OrderedDict()
_allowed_lock = threading.Lock()  # check_statement runs in several worker threads

_KEYWORD = duckdb.token_type.keyword
_COMMENT = duckdb.token_type.comment
_OPERATOR = duckdb.token_type.operator


def check_statement(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """Return the one statement in ``sql`` if it is a read; raise otherwise.

    Raises ``InvalidQuery`` (400) when the SQL does not parse or is empty,
    ``ForbiddenStatement`` (403, naming the statement type) when it is not a
    read or holds more than one statement.
    """
    with _allowed_lock:
        if sql in _allowed:
            _allowed.move_to_end(sql)
            return sql
    statements = _parse(con, sql)
    if not statements:
        raise InvalidQuery("the request holds no SQL statement")
    if len(statements) > 1:
        if _first_keyword(sql)[0] == "PIVOT":
            raise ForbiddenStatement(
                "PIVOT without an IN list is not allowed: DuckDB first creates a type from "
                "the pivoted values (a write). Name the values: PIVOT t ON col IN ('a', 'b') "
                "USING sum(x)",
                details={"statement_type": "PIVOT"},
            )
        kinds = ", ".join(_type_name(s) for s in statements)
        raise ForbiddenStatement(
            f"one statement per request; got {len(statements)} ({kinds})",
            details={"statement_types": [_type_name(s) for s in statements]},
        )
    [statement] = statements
    _check_read(con, sql, statement, depth=0)
    check_functions(con, _inner_select(sql))
    if len(sql) <= ALLOWED_CACHE_MAX_CHARS:
        with _allowed_lock:
            _allowed[sql] = None
            if len(_allowed) > ALLOWED_CACHE_SIZE:
                _allowed.popitem(last=False)
    return sql


def _parse(con: duckdb.DuckDBPyConnection, sql: str) -> list[duckdb.Statement]:
    try:
        return list(con.extract_statements(sql))
    except duckdb.Error as exc:
        raise InvalidQuery(str(exc)) from exc


def _type_name(statement: duckdb.Statement) -> str:
    return str(statement.type.name).upper()


def _check_read(
    con: duckdb.DuckDBPyConnection, text: str, statement: duckdb.Statement, *, depth: int
) -> None:
    kind = _type_name(statement)
    first, rest = _first_keyword(text)
    if first not in READ_KEYWORDS:
        # PRAGMA is parsed as SELECT * FROM pragma_...(): name what the user wrote.
        shown = first if kind == "SELECT" and first else kind
        raise _forbidden(shown or "UNKNOWN")
    if kind == "SELECT" and first != "EXPLAIN":
        return
    if kind == "EXPLAIN" and first == "EXPLAIN" and depth == 0:
        # EXPLAIN ANALYZE runs its statement: the inner statement must be a read too.
        inner_text = _strip_keyword(rest, "ANALYZE")
        try:
            inner = list(con.extract_statements(inner_text))
        except duckdb.Error:
            inner = []
        if len(inner) != 1:
            raise _forbidden("EXPLAIN", "only EXPLAIN [ANALYZE] <read statement> is allowed")
        _check_read(con, inner_text, inner[0], depth=1)
        if _type_name(inner[0]) != "SELECT":
            raise _forbidden(_type_name(inner[0]))
        return
    raise _forbidden(kind)


def _forbidden(kind: str, hint: str = "") -> ForbiddenStatement:
    message = (
        f"{kind} statements are not allowed: the SQL API runs read-only statements "
        "(SELECT, WITH, VALUES, DESCRIBE, SHOW, EXPLAIN, SUMMARIZE)"
    )
    return ForbiddenStatement(
        f"{message}; {hint}" if hint else message, details={"statement_type": kind}
    )


def _first_keyword(text: str) -> tuple[str, str]:
    """The first keyword of ``text`` (skipping comments and opening parentheses) and
    the text after it; ``("", text)`` when the statement does not start with a keyword."""
    tokens = duckdb.tokenize(text)
    for index, (position, kind) in enumerate(tokens):
        if kind == _COMMENT:
            continue
        end = tokens[index + 1][0] if index + 1 < len(tokens) else len(text)
        word = text[position:end].strip()
        if kind == _OPERATOR and word.startswith("("):
            continue
        if kind != _KEYWORD:
            return "", text
        return word.upper(), text[end:]
    return "", text


def _strip_keyword(text: str, keyword: str) -> str:
    first, rest = _first_keyword(text)
    return rest if first == keyword else text


def _inner_select(sql: str) -> str:
    """The statement a (checked) ``EXPLAIN [ANALYZE]`` explains, else ``sql`` itself."""
    first, rest = _first_keyword(sql)
    if first == "EXPLAIN":
        return _strip_keyword(rest, "ANALYZE")
    return sql


def split_explain(sql: str) -> tuple[str, str]:
    """``(prefix, statement)``: the ``EXPLAIN [ANALYZE]`` prefix of a checked statement
    (``""`` when there is none) and the read statement it explains (or ``sql`` itself)."""
    inner = _inner_select(sql)
    return sql[: len(sql) - len(inner)], inner


def check_functions(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse calls to table functions off the allow-list, denied scalar functions, and
    file paths that are not literals or hold a ``..`` segment (ADR 0008).

    ``sql`` is one statement already known to be a read; DuckDB's parser gives the tree.
    """
    try:
        row = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    except duckdb.Error as exc:
        raise InvalidQuery(str(exc)) from exc
    tree = json.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        message = str(tree.get("error_message", "the statement could not be analysed"))
        raise ForbiddenStatement(
            f"the statement could not be checked: {message}", details={"statement_type": "SELECT"}
        )
    for node in json_nodes(tree):
        if node.get("type") == "TABLE_FUNCTION":
            _check_table_function(node.get("function") or {})
        elif node.get("type") == "BASE_TABLE":
            _check_path(str(node.get("table_name", "")))  # FROM 'file.parquet'
        elif node.get("class") in ("FUNCTION", "WINDOW", "AGGREGATE"):
            name = str(node.get("function_name", "")).lower()
            if name in DENIED_SCALAR_FUNCTIONS:
                raise SandboxViolation(
                    f"the function {name}() is not allowed in the SQL API",
                    details={"function": name},
                )
        elif node.get("class") == "CONSTANT":
            value = (node.get("value") or {}).get("value")
            if isinstance(value, str):
                _check_path(value)


def _check_table_function(function: dict[str, Any]) -> None:
    name = str(function.get("function_name", "")).lower()
    if name in PATH_TABLE_FUNCTIONS:
        children = function.get("children") or []
        if children and not _named_parameter(children[0]) and not _literal(children[0]):
            raise SandboxViolation(
                f"the path argument of {name}() must be a string literal or a list of them",
                details={"function": name},
            )
        return
    if name not in SAFE_TABLE_FUNCTIONS:
        raise SandboxViolation(
            f"the table function {name}() is not allowed in the SQL API",
            details={"function": name},
        )


def _named_parameter(node: dict[str, Any]) -> bool:
    left = node.get("left") or {}
    return node.get("class") == "COMPARISON" and left.get("class") == "COLUMN_REF"


def _literal(node: dict[str, Any]) -> bool:
    if node.get("class") == "CONSTANT":
        return True
    if node.get("class") == "FUNCTION" and node.get("function_name") == "list_value":
        return all(_literal(child) for child in node.get("children") or [])
    return False


def _check_path(text: str) -> None:
    """A ``..`` segment (also percent-encoded) could climb out of the allowed location:
    DuckDB compares allowed_directories with the text, S3 URLs are collapsed later."""
    decoded = text
    for _ in range(3):  # %252e%252e -> %2e%2e -> ..
        decoded = unquote(decoded)
    if _DOT_DOT.search(text) or _DOT_DOT.search(decoded):
        raise SandboxViolation(
            "paths may not contain a '..' segment", details={"path_segment": ".."}
        )


def json_nodes(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in the tree, depth first (no recursion limit on deep SQL)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
