"""Structured `where` and `sql_where` filters, on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan.dbschema import ColumnSchema, TableSchema
from dsdb_plan.errors import PlanError
from dsdb_plan.migrate.filters import compile_where
from dsdb_plan.migrate.subset import select_subset, select_tables
from dsdb_plan.models import MigrationTable
from tests.helpers import database, fill

HOSTILE = "x'; DROP TABLE items; --"
ITEMS = TableSchema(
    "items",
    (
        ColumnSchema("id", "integer", nullable=False),
        ColumnSchema("name", "varchar", length=60),
        ColumnSchema("qty", "integer"),
        ColumnSchema("price", "decimal", precision=10, scale=2),
        ColumnSchema("day", "date"),
        ColumnSchema("at", "datetime"),
        ColumnSchema("flag", "boolean"),
    ),
    primary_key=("id",),
)
ROWS = [
    (1, "apple", 1, Decimal("1.50"), dt.date(2024, 1, 1), dt.datetime(2024, 1, 1, 9, 0), True),
    (2, "apricot", 3, Decimal("2.25"), dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 9, 30), False),
    (3, "banana", None, Decimal("0.99"), dt.date(2024, 2, 1), dt.datetime(2024, 2, 1, 0, 0), None),
    (4, HOSTILE, 7, None, None, dt.datetime(2024, 1, 2, 9, 30, 0, 500), True),
    (5, None, 3, Decimal("10.00"), dt.date(2024, 3, 1), None, False),
]


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def items(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    engine = database(request, tmp_path, request.param)
    fill(engine, ITEMS, ROWS)
    yield engine
    engine.dispose()


def ids(engine: sa.Engine, table: str, **options: Any) -> list[int]:
    """The ids of the rows the filter selects (options parsed as the manifest would)."""
    (selection,) = select_tables(engine, {table: MigrationTable.model_validate(options)}, "none")
    with engine.connect() as conn:
        return sorted(row[0] for row in conn.execute(select_subset(selection)))


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"name": "apple"}, [1]),
        ({"qty": 3}, [2, 5]),
        ({"qty": None}, [3]),
        ({"qty": [1, 7]}, [1, 4]),
        ({"qty": [1, None]}, [1, 3]),
        ({"qty": []}, []),
        ({"qty": {"eq": 3}}, [2, 5]),
        ({"qty": {"eq": None}}, [3]),
        ({"qty": {"ne": 3}}, [1, 4]),
        ({"qty": {"ne": None}}, [1, 2, 4, 5]),
        ({"qty": {"gt": 3}}, [4]),
        ({"qty": {"gte": 3}}, [2, 4, 5]),
        ({"qty": {"lt": 3}}, [1]),
        ({"qty": {"lte": 3}}, [1, 2, 5]),
        ({"qty": {"gt": 1, "lt": 7}}, [2, 5]),
        ({"qty": {"in": [3, 7]}}, [2, 4, 5]),
        ({"qty": {"not_in": [3, 7]}}, [1]),
        ({"qty": {"not_in": [3, None]}}, [1, 4]),
        ({"name": {"like": "ap%"}}, [1, 2]),
        ({"name": {"like": "%an_na"}}, [3]),
        ({"qty": {"is_null": True}}, [3]),
        ({"qty": {"is_null": False}}, [1, 2, 4, 5]),
        ({"flag": True}, [1, 4]),
        ({"flag": {"is_null": True}}, [3]),
        ({"price": {"gt": Decimal("1.50")}}, [2, 5]),
        ({"price": Decimal("1.5")}, [1]),
        ({"price": {"lte": 2.25}}, [1, 2, 3]),
        ({"day": dt.date(2024, 1, 2)}, [2]),
        ({"day": "2024-01-02"}, [2]),
        ({"day": {"gte": dt.date(2024, 1, 2), "lt": dt.date(2024, 3, 1)}}, [2, 3]),
        ({"at": dt.datetime(2024, 1, 2, 9, 30)}, [2]),
        ({"at": {"gt": dt.datetime(2024, 1, 2, 9, 30)}}, [3, 4]),
        ({"at": {"gte": dt.date(2024, 1, 2)}}, [2, 3, 4]),
        (
            {
                "at": {
                    "lt": dt.datetime(2024, 1, 1, 10, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
                }
            },
            [1],
        ),
        ({"name": HOSTILE}, [4]),
        ({"name": {"in": [HOSTILE, "banana"]}}, [3, 4]),
        ({"name": {"like": "a%"}, "qty": 3}, [2]),
    ],
)
def test_where_operators(items: sa.Engine, where: dict[str, Any], expected: list[int]) -> None:
    assert ids(items, "items", where=where) == expected
    assert sa.inspect(items).has_table("items")  # the hostile value was only a value


def test_sql_where_is_parenthesised_and_anded(items: sa.Engine) -> None:
    # OR inside sql_where must not escape its parentheses; ':x' and '%' are not parameters.
    sql = "qty = 1 OR qty = 3 OR name = ':x' OR name LIKE 'ban%'"
    assert ids(items, "items", sql_where=sql) == [1, 2, 3, 5]
    assert ids(items, "items", where={"flag": False}, sql_where=sql) == [2, 5]


def test_unknown_column_names_table_column_and_suggestion(items: sa.Engine) -> None:
    with pytest.raises(PlanError) as error:
        ids(items, "items", where={"prise": {"gt": 1}})
    assert str(error.value) == ("where: table 'items' has no column 'prise'; did you mean 'price'?")


def test_value_that_cannot_be_of_the_column_type(items: sa.Engine) -> None:
    with pytest.raises(PlanError, match=r"'qty': 'many' is not a value of type (big)?int(eger)?"):
        ids(items, "items", where={"qty": "many"})
    with pytest.raises(PlanError, match="gt needs a value"):
        ids(items, "items", where={"qty": {"gt": None}})


def test_no_filter_is_none() -> None:
    table = sa.Table("t", sa.MetaData(), sa.Column("a", sa.Integer))
    assert compile_where(table, None, None) is None
    assert compile_where(table, {}, "  ") is None


HOSTILE_TABLE = TableSchema(
    'we"ird; tab`le',
    (
        ColumnSchema("order", "integer", nullable=False),
        ColumnSchema("sel ect 'x'", "text"),
        ColumnSchema("naïve ✈", "integer"),
    ),
    primary_key=("order",),
)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb"])
def test_hostile_table_and_column_names(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    engine = database(request, tmp_path, kind)
    fill(engine, HOSTILE_TABLE, [(1, "a", 10), (2, HOSTILE, 20), (3, None, 30)])
    name = HOSTILE_TABLE.name
    assert ids(engine, name, where={"sel ect 'x'": HOSTILE}) == [2]
    assert ids(engine, name, where={"naïve ✈": {"gte": 20}, "order": {"ne": 3}}) == [2]
    with pytest.raises(PlanError, match="did you mean 'naïve ✈'"):
        ids(engine, name, where={"naive ✈": 1})
    engine.dispose()


def test_sqlite_dates_stored_as_text_compare_as_text(tmp_path: Path) -> None:
    """A bound datetime would become '...:00.000000', which sorts after '...:00'."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'text.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE ev (id INTEGER PRIMARY KEY, at DATETIME, day DATE)")
        conn.exec_driver_sql(
            "INSERT INTO ev VALUES (1, '2024-01-02 10:00:00', '2024-01-02'), "
            "(2, '2024-01-02 10:00:00.250000', '2024-01-03')"
        )
    assert ids(engine, "ev", where={"at": dt.datetime(2024, 1, 2, 10)}) == [1]
    assert ids(engine, "ev", where={"at": {"lte": dt.datetime(2024, 1, 2, 10)}}) == [1]
    assert ids(engine, "ev", where={"day": {"gt": dt.date(2024, 1, 2)}}) == [2]
    engine.dispose()
