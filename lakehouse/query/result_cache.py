"""The result cache: encoded answers of deterministic queries, kept under a memory budget.

Two parts (ADR 0019):

- ``Determinism`` decides, once per SQL text, whether a statement's answer depends
  only on the data and its parameters, by walking DuckDB's parse tree
  (``json_serialize_sql``, the parser the sandbox uses) and by asking DuckDB which
  of its functions are not deterministic (``duckdb_functions().stability`` is
  ``VOLATILE`` or ``CONSISTENT_WITHIN_QUERY``: ``random()``, ``now()``,
  ``gen_random_uuid()``, ``nextval()`` ...; macros calling one count too). Not
  deterministic either: ``current_date`` / ``current_timestamp`` / ``localtime``
  written without parentheses (column references the binder turns into calls), a
  ``USING SAMPLE`` without a seed, a table function other than the pure generators
  (``read_parquet('...')`` reads files outside the catalog, ``duckdb_*`` reads the
  engine's state), a file named in ``FROM 'x.parquet'``, and anything the
  serializer does not take (EXPLAIN). Its answer carries a digest of the parse
  tree without source positions: texts differing only in whitespace, comments or
  keyword case share it.
- ``ResultCache`` keeps encoded response bodies keyed on that digest, the
  parameters, the output format and the catalog version the views reflect (which
  changes on every commit, here or on another replica within ``[catalog]
  refresh_seconds``), least recently used first out. It lives on the event loop
  (no lock); ``Determinism`` runs in worker threads.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import duckdb
import msgspec

from lakehouse.query.encoders import ResultFormat
from lakehouse.query.sandbox import json_nodes

MAX_ENTRY_BYTES = 2 * 1024 * 1024
"""No answer larger than this is cached (nor more than an eighth of the budget): larger
results stream, and a few of them would push every small answer out."""

ANALYSED_TEXTS = 1024
"""SQL texts whose verdict is remembered (LRU): a dashboard's queries parse once."""
ANALYSED_MAX_CHARS = 16_384
"""Longer texts are not cached at all (bounds the memory of the verdicts)."""

# Table functions whose rows depend only on their arguments.
PURE_TABLE_FUNCTIONS = frozenset(
    {"range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree"}
)
# SQL's special values that DuckDB parses as column references, then binds as calls.
CLOCK_KEYWORDS = frozenset(
    {"current_date", "current_time", "current_timestamp", "localtime", "localtimestamp"}
)
# error() is marked VOLATILE only so that it is not folded away at bind time: a query
# reaching it fails, and failures are never cached.
NOT_REALLY_VOLATILE = frozenset({"error"})


@dataclass(frozen=True, slots=True)
class Verdict:
    """What ``Determinism`` found about one SQL text."""

    deterministic: bool
    digest: bytes = b""
    """The parse tree's digest (set when ``deterministic``)."""


UNCACHEABLE = Verdict(False)


class Determinism:
    """Whether a statement's answer is a function of the data and its parameters.

    Blocking (DuckDB parses): call it in a worker thread. Thread-safe."""

    def __init__(self) -> None:
        # A private connection that only parses: no data, no files, no settings of the
        # query engine's; its function list is DuckDB's own.
        self._con = duckdb.connect(
            ":memory:", config={"threads": 1, "enable_external_access": False}
        )
        self._lock = threading.Lock()  # the connection: one parse at a time
        self._memo_lock = threading.Lock()  # the verdicts: held for a dict operation only
        self._verdicts: OrderedDict[str, Verdict] = OrderedDict()
        self.volatile = volatile_functions()
        """Lower-case names of the functions DuckDB does not call deterministic."""

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def known(self, sql: str) -> Verdict | None:
        """The remembered verdict on ``sql`` (non-blocking), if any."""
        with self._memo_lock:
            verdict = self._verdicts.get(sql)
            if verdict is not None:
                self._verdicts.move_to_end(sql)
            return verdict

    def verdict(self, sql: str) -> Verdict:
        """The verdict on ``sql``, parsing it the first time."""
        verdict = self.known(sql)
        if verdict is not None:
            return verdict
        if len(sql) > ANALYSED_MAX_CHARS:
            return UNCACHEABLE
        with self._lock:
            tree = self._parse(sql)
        verdict = self._judge(tree) if tree is not None else UNCACHEABLE
        if tree is not None:  # text that does not parse is the user's 400, not worth a slot
            with self._memo_lock:
                self._verdicts[sql] = verdict
                while len(self._verdicts) > ANALYSED_TEXTS:
                    self._verdicts.popitem(last=False)
        return verdict

    def _parse(self, sql: str) -> dict[str, Any] | None:
        try:
            row = self._con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
        except duckdb.Error:
            return None
        tree = json.loads(row[0]) if row else None
        if not isinstance(tree, dict) or tree.get("error"):
            return None  # EXPLAIN, PRAGMA, SHOW ... and SQL that does not parse
        return tree

    def _judge(self, tree: dict[str, Any]) -> Verdict:
        for node in json_nodes(tree):
            if not self._pure(node):
                return UNCACHEABLE
            node.pop("query_location", None)  # where a token stood changes no answer
        normalized = json.dumps(tree, sort_keys=True, separators=(",", ":"))
        return Verdict(True, hashlib.blake2b(normalized.encode(), digest_size=16).digest())

    def _pure(self, node: dict[str, Any]) -> bool:
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            name = str((node.get("function") or {}).get("function_name", "")).lower()
            return name in PURE_TABLE_FUNCTIONS
        if kind == "BASE_TABLE":
            # FROM 'file.parquet' reads a file; a dataset's name is an identifier.
            name = str(node.get("table_name", ""))
            return not any(c in name for c in "./:\\")
        sample = node.get("sample")
        if isinstance(sample, dict) and sample.get("seed", -1) == -1:
            return False  # USING SAMPLE without REPEATABLE (seed)
        if node.get("class") in ("FUNCTION", "WINDOW", "AGGREGATE"):
            return str(node.get("function_name", "")).lower() not in self.volatile
        if node.get("class") == "COLUMN_REF":
            names = node.get("column_names") or []
            return not (len(names) == 1 and str(names[0]).lower() in CLOCK_KEYWORDS)
        return True


