"""The column type mapping (lakehouse/catalog/_types.py): DuckDB type names, nested ones
included, parsed and spelled exactly as DuckDB spells them, and mapped to Iceberg and
Arrow and back without change."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest
from pyiceberg.types import ListType, MapType, StructType

from lakehouse.catalog._types import (
    List,
    Map,
    Scalar,
    Struct,
    UnsupportedType,
    arrow_column_type,
    arrow_type,
    columns_of,
    duckdb_type,
    iceberg_schema,
    iceberg_type,
    parse_type,
    struct_growth,
)
from lakehouse.catalog.interface import Column

ODD_NAMES = [
    "plain",
    "with space",
    'a "quoted" name',
    "comma, inside",
    "paren(s)",
    "select",  # reserved keyword
    "value",  # unreserved keyword
    "Name",  # a keyword in another case
    "MixedCase_ok",
    "1starts_with_digit",
    "ünïcödé",
    "STRUCT(",
    "[]",
]


def duckdb_spelling(names: list[str], inner: str = "BIGINT") -> str:
    """What DuckDB itself prints for a struct with these field names."""
    struct = duckdb.struct_type({name: duckdb.sqltype(inner) for name in names})
    return str(struct)


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_field_names_parse_and_render_as_duckdb_prints_them(name: str) -> None:
    spelled = duckdb_spelling([name, "other"], "VARCHAR[]")
    tree = parse_type(spelled)
    assert tree == Struct(((name, List(Scalar("VARCHAR"))), ("other", List(Scalar("VARCHAR")))))
    assert duckdb_type(iceberg_type(spelled)) == spelled
    assert arrow_column_type(arrow_type(spelled)) == spelled


def test_every_keyword_is_quoted_as_duckdb_quotes_it() -> None:
    with duckdb.connect() as con:
        keywords = [
            row[0] for row in con.sql("SELECT keyword_name FROM duckdb_keywords()").fetchall()
        ]
    spelled = duckdb_spelling(keywords)
    assert duckdb_type(iceberg_type(spelled)) == spelled


@pytest.mark.parametrize(
    ("spelled", "tree"),
    [
        ("BIGINT[]", List(Scalar("BIGINT"))),
        ("BIGINT[][]", List(List(Scalar("BIGINT")))),
        ("MAP(VARCHAR, BIGINT)", Map(Scalar("VARCHAR"), Scalar("BIGINT"))),
        (
            "MAP(VARCHAR, STRUCT(a DECIMAL(10,2), b TIMESTAMP WITH TIME ZONE)[])",
            Map(
                Scalar("VARCHAR"),
                List(
                    Struct(
                        (("a", Scalar("DECIMAL(10,2)")), ("b", Scalar("TIMESTAMP WITH TIME ZONE")))
                    )
                ),
            ),
        ),
        ("STRUCT(x BIGINT)[]", List(Struct((("x", Scalar("BIGINT")),)))),
    ],
)
def test_nested_types_round_trip_through_iceberg_and_arrow(spelled: str, tree: object) -> None:
    assert str(duckdb.sqltype(spelled)) == spelled  # the spelling is DuckDB's own
    assert parse_type(spelled) == tree
    assert duckdb_type(iceberg_type(spelled)) == spelled
    assert arrow_column_type(arrow_type(spelled)) == spelled


def test_a_new_tables_schema_has_unique_field_ids() -> None:
    schema = iceberg_schema(
        [
            Column(name="s", type="STRUCT(a BIGINT, b MAP(VARCHAR, BIGINT[]))"),
            Column(name="l", type="STRUCT(x BIGINT)[]"),
            Column(name="id", type="BIGINT"),
        ]
    )
    # 10 fields: 3 columns; a, b, the map's key and value, its list's element; l's
    # element and x. Ids that collide would leave fewer distinct ones.
    assert sorted(schema._lazy_id_to_field) == list(range(1, 11))
    assert [f.field_id for f in schema.fields] == [1, 2, 3]  # columns first
    struct, points = schema.fields[0].field_type, schema.fields[1].field_type
    assert isinstance(struct, StructType)
    assert isinstance(struct.fields[1].field_type, MapType)
    assert isinstance(points, ListType)
    assert isinstance(points.element_type, StructType)
    assert [c.type for c in columns_of(schema)] == [
        "STRUCT(a BIGINT, b MAP(VARCHAR, BIGINT[]))",
        "STRUCT(x BIGINT)[]",
        "BIGINT",
    ]


def test_arrow_nested_types_map_to_duckdb_names() -> None:
    arrow = pa.struct(
        [
            ("big list", pa.large_list(pa.int32())),
            ("m", pa.map_(pa.string(), pa.struct([("v", pa.float64())]))),
        ]
    )
    assert (
        arrow_column_type(arrow) == 'STRUCT("big list" INTEGER[], m MAP(VARCHAR, STRUCT(v DOUBLE)))'
    )


@pytest.mark.parametrize(
    "spelled",
    [
        "INTEGER[2]",  # a fixed-size array
        "STRUCT(a BIGINT",
        'STRUCT("a BIGINT)',
        "MAP(VARCHAR)",
        "BIGINT[",
        "UNION(a BIGINT, b VARCHAR)",
        "INTERVAL",
        "HUGEINT[]",
        "STRUCT(a BIGINT, A VARCHAR)",  # Iceberg names are case-insensitive here
        "",
    ],
)
def test_unsupported_or_malformed_types_are_refused_by_name(spelled: str) -> None:
    with pytest.raises(UnsupportedType, match="column type"):
        iceberg_type(spelled)


@pytest.mark.parametrize(
    ("old", "new", "growth"),
    [
        ("BIGINT", "BIGINT", []),
        ("STRUCT(a BIGINT)", "STRUCT(a BIGINT, b VARCHAR)", [(("b",), "VARCHAR")]),
        (
            "STRUCT(a STRUCT(x BIGINT))[]",
            'STRUCT(a STRUCT(x BIGINT, "y z" DATE[]), b BIGINT)[]',
            [(("element", "a", "y z"), "DATE[]"), (("element", "b"), "BIGINT")],
        ),
        (
            "MAP(VARCHAR, STRUCT(a BIGINT))",
            "MAP(VARCHAR, STRUCT(a BIGINT, b STRUCT(c BIGINT)))",
            [(("value", "b"), "STRUCT(c BIGINT)")],
        ),
        ("STRUCT(a BIGINT, b VARCHAR)", "STRUCT(a BIGINT)", None),  # a field dropped
        ("STRUCT(a BIGINT)", "STRUCT(b VARCHAR, a BIGINT)", None),  # inserted before
        ("STRUCT(a BIGINT)", "STRUCT(a VARCHAR, b VARCHAR)", None),  # a field retyped
        ("MAP(VARCHAR, BIGINT)", "MAP(BIGINT, BIGINT)", None),
        ("BIGINT", "STRUCT(a BIGINT)", None),
    ],
)
def test_struct_growth_is_fields_added_after_a_structs_own(
    old: str, new: str, growth: list[tuple[tuple[str, ...], str]] | None
) -> None:
    assert struct_growth(old, new) == growth


def test_a_struct_with_names_equal_but_for_case_has_no_arrow_type() -> None:
    with pytest.raises(UnsupportedType, match="distinct"):
        arrow_type("STRUCT(a BIGINT, A VARCHAR)")
