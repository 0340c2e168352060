"""The seams of ADR 0011, checked on the source: a module reaches another module only
through its package's ``__init__``, and query reaches storage only for the DuckDB grant."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import lakehouse

ROOT = Path(lakehouse.__file__).parent
PACKAGES = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file())


def _sources() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT.parent).with_suffix("")
        yield ".".join(relative.parts), ast.parse(path.read_text(), str(path))


def _imports(tree: ast.Module) -> Iterator[tuple[str, list[str], int]]:
    """(module, names imported from it, line) for every absolute import."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, [alias.name for alias in node.names], node.lineno


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "lakehouse":  # rich.console is not ours
        return None
    return parts[1] if len(parts) > 1 and parts[1] in PACKAGES else None


def boundary_violations(sources: Iterable[tuple[str, ast.Module]]) -> list[str]:
    found = []
    for module, tree in sources:
        own = _package_of(module)
        for target, names, line in _imports(tree):
            other = _package_of(target)
            if other is None or other == own:
                continue
            where = f"{module}:{line} imports {target}"
            if target != f"lakehouse.{other}":
                found.append(f"{where} (only lakehouse.{other} is public)")
            submodules = [n for n in names if (ROOT / other / f"{n}.py").is_file()]
            if submodules:
                found.append(f"{where}.{submodules} (a submodule, not a public name)")
    return found


def test_no_module_imports_another_packages_private_files() -> None:
    assert PACKAGES == [
        "admin",
        "agents",
        "catalog",
        "client",
        "console",
        "ingest",
        "query",
        "storage",
    ]
    assert boundary_violations(_sources()) == []


def test_query_takes_only_the_duckdb_grant_from_storage() -> None:
    taken = {
        (target, name)
        for module, tree in _sources()
        if _package_of(module) == "query"
        for target, names, _ in _imports(tree)
        for name in names or ["*"]
        if target.startswith("lakehouse.storage")
        or (target == "lakehouse.config" and name in {"StorageSettings", "SecretsSettings"})
    }
    assert taken == {("lakehouse.storage", "DuckDBGrant")}


def test_agents_reach_only_the_catalog_and_the_query_engine() -> None:
    # The MCP endpoint is read-only by construction: it cannot reach storage or ingest,
    # and it queries only through the QueryEngine protocol, as /v1/sql does.
    reached = {
        target
        for module, tree in _sources()
        if _package_of(module) == "agents"
        for target, _, _ in _imports(tree)
        if target.startswith("lakehouse.") and _package_of(target) not in {None, "agents"}
    }
    assert reached == {"lakehouse.catalog", "lakehouse.query"}


def server_imports(sources: Iterable[tuple[str, ast.Module]]) -> list[str]:
    """What the client imports of lakehouse outside its own package: it talks HTTP."""
    return [
        f"{module}:{line} imports {target}"
        for module, tree in sources
        if _package_of(module) == "client"
        for target, _, line in _imports(tree)
        if target.split(".")[0] == "lakehouse" and _package_of(target) != "client"
    ]


def test_the_client_imports_nothing_of_the_server() -> None:
    assert server_imports(_sources()) == []
    # ... and the check can fail.
    breaking = [("lakehouse.client.http", ast.parse("from lakehouse.errors import BadRequest"))]
    assert server_imports(breaking) == ["lakehouse.client.http:1 imports lakehouse.errors"]


def test_the_rule_catches_private_and_submodule_imports() -> None:
    # The check must be able to fail: modules that break the rule are reported.
    sources = [
        ("lakehouse.query.engine", ast.parse("from lakehouse.storage._s3 import S3ObjectStore")),
        ("lakehouse.app", ast.parse("from lakehouse.ingest import routes")),
        ("lakehouse.app", ast.parse("import lakehouse.catalog.service")),
        ("lakehouse.query.views", ast.parse("from lakehouse.query.errors import QueryFailed")),
        ("lakehouse.ingest.service", ast.parse("from lakehouse.catalog import Catalog")),
    ]
    assert boundary_violations(sources) == [
        "lakehouse.query.engine:1 imports lakehouse.storage._s3 (only lakehouse.storage is public)",
        "lakehouse.app:1 imports lakehouse.ingest.['routes'] (a submodule, not a public name)",
        "lakehouse.app:1 imports lakehouse.catalog.service (only lakehouse.catalog is public)",
    ]
