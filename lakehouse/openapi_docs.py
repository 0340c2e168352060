"""OpenAPI documentation that route signatures cannot express.

The ingest and SQL handlers read the body themselves (to stream it, or to
report a bad one in the one error shape), so Litestar cannot see a ``data``
parameter and would document no request body; the SQL handler answers in
five encodings. ``documented`` builds an ``operation_class`` for a route
decorator that fills these in after Litestar has built the operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.openapi.spec import (
    Example,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Reference,
    RequestBody,
)

__all__ = ["documented", "examples"]


def examples(**values: Any) -> dict[str, Example | Reference]:
    """Named OpenAPI examples: ``examples(small={...})``."""
    return {
        name: Example(summary=name.replace("_", " "), value=value) for name, value in values.items()
    }


def documented(
    *,
    request_body: RequestBody | None = None,
    success_content: dict[str, OpenAPIMediaType] | None = None,
    success_examples: dict[str, Example | Reference] | None = None,
    public: bool = False,
) -> type[Operation]:
    """An ``operation_class`` adding what the handler's signature does not say.

    Args:
        request_body: The body the handler reads itself.
        success_content: Replaces the success response's media types (one per encoding).
        success_examples: Added to every media type of the success response.
        public: The route needs no bearer token even when one is configured (/health).
    """

    @dataclass
    class DocumentedOperation(Operation):
        def __post_init__(self) -> None:
            if request_body is not None:
                self.request_body = request_body
            if public:
                # An empty requirement list overrides the document-wide bearer requirement.
                self.security = []
            success = next(
                (resp for status, resp in (self.responses or {}).items() if status.startswith("2")),
                None,
            )
            if not isinstance(success, OpenAPIResponse):
                return
            if success_content is not None:
                success.content = success_content
            if success_examples and success.content:
                for media in success.content.values():
                    media.examples = success_examples

    return DocumentedOperation
