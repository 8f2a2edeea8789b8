"""References declared in the manifest: foreign keys a source does not declare itself.

Tables written by pandas `to_sql`, CSV imports and most SQLite files carry no constraints, so
`follow` would find nothing to follow. `references:` (on a connection, or on a migration)
names them: `{flights.tailnum: planes.tailnum}`, and for a composite key the columns in
parentheses on both sides: `{order_items.(order_id, line): order_lines.(order_id, line)}`.
This module reads and writes that notation; `migrate/subset.py` follows the references and
`migrate/suggest.py` proposes them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from dsdb_plan.portable import ForeignKeySchema

_IDENTIFIER = r"[^.()\s,][^.(),]*?"
_END = re.compile(
    rf"^\s*(?P<table>{_IDENTIFIER})\s*\.\s*"
    rf"(?:\((?P<columns>[^()]+)\)|(?P<column>{_IDENTIFIER}))\s*$"
)


def parse_end(text: str) -> tuple[str, tuple[str, ...]]:
    """`table.column` or `table.(a, b)` as (table, columns); ValueError when it is neither."""
    match = _END.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not table.column or table.(column, column)")
    if match.group("column") is not None:
        return match.group("table"), (match.group("column"),)
    columns = tuple(part.strip() for part in match.group("columns").split(","))
    if any(not column for column in columns):
        raise ValueError(f"{text!r} names an empty column")
    return match.group("table"), columns


def parse_reference(child: str, parent: str) -> tuple[str, ForeignKeySchema]:
    """One `child: parent` entry as (child table, foreign key); ValueError when malformed."""
    table, columns = parse_end(child)
    ref_table, ref_columns = parse_end(parent)
    if len(columns) != len(ref_columns):
        raise ValueError(
            f"{child}: {parent} pairs {len(columns)} column(s) with {len(ref_columns)}"
        )
    return table, ForeignKeySchema(None, columns, ref_table, ref_columns)


def parse_references(declared: Mapping[str, str]) -> list[tuple[str, ForeignKeySchema]]:
    """Every entry of a `references:` map, in the order written."""
    return [parse_reference(child, parent) for child, parent in declared.items()]


def end_label(table: str, columns: Iterable[str]) -> str:
    """`table.column`, or `table.(a, b)` for several columns: the manifest's notation."""
    names = tuple(columns)
    return f"{table}.{names[0]}" if len(names) == 1 else f"{table}.({', '.join(names)})"


def reference_label(table: str, fk: ForeignKeySchema) -> str:
    """`flights.tailnum → planes.tailnum`."""
    return f"{end_label(table, fk.columns)} → {end_label(fk.ref_table, fk.ref_columns)}"


def check_declared(declared: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """A pydantic validator's body: every entry parses (ValueError names the first that
    does not)."""
    if declared is not None:
        parse_references(declared)
    return declared
