"""Row conversion at copy speed: `values.row_converter` applied to a batch, a column at a time.

Most values already have the Python type their column's portable type means (an int in an
integer column, a str in a text column), and for those `values` returns them unchanged: a
column whose values all have such a class is passed as it is. The others usually hold one
class throughout (a SQLite date column: ISO text; a boolean one: 0/1), and for the common
cases a C function mapped over the column (`date.fromisoformat`, `Decimal(repr(x))`) gives
what `values` gives each value, without a Python call per value. Any other column goes value
by value through a generated function that tests each value's type inline and calls the
column's `values.column_converter` only for the values that need it. The results are
identical to `values.row_converter` by construction (issue 4, item 6; the tests compare).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from operator import attrgetter
from typing import Any

from dsdb_plan.dbschema import ColumnSchema, TableSchema
from dsdb_plan.engines import Engine, engine_for
from dsdb_plan.values import column_converter, row_converter

BatchConverter = Callable[[Sequence[Sequence[Any]]], list[tuple[Any, ...]]]
ColumnsConverter = Callable[[Sequence[Sequence[Any]], int], list[tuple[Any, ...]]]
#: Converts the values of one column into a sequence of the same length.
_ColumnStep = Callable[[Sequence[Any]], Sequence[Any]]
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
_CLASSES: dict[str, type] = {
    "int": int,
    "float": float,
    "str": str,
    "bytes": bytes,
    "bool": bool,
    "date": dt.date,
    "datetime": dt.datetime,
    "Decimal": Decimal,
}
#: Rows converted at a time: columns of a thousand values stay in the CPU's caches (batches
#: of 10,000 rows converted whole took twice as long).
_CHUNK_ROWS = 1000
_NONE = type(None)
_FLOAT_TYPES = ("float", "double")
_ZERO_ONE = frozenset((0, 1))
_TZINFO = attrgetter("tzinfo")


def batch_converter(table: TableSchema, source: str, target: str) -> BatchConverter:
    """A function making a batch of source rows ready for `target`: each row as
    `values.row_converter` makes it, as tuples."""
    if row_converter(table, source, target) is tuple:
        return _tuples
    convert_columns = columns_converter(table, source, target)

    def convert(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        converted: list[tuple[Any, ...]] = []
        for start in range(0, len(rows), _CHUNK_ROWS):
            chunk = rows[start : start + _CHUNK_ROWS]
            converted += convert_columns(list(zip(*chunk, strict=True)), len(chunk))
        return converted

    return convert


def columns_converter(table: TableSchema, source: str, target: str) -> ColumnsConverter:
    """`batch_converter` for a batch given column by column: `convert(columns, rows)` takes
    the table's columns in order, each a sequence of `rows` values, and returns the rows."""
    width = len(table.columns)
    steps = [
        (index, step)
        for index, column in enumerate(table.columns)
        if (step := _column_step(column, table.name, source, target)) is not None
    ]

    def convert(columns: Sequence[Sequence[Any]], rows: int) -> list[tuple[Any, ...]]:
        if len(columns) != width:
            raise ValueError(f"table {table.name!r}: rows of {width} values expected")
        if not columns:
            return [()] * rows
        converted = list(columns)
        for index, step in steps:
            converted[index] = step(converted[index])
        return list(zip(*converted, strict=True))

    return convert


