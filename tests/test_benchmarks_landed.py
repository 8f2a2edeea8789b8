"""The benchmark's "what lands" comparison (benchmarks/landed.py): pure, so no server."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from benchmarks.landed import Column, Database, Table, canonical, compare, family

UTC = dt.UTC
SOURCE_ROWS = [
    (1, "alpha", 639.4267984578837, 12.5, 1, "1998-07-17", "2021-04-02 04:33:13.000001+00:00"),
    (2, "bravo", 0.1, 7, 0, "2001-01-01", "2020-01-01 00:00:00+00:00"),
]
SQLITE_TYPES = ("INTEGER", "TEXT", "REAL", "NUMERIC(12, 2)", "BOOLEAN", "DATE", "TIMESTAMP")
NAMES = ("id", "name", "score", "amount", "active", "born", "updated_at")


def _source() -> Database:
    columns = tuple(
        Column(name, type_, nullable=name not in ("id", "name"), identity=name == "id")
        for name, type_ in zip(NAMES, SQLITE_TYPES, strict=True)
    )
    parent = Table("parent", columns, ("id",), (), (), SOURCE_ROWS)
    child = Table(
        "child",
        (Column("id", "INTEGER", False, True), Column("parent_id", "INTEGER", False)),
        ("id",),
        ((("parent_id",), "parent"),),
        (("parent_id",),),
        [(1, 1), (2, 2)],
    )
    return Database("sqlite", {"parent": parent, "child": child})


def _postgres(
    types: tuple[str, ...] = (
        "BIGINT",
        "TEXT",
        "DOUBLE PRECISION",
        "NUMERIC(12, 2)",
        "BOOLEAN",
        "DATE",
        "TIMESTAMP WITH TIME ZONE",
    ),
    rows: list[tuple[Any, ...]] | None = None,
    nullable: bool = False,
    keys: bool = True,
    extra: tuple[Column, ...] = (),
) -> Database:
    columns = tuple(
        Column(name, type_, nullable=nullable or name not in ("id", "name"), identity=keys)
        if name == "id"
        else Column(name, type_, nullable=nullable or name != "name")
        for name, type_ in zip(NAMES, types, strict=True)
    )
    typed = [
        (1, "alpha", 639.4267984578837, Decimal("12.50"), True, dt.date(1998, 7, 17),
         dt.datetime(2021, 4, 2, 4, 33, 13, 1, tzinfo=UTC)),
        (2, "bravo", 0.1, Decimal("7.00"), False, dt.date(2001, 1, 1),
         dt.datetime(2020, 1, 1, tzinfo=UTC)),
    ]  # fmt: skip
    parent = Table(
        "parent", columns + extra, ("id",) if keys else (), (), (), rows if rows else typed
    )
    child = Table(
        "child",
        (Column("id", "BIGINT", not keys, keys), Column("parent_id", "BIGINT", not keys)),
        ("id",) if keys else (),
        ((("parent_id",), "parent"),) if keys else (),
        (("parent_id",),) if keys else (),
        [(1, 1), (2, 2)],
    )
    return Database("postgresql", {"parent": parent, "child": child})


def test_a_faithful_copy_across_engines_is_exact_with_keys_and_identity() -> None:
    assert compare(_source(), _postgres()).summary == "exact, keys, identity"


def test_a_float4_column_shows_the_type_change_and_the_rounded_value() -> None:
    rounded = [
        (1, "alpha", 639.4268, Decimal("12.50"), True, dt.date(1998, 7, 17),
         dt.datetime(2021, 4, 2, 4, 33, 13, 1, tzinfo=UTC)),
        (2, "bravo", 0.1, Decimal("7.00"), False, dt.date(2001, 1, 1),
         dt.datetime(2020, 1, 1, tzinfo=UTC)),
    ]  # fmt: skip
    types = ("BIGINT", "TEXT", "REAL", "NUMERIC(12, 2)", "BOOLEAN", "DATE", "TIMESTAMP")
    landed = compare(_source(), _postgres(types, rounded))
    assert landed.findings == [
        "REAL → REAL (float8 → float4) (score)",
        "parent.score differs in 1 of 2 rows (639.4267984578837 → 639.4268)",
    ]


def test_dropped_constraints_keys_and_extra_columns_are_each_named() -> None:
    extra = (Column("_dlt_id", "VARCHAR", False),)
    landed = compare(_source(), _postgres(nullable=True, keys=False, extra=extra))
    assert landed.findings == [
        "NOT NULL dropped (parent.id, parent.name, child.id, child.parent_id)",
        "no primary key (parent, child)",
        "no foreign key (child)",
        "no index (child)",
        "no identity (parent, child)",
        "extra columns: _dlt_id",
    ]


def test_identity_is_not_asked_of_a_source_without_it() -> None:
    assert compare(_source(), _postgres(keys=True), expect_identity=False).summary == (
        "exact, keys"
    )


def test_an_index_the_foreign_key_leads_counts_as_the_index() -> None:
    source = _source()
    target = _postgres()
    child = target.tables["child"]
    with_leading_index = Table(
        "child",
        child.columns,
        child.primary_key,
        child.foreign_keys,
        (("parent_id", "id"),),
        child.rows,
    )
    target.tables["child"] = with_leading_index
    assert compare(source, target).findings == []


def test_a_missing_table_is_named() -> None:
    target = _postgres()
    del target.tables["child"]
    assert compare(_source(), target).findings == ["missing tables: child"]


@pytest.mark.parametrize(
    ("kind", "source", "landed", "same"),
    [
        ("float8", 639.4267984578837, Decimal("639.4267984578837"), True),
        ("float8", 639.4267984578837, 639.4268, False),
        ("decimal", 7, Decimal("7.00"), True),
        ("decimal", 12.5, "12.5", False),  # a number landed as text is not the number
        ("boolean", 1, True, True),
        ("boolean", 0, "false", False),
        ("date", "1998-07-17", dt.date(1998, 7, 17), True),
        ("date", "1998-07-17", dt.datetime(1998, 7, 17), False),
        ("timestamp", "2021-04-02 04:33:13.000001+00:00", dt.datetime(2021, 4, 2, 4, 33, 13, 1),
         True),  # a naive DATETIME holds the UTC wall time
        ("timestamp", "2021-04-02 04:33:13+00:00", '"2021-04-02 04:33:13+00:00"', False),
        ("binary", b"\x00\xfa", memoryview(b"\x00\xfa"), True),
        ("binary", b"\x00\xfa", "\\x00\\xfa", False),
    ],
)  # fmt: skip
def test_values_are_compared_exactly_as_the_source_column_means_them(
    kind: str, source: Any, landed: Any, same: bool
) -> None:
    assert (canonical(kind, source) == canonical(kind, landed)) is same


@pytest.mark.parametrize(
    ("engine", "type_name", "kind"),
    [
        ("sqlite", "REAL", "float8"),
        ("postgresql", "REAL", "float4"),
        ("postgresql", "DOUBLE PRECISION", "float8"),
        ("mariadb", "FLOAT", "float4"),
        ("mariadb", "TINYINT(1)", "boolean"),
        ("mariadb", "DATETIME(6)", "timestamp"),
        ("duckdb", "VARCHAR", "text"),
        ("postgresql", "BYTEA", "binary"),
        ("sqlite", "NUMERIC(12, 2)", "decimal"),
    ],
)
def test_type_names_map_to_the_kind_of_value_they_hold(
    engine: str, type_name: str, kind: str
) -> None:
    assert family(engine, type_name) == kind


def test_sampled_rows_the_target_lacks_are_counted() -> None:
    target = _postgres()
    parent = target.tables["parent"]
    target.tables["parent"] = Table(
        "parent",
        parent.columns,
        parent.primary_key,
        parent.foreign_keys,
        parent.indexes,
        parent.rows[:1],
    )
    assert compare(_source(), target).findings == ["parent: 1 sampled rows missing"]
