"""Row conversion at copy speed: `values.row_converter`, skipped where it changes nothing.

Most values already have the Python type their column's portable type means (an int in an
integer column, a str in a text column), and for those `values` returns them unchanged. A
row function is generated once per table that tests each value's type inline and calls the
column's `values.column_converter` only for the others (dates stored as text, booleans as
0/1, ...): the per-row cost is then close to building the tuple, which the benchmarks need
(issue 4, item 6). The results are identical to `values.row_converter` by construction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from dsdb_plan.dbschema import ColumnSchema, TableSchema
from dsdb_plan.values import column_converter, row_converter

RowConverter = Callable[[Sequence[Any]], tuple[Any, ...]]
#: Python classes `values` passes through unchanged, per portable type, into every target.
_PASS: dict[str, tuple[str, ...]] = {
    "smallint": ("int",),
    "integer": ("int",),
    "bigint": ("int",),
    "float": ("float",),
    "double": ("float",),
    "varchar": ("str",),
    "text": ("str",),
    "binary": ("bytes",),
}
#: More, per target family, where `values` keeps the value as it is: PostgreSQL and
#: MySQL/MariaDB take booleans, dates and (JSON, UUID) text as they are; PostgreSQL also
#: decimals. MySQL/MariaDB cannot store NaN or infinities, so floats and decimals pass
#: there only when finite (`_passing`); SQLite stores booleans as 0/1 and dates as text.
_PASS_INTO: dict[str, dict[str, tuple[str, ...]]] = {
    "postgresql": {
        "boolean": ("bool",),
        "date": ("date",),
        "decimal": ("Decimal",),
        "json": ("str",),
        "uuid": ("str",),
    },
    "mysql": {
        "smallint": ("int",),
        "integer": ("int",),
        "bigint": ("int",),
        "varchar": ("str",),
        "text": ("str",),
        "binary": ("bytes",),
        "boolean": ("bool",),
        "date": ("date",),
        "json": ("str",),
        "uuid": ("str",),
    },
    "sqlite": {"json": ("str",), "uuid": ("str",)},
}
_CLASSES = {"date": dt.date, "datetime": dt.datetime, "Decimal": Decimal}


def fast_row_converter(table: TableSchema, source: str, target: str) -> RowConverter:
    """A function making one source row ready for `target`, equal to `values.row_converter`."""
    full = row_converter(table, source, target)
    if full is tuple:
        return tuple
    scope: dict[str, Any] = dict(_CLASSES)
    terms = []
    for index, column in enumerate(table.columns):
        value = f"v{index}"
        convert = column_converter(column, table.name, source, target)
        if convert is None:
            terms.append(value)
            continue
        scope[f"c{index}"] = convert
        keep = " or ".join([f"{value} is None", *_passing(value, column, target)])
        terms.append(f"({value} if {keep} else c{index}({value}))")
    names = ", ".join(f"v{index}" for index in range(len(table.columns)))
    source_code = f"def convert(row):\n    {names}, = row\n    return ({', '.join(terms)},)\n"
    exec(compile(source_code, f"<converter of {table.name!r}>", "exec"), scope)
    converter: RowConverter = scope["convert"]
    return converter


def _passing(value: str, column: ColumnSchema, target: str) -> list[str]:
    """Inline tests (Python source) that `value` needs no conversion into `target`."""
    family = "mysql" if target == "mariadb" else target
    extra = _PASS_INTO.get(family, {})
    names = extra.get(column.type, ()) if family == "mysql" else _PASS.get(column.type, ())
    if family != "mysql":
        names = names + extra.get(column.type, ())
    tests = [f"{value}.__class__ is {name}" for name in names]
    if family == "mysql" and column.type in ("float", "double"):
        # Finite floats pass (x - x is nan for nan and the infinities), as `values` has them.
        tests.append(f"({value}.__class__ is float and {value} - {value} == 0.0)")
    if family == "mysql" and column.type == "decimal":
        tests.append(f"({value}.__class__ is Decimal and {value}.is_finite())")
    # Timestamps already zoned as the column wants them: PostgreSQL keeps aware values in
    # zone-aware columns and naive ones elsewhere; MySQL/MariaDB keep naive ones.
    if column.type == "datetime" and family in ("postgresql", "mysql"):
        aware = column.timezone and family == "postgresql"
        zone = "is not None" if aware else "is None"
        tests.append(f"({value}.__class__ is datetime and {value}.tzinfo {zone})")
    return tests