def _tuples(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    return list(map(tuple, rows))


def _column_step(column: ColumnSchema, table: str, source: str, target: str) -> _ColumnStep | None:
    """How one column's values are converted, or None when `values` never changes them."""
    convert = column_converter(column, table, source, target)
    if convert is None:
        return None
    engine = engine_for(target)
    unchanged = frozenset((_NONE, *(_CLASSES[name] for name in _pass_names(column, engine))))
    each = _value_by_value(column, engine, convert)
    bulk = _bulk(column, engine)

    def step(values: Sequence[Any]) -> Sequence[Any]:
        classes = set(map(type, values))
        if classes <= unchanged:
            return values
        nulls = _NONE in classes
        classes.discard(_NONE)
        fast = next((convert for taken, convert in bulk if classes <= taken), None)
        if fast is not None:
            try:
                if not nulls:
                    return fast(values)
                converted = iter(fast([v for v in values if v is not None]))
                return [None if v is None else next(converted) for v in values]
            except (ValueError, ArithmeticError):
                pass  # some value is not what the C function takes: value by value
        return each(values)

    return step


def _value_by_value(
    column: ColumnSchema, engine: Engine, convert: Callable[[Any], Any]
) -> _ColumnStep:
    """A generated function converting each value that fails its inline type tests."""
    keep = " or ".join(["v is None", *_passing("v", column, engine)])
    source = f"def each(values):\n    return [v if {keep} else convert(v) for v in values]\n"
    scope: dict[str, Any] = {**_CLASSES, "convert": convert, "isfinite": math.isfinite}
    exec(compile(source, f"<converter of column {column.name!r}>", "exec"), scope)
    each: _ColumnStep = scope["each"]
    return each


def _pass_names(column: ColumnSchema, engine: Engine) -> tuple[str, ...]:
    """The Python classes (by name) whose values need no conversion into `engine`."""
    common = _PASS.get(column.type, ())
    if not engine.capabilities.stores_non_finite_floats and column.type in _FLOAT_TYPES:
        common = ()  # only finite ones, which `_passing` tests
    return common + engine.passes_as_is.get(column.type, ())


def _passing(value: str, column: ColumnSchema, engine: Engine) -> list[str]:
    """Inline tests (Python source) that `value` needs no conversion into `engine`."""
    tests = [f"{value}.__class__ is {name}" for name in _pass_names(column, engine)]
    if not engine.capabilities.typed_columns:
        return tests
    finite_only = not engine.capabilities.stores_non_finite_floats
    if finite_only and column.type in _FLOAT_TYPES:
        # Finite floats pass (x - x is nan for nan and the infinities), as `values` has them.
        tests.append(f"({value}.__class__ is float and {value} - {value} == 0.0)")
    if finite_only and column.type == "decimal":
        # As `values` tests them: through a double, so 1E+400 counts as infinite too.
        tests.append(f"({value}.__class__ is Decimal and isfinite({value}))")
    # Timestamps already zoned as the column wants them: aware values in zone-aware columns
    # where the engine keeps zones, naive ones elsewhere.
    if column.type == "datetime":
        aware = column.timezone and engine.capabilities.zone_aware_timestamps
        zone = "is not None" if aware else "is None"
        tests.append(f"({value}.__class__ is datetime and {value}.tzinfo {zone})")
    return tests


# -- whole columns -------------------------------------------------------------------------
#
# Each function takes a column's values, none None and each of a class it is listed for in
# `_BULK`, and returns what `values` makes of each, or raises ValueError or ArithmeticError
# when some value needs more than the C function does (the column then goes value by value).


def _decimals_of_numbers(values: Sequence[float | int]) -> list[Decimal]:
    # As `values._to_decimal`: a double's shortest text; an int's text is the int.
    return list(map(Decimal, map(repr, values)))


def _decimals_of_text(values: Sequence[str]) -> list[Decimal]:
    return list(map(Decimal, map(str.strip, values)))


def _floats(values: Sequence[float | int]) -> list[float]:
    return list(map(float, values))


def _booleans(values: Sequence[float | int]) -> list[bool]:
    if not _ZERO_ONE.issuperset(values):
        raise ValueError("not only 0 and 1")
    return list(map(bool, values))


def _dates(values: Sequence[str]) -> list[dt.date]:
    return list(map(dt.date.fromisoformat, values))


def _datetimes(values: Sequence[str]) -> list[dt.datetime]:
    return list(map(dt.datetime.fromisoformat, values))


def _aware(values: Sequence[dt.datetime]) -> Sequence[dt.datetime]:
    if None in map(_TZINFO, values):
        raise ValueError("naive timestamps")
    return values


def _naive(values: Sequence[dt.datetime]) -> Sequence[dt.datetime]:
    if any(map(_TZINFO, values)):
        raise ValueError("zone-aware timestamps")
    return values


def _same(values: Sequence[Any]) -> Sequence[Any]:
    return values


def _finite(convert: _ColumnStep) -> _ColumnStep:
    """`convert`, refusing NaN and the infinities, which MySQL/MariaDB cannot store."""

    def finite(values: Sequence[Any]) -> Sequence[Any]:
        converted = convert(values)
        if not all(map(math.isfinite, converted)):
            raise ValueError("not finite")
        return converted

    return finite


_Bulk = list[tuple[frozenset[type], _ColumnStep]]
_NUMBERS = frozenset((int, float))
#: Per portable type: the whole-column functions and the classes each takes, into
#: PostgreSQL and MySQL/MariaDB alike (both keep their results, bar zones and finiteness).
#: A SQLite NUMERIC column holds ints and doubles; a backup's booleans are 0 and 1.
_BULK: dict[str, _Bulk] = {
    "decimal": [(_NUMBERS, _decimals_of_numbers), (frozenset((str,)), _decimals_of_text)],
    "float": [(_NUMBERS, _floats)],
    "double": [(_NUMBERS, _floats)],
    "boolean": [(_NUMBERS, _booleans)],
    "date": [(frozenset((str,)), _dates)],
}


def _bulk(column: ColumnSchema, engine: Engine) -> _Bulk:
    """The whole-column functions of `column` into `engine` (typed engines only: SQLite's
    values go through `values` one by one)."""
    if not engine.capabilities.typed_columns:
        return []
    if column.type == "datetime":
        aware = column.timezone and engine.capabilities.zone_aware_timestamps
        zone = _aware if aware else _naive
        return [
            (frozenset((str,)), lambda values: zone(_datetimes(values))),
            (frozenset((dt.datetime,)), zone),
        ]
    bulk = _BULK.get(column.type, [])
    if engine.capabilities.stores_non_finite_floats:
        return bulk
    if column.type == "decimal":
        bulk = [*bulk, (frozenset((Decimal,)), _same)]
    if column.type in (*_FLOAT_TYPES, "decimal"):
        return [(classes, _finite(convert)) for classes, convert in bulk]
    return bulk
