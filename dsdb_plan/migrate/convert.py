"""Row conversion at copy speed: `values.row_converter`, skipped where it changes nothing.

Most values already have the Python type their column's portable type means (an int in an
integer column, a str in a text column), and for those `values` returns them unchanged. A
row function is generated once per table that tests each value's type inline and calls the
`values` conversion only for the others (dates stored as text, booleans as 0/1, ...): the
per-row cost is then close to building the tuple, which the benchmarks need (issue 4,
item 6). The results are identical to `values.row_converter` by construction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from dsdb_plan.dbschema import ColumnSchema, TableSchema
from dsdb_plan.values import row_converter

RowConverter = Callable[[Sequence[Any]], tuple[Any, ...]]
#: Python types `values` passes through unchanged, per portable type. Floats are left out
#: for MySQL/MariaDB, which cannot store NaN or infinities and must be told by `values`.
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


def fast_row_converter(table: TableSchema, source: str, target: str) -> RowConverter:
    """A function making one source row ready for `target`, equal to `values.row_converter`."""
    full = row_converter(table, source, target)
    if full is tuple:
        return tuple
    slow = [_one(column, table, source, target) for column in table.columns]
    terms = []
    for index, column in enumerate(table.columns):
        passing = _PASS.get(column.type, ())
        if target in ("mysql", "mariadb") and column.type in ("float", "double"):
            passing = ()
        check = " or ".join(f"v{index}.__class__ is {name}" for name in passing)
        keep = f"v{index} is None" + (f" or {check}" if check else "")
        terms.append(f"(v{index} if {keep} else c{index}(v{index}))")
    names = ", ".join(f"v{index}" for index in range(len(table.columns)))
    source_code = f"def convert(row):\n    {names}, = row\n    return ({', '.join(terms)},)\n"
    scope: dict[str, Any] = {f"c{index}": convert for index, convert in enumerate(slow)}
    exec(compile(source_code, f"<converter of {table.name!r}>", "exec"), scope)
    converter: RowConverter = scope["convert"]
    return converter


def _one(
    column: ColumnSchema, table: TableSchema, source: str, target: str
) -> Callable[[Any], Any]:
    alone = row_converter(dataclasses.replace(table, columns=(column,)), source, target)

    def convert(value: Any) -> Any:
        return alone((value,))[0]

    return convert
