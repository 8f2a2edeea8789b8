"""Compile a migration table's `where` and `sql_where` into one SQLAlchemy condition.

The structured filter of the manifest (issue 4, item 1) reads
`{carrier: UA, month: {in: [1, 2]}, dep_delay: {gt: 60}}`: a scalar means equality (`null`
means IS NULL), a list means one of, and a map gives operators that must all hold. Every
value is a bound parameter, never spliced into SQL, so `x'; DROP TABLE t; --` is only a value.

Values come from YAML (a date, a datetime, a Decimal, a string) and must compare the same way
on every database. They are first made the Python value the column's portable type means
(`values.canonical`: "2024-01-02" for a date column becomes a date), then bound as the
database stores them: SQLite keeps dates and datetimes as ISO text and compares them as
text, so they are bound as that text (a bound datetime would become `…:00.000000`, which
sorts differently); MariaDB has no zone-aware type and stores UTC; PostgreSQL reads a naive
value in a zone-aware column as UTC, the convention `values.py` uses when copying.

NULL follows SQL: `ne` and `not_in` do not match rows where the column is NULL (write
`{is_null: true}` for those). `like` is case-insensitive for ASCII on SQLite and under
MariaDB's `_ci` collations; tables that dsdb creates compare case-sensitively.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

from dsdb_plan.dbschema import ColumnSchema
from dsdb_plan.engines import engine_for
from dsdb_plan.errors import PlanError
from dsdb_plan.models import Condition, Operators
from dsdb_plan.values import canonical

#: The Python type a value must have once made canonical for a portable type.
_EXPECTED: dict[str, type | tuple[type, ...]] = {
    "smallint": int,
    "integer": int,
    "bigint": int,
    "boolean": bool,
    "float": float,
    "double": float,
    "decimal": Decimal,
    "varchar": str,
    "text": str,
    "binary": bytes,
    "date": (dt.date, dt.datetime),
    "time": dt.time,
    "datetime": dt.datetime,
    "uuid": str,
}


class PortableType(TypeDecorator[Any]):
    """A column type that names its portable type and passes driver values through untouched.

    Tables selected for a migration are built with it, so reading them gives raw driver
    values (SQLite's text dates stay text, as `values.row_converter` expects) while filters
    still know what each column holds.
    """

    impl = sa.types.NullType
    cache_ok = True

    def __init__(self, portable: str, timezone: bool = False) -> None:
        super().__init__()
        self.portable = portable
        self.timezone = timezone


def column_type(column: ColumnSchema) -> PortableType:
    """The `PortableType` for a reflected column."""
    return PortableType(column.type, column.timezone)


class _FilterValue(TypeDecorator[Any]):
    """A bound filter value, made into what the executing database stores for the column."""

    impl = sa.types.NullType
    cache_ok = True

    def __init__(self, portable: str | None, timezone: bool) -> None:
        super().__init__()
        self.portable = portable
        self.timezone = timezone

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        return engine_for(dialect).filter_value(value, self.portable, self.timezone)


def compile_where(
    table: sa.Table,
    where: Mapping[str, Condition] | None,
    sql_where: str | None,
) -> sa.ColumnElement[bool] | None:
    """One condition for `where` and `sql_where` on `table`, all ANDed; None when both are empty.

    Raises PlanError for a column `table` does not have (suggesting the closest one) and for
    a value that cannot mean anything in its column (text in an integer column, say).
    """
    parts: list[sa.ColumnElement[bool]] = []
    for name, condition in (where or {}).items():
        column = _column(table, name)
        parts.extend(_conditions(table, column, condition))
    if sql_where is not None and sql_where.strip():
        # A literal column, not sa.text(): text() would take `:word` inside the user's SQL
        # for a bind parameter, and a literal is a column element that combines with the
        # others. Its `%` are escaped for the drivers that use them as placeholders.
        parts.append(sa.literal_column(f"({sql_where})"))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else sa.and_(*parts)


def _column(table: sa.Table, name: str) -> sa.Column[Any]:
    if name in table.c:
        return table.c[name]
    names = [column.name for column in table.columns]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    if not close:  # case slips are the common ones: "Carrier" for "carrier"
        close = [n for n in names if n.lower() == name.lower()][:1]
    hint = f"; did you mean {close[0]!r}?" if close else f" (it has {_listed(names)})"
    raise PlanError(f"where: table {table.name!r} has no column {name!r}{hint}")


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(repr(name) for name in names[:10])
    return shown + (", ..." if len(names) > 10 else "")


def _conditions(
    table: sa.Table, column: sa.Column[Any], condition: Condition
) -> list[sa.ColumnElement[bool]]:
    if isinstance(condition, Operators):
        return [
            _operator(table, column, op, getattr(condition, op))
            for op in sorted(condition.model_fields_set)
        ]
    if isinstance(condition, list):
        return [_one_of(table, column, condition)]
    return [_operator(table, column, "eq", condition)]


def _operator(
    table: sa.Table, column: sa.Column[Any], op: str, value: Any
) -> sa.ColumnElement[bool]:
    label = "in" if op == "in_" else op
    if op == "eq":
        return column.is_(None) if value is None else column == _bind(table, column, value)
    if op == "ne":
        return column.is_not(None) if value is None else column != _bind(table, column, value)
    if op == "is_null":
        if value is None:
            raise PlanError(_where_error(table, column, "is_null needs true or false"))
        return column.is_(None) if value else column.is_not(None)
    if value is None:
        raise PlanError(_where_error(table, column, f"{label} needs a value, not null"))
    if op == "in_":
        return _one_of(table, column, value)
    if op == "not_in":
        return _none_of(table, column, value)
    if op == "like":
        if not isinstance(value, str):
            raise PlanError(_where_error(table, column, "like needs a text pattern"))
        return column.like(sa.bindparam(None, value, type_=_FilterValue("text", False)))
    bound = _bind(table, column, value)
    comparisons = {
        "gt": column > bound,
        "gte": column >= bound,
        "lt": column < bound,
        "lte": column <= bound,
    }
    return comparisons[op]


def _one_of(table: sa.Table, column: sa.Column[Any], values: list[Any]) -> sa.ColumnElement[bool]:
    """IN; a null in the list also matches NULL, as a list means "one of these values"."""
    present = [_bind(table, column, value) for value in values if value is not None]
    # An empty IN is false; SQLAlchemy renders it portably.
    condition: sa.ColumnElement[bool] = column.in_(present)
    if len(present) < len(values):
        condition = sa.or_(condition, column.is_(None))
    return condition


def _none_of(table: sa.Table, column: sa.Column[Any], values: list[Any]) -> sa.ColumnElement[bool]:
    """NOT IN; a null in the list also excludes NULL (SQL's NOT IN would exclude every row)."""
    present = [_bind(table, column, value) for value in values if value is not None]
    condition: sa.ColumnElement[bool] = column.not_in(present)
    if len(present) < len(values):
        condition = sa.and_(condition, column.is_not(None))
    return condition


def _bind(table: sa.Table, column: sa.Column[Any], value: Any) -> sa.BindParameter[Any]:
    portable, timezone = _portable(column)
    if portable is not None and portable in _EXPECTED:
        made = canonical(value, ColumnSchema(column.name, portable, timezone=timezone))
        if not isinstance(made, _EXPECTED[portable]):
            raise PlanError(
                _where_error(table, column, f"{value!r} is not a value of type {portable}")
            )
        value = made
    return sa.bindparam(None, value, type_=_FilterValue(portable, timezone))


def _portable(column: sa.Column[Any]) -> tuple[str | None, bool]:
    """The column's portable type and zone flag: named by PortableType, else guessed."""
    kind = column.type
    if isinstance(kind, PortableType):
        return kind.portable, kind.timezone
    timezone = bool(getattr(kind, "timezone", False))
    guesses: Sequence[tuple[type[Any], str]] = (
        (sa.Boolean, "boolean"),
        (sa.Integer, "bigint"),
        (sa.Float, "double"),
        (sa.Numeric, "decimal"),
        (sa.DateTime, "datetime"),
        (sa.Date, "date"),
        (sa.Time, "time"),
        (sa.Uuid, "uuid"),
        (sa.String, "text"),
        (sa.LargeBinary, "binary"),
    )
    for sa_type, portable in guesses:
        if isinstance(kind, sa_type):
            return portable, timezone
    return None, False


def _where_error(table: sa.Table, column: sa.Column[Any], problem: str) -> str:
    return f"where: table {table.name!r}, column {column.name!r}: {problem}"