@functools.cache
def volatile_functions() -> frozenset[str]:
    """Lower-case names of the functions DuckDB does not call deterministic, and of the
    built-in macros calling one (the same for every database of this DuckDB version)."""
    con = duckdb.connect(":memory:", config={"threads": 1, "enable_external_access": False})
    try:
        rows = con.execute(
            "SELECT DISTINCT lower(function_name) FROM duckdb_functions() "
            "WHERE stability IN ('VOLATILE', 'CONSISTENT_WITHIN_QUERY')"
        ).fetchall()
        volatile = {name for (name,) in rows} - NOT_REALLY_VOLATILE
        macros = con.execute(
            "SELECT DISTINCT lower(function_name), macro_definition FROM duckdb_functions() "
            "WHERE function_type = 'macro' AND macro_definition IS NOT NULL"
        ).fetchall()
        for name, definition in macros:
            # Only a body naming a volatile function can call one: parse just those.
            if not any(v in definition.lower() for v in volatile):
                continue
            row = con.execute("SELECT json_serialize_sql(?)", [f"SELECT {definition}"]).fetchone()
            tree = json.loads(row[0]) if row else {"error": True}
            if tree.get("error") or any(
                str(node.get("function_name", "")).lower() in volatile for node in json_nodes(tree)
            ):
                volatile.add(name)
        return frozenset(volatile)
    finally:
        con.close()


CacheKey = tuple[bytes, bytes, ResultFormat, str]
"""(statement digest, encoded parameters, format, catalog version)."""


def cache_key(verdict: Verdict, params: Any, fmt: ResultFormat, version: str) -> CacheKey | None:
    """The key of a deterministic statement's answer; None when it has none."""
    if not verdict.deterministic:
        return None
    try:
        encoded = msgspec.json.encode(params)
    except (TypeError, ValueError, OverflowError):  # not JSON: DuckDB will say what is wrong
        return None
    return (verdict.digest, encoded, fmt, version)


def etag(key: CacheKey) -> str:
    """A strong HTTP validator of the answer ``key`` names."""
    digest, params, fmt, version = key
    hasher = hashlib.blake2b(digest, digest_size=16)
    for part in (params, fmt.value.encode(), version.encode()):
        hasher.update(b"\x00" + part)
    return f'"{hasher.hexdigest()}"'


class ResultCache:
    """Encoded answers by ``CacheKey``, at most ``budget`` bytes of them, LRU. Used on the
    event loop only."""

    def __init__(self, budget: int) -> None:
        """``budget``: bytes of answers kept; 0 turns the cache off."""
        self.budget = max(budget, 0)
        self.max_entry = min(self.budget // 8, MAX_ENTRY_BYTES)
        self._entries: OrderedDict[CacheKey, bytes] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @property
    def enabled(self) -> bool:
        return self.budget > 0

    def get(self, key: CacheKey) -> bytes | None:
        body = self._entries.get(key)
        if body is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return body

    def put(self, key: CacheKey, body: bytes) -> None:
        """Keep ``body`` unless it is larger than an entry may be; evict the least
        recently used answers until the budget holds."""
        if len(body) > self.max_entry:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= len(old)
        self._entries[key] = body
        self.bytes += len(body)
        while self.bytes > self.budget:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= len(evicted)
            self.evictions += 1

    def stats(self) -> dict[str, Any]:
        """For /health."""
        return {
            "enabled": self.enabled,
            "budget_bytes": self.budget,
            "max_entry_bytes": self.max_entry,
            "entries": len(self._entries),
            "bytes": self.bytes,
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
        }
