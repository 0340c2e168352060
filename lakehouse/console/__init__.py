"""The web console at ``/``: Jinja pages and htmx fragments over the catalog and query
modules, with its assets (htmx, the docs page's Redoc) vendored in ``static/``."""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from lakehouse.console.routes import console_router

__all__ = [
    "OPEN_PREFIXES",
    "STATIC_PATH",
    "console_routers",
    "template_config",
]

_HERE = Path(__file__).parent
STATIC_PATH = "/console/static"
OPEN_PREFIXES = ("/console/",)
"""Pages and assets that hold no data: a browser opens them without a token (the
fragments they load, under /ui/, need it)."""


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Jinja with autoescaping on (Litestar's default for a directory)."""
    return TemplateConfig(directory=_HERE / "templates", engine=JinjaTemplateEngine)


def console_routers() -> list[Router]:
    static = create_static_files_router(
        path=STATIC_PATH, directories=[_HERE / "static"], include_in_schema=False
    )
    return [console_router, static]
