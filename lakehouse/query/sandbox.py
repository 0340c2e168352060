"""Which SQL the read-only surface runs, decided by DuckDB's own parser.

Two independent layers (ADR 0008):

1. ``check_statement`` (here): exactly one statement, and DuckDB's parser
   must call it a read (``SELECT``; DuckDB parses WITH, VALUES, FROM-first,
   DESCRIBE, SHOW, SUMMARIZE, UNPIVOT as SELECT) or an ``EXPLAIN`` of one.
   DuckDB rewrites ``PRAGMA x`` into ``SELECT * FROM pragma_x()`` before we
   see the type, so the statement's first keyword (from DuckDB's tokenizer)
   must also be a read keyword. Anything else is refused before it runs.
2. The database configuration (``engine.open_database``): external access
   off, ``allowed_directories`` = the data location only, configuration
   locked. That is what stops a SELECT such as ``read_csv('/etc/passwd')``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import duckdb

from lakehouse.query.errors import ForbiddenStatement, InvalidQuery

# First keywords of the statements we run (upper case, as the tokenizer's text).
READ_KEYWORDS = frozenset(
    {"SELECT", "WITH", "VALUES", "FROM", "TABLE", "DESCRIBE", "DESC", "SHOW", "SUMMARIZE",
     "UNPIVOT", "EXPLAIN"}
)  # fmt: skip

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
        kinds = ", ".join(_type_name(s) for s in statements)
        raise ForbiddenStatement(
            f"one statement per request; got {len(statements)} ({kinds})",
            details={"statement_types": [_type_name(s) for s in statements]},
        )
    [statement] = statements
    _check_read(con, sql, statement, depth=0)
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
