"""OpenAPI documentation of POST /sql: the body it reads itself and its five encodings.

Kept apart from ``routes.py`` so the handler stays short; ``routes.py`` only
passes these to its decorator.
"""

from __future__ import annotations

from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    RequestBody,
    Schema,
)

from lakehouse.openapi_docs import examples
from lakehouse.query.encoders import MEDIA_TYPES, ResultFormat

__all__ = ["SQL_REQUEST", "SQL_RESULTS"]

_VALUE = Schema(description="Any JSON value")

SQL_REQUEST = RequestBody(
    required=True,
    description="One read-only statement, and optionally the values of its parameters.",
    content={
        "application/json": OpenAPIMediaType(
            schema=Schema(
                type=OpenAPIType.OBJECT,
                properties={
                    "sql": Schema(type=OpenAPIType.STRING, description="One read-only statement"),
                    "params": Schema(
                        one_of=[
                            Schema(type=OpenAPIType.ARRAY, items=_VALUE),
                            Schema(type=OpenAPIType.OBJECT, additional_properties=_VALUE),
                            Schema(type=OpenAPIType.NULL),
                        ],
                        description="Values for ? / $1 (a list) or $name (an object) parameters",
                    ),
                },
                required=["sql"],
                additional_properties=False,
            ),
            examples=examples(
                count={"sql": "SELECT count(*) FROM workers_500k"},
                group_by_with_params={
                    "sql": (
                        "SELECT state, count(*) AS workers, avg(hourly_rate) AS avg_rate "
                        "FROM workers_500k WHERE state = ? GROUP BY state"
                    ),
                    "params": ["IL"],
                },
            ),
        )
    },
)

SQL_RESULTS: dict[str, OpenAPIMediaType] = {
    MEDIA_TYPES[ResultFormat.JSON]: OpenAPIMediaType(
        schema=Schema(
            type=OpenAPIType.ARRAY,
            items=Schema(type=OpenAPIType.OBJECT, additional_properties=_VALUE),
            description="One object per row, keyed by column name (the default)",
        ),
        examples=examples(count=[{"count_star()": 500000}]),
    ),
    MEDIA_TYPES[ResultFormat.NDJSON]: OpenAPIMediaType(
        schema=Schema(type=OpenAPIType.STRING, description="?format=ndjson: one object per line"),
        examples=examples(count='{"count_star()":500000}\n'),
    ),
    MEDIA_TYPES[ResultFormat.CSV]: OpenAPIMediaType(
        schema=Schema(type=OpenAPIType.STRING, description="?format=csv, with a header row"),
        examples=examples(count='"count_star()"\n500000\n'),
    ),
    MEDIA_TYPES[ResultFormat.ARROW]: OpenAPIMediaType(
        schema=Schema(
            type=OpenAPIType.STRING,
            format=OpenAPIFormat.BINARY,
            description="?format=arrow: an Arrow IPC stream",
        )
    ),
    MEDIA_TYPES[ResultFormat.PARQUET]: OpenAPIMediaType(
        schema=Schema(
            type=OpenAPIType.STRING,
            format=OpenAPIFormat.BINARY,
            description="?format=parquet: one Parquet file",
        )
    ),
}
