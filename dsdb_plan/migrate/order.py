"""The order a table's rows are copied in: by key, or parents first when it points at itself.

Rows go in key order, so each committed batch ends at a known point and a resumed copy
carries on after it. A table with one foreign key to itself (employee -> manager) goes
parents first instead, into a target that checks keys as each batch commits (PostgreSQL,
MariaDB), which would refuse a row whose parent comes in a later batch: by each row's depth
below a row that points at no other row, then by key. Depths come from a recursive query
over the source table; rows it cannot reach (a cycle of references) come last, by key.

`after` and `before` compare sort columns with a point in that order, as a resumed copy
and a range of keys (`diff.py`) need.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dsdb_plan.dbschema import ForeignKeySchema
from dsdb_plan.migrate.subset import TableSelection

#: The depth of rows the recursive query does not reach: after every row it does.
_UNREACHED = 2**62


@dataclass(frozen=True)
class CopyOrder:
    """What to select a table's rows from, and what to sort and resume them by."""

    source: sa.FromClause
    #: Sort columns, compared as the driver returns them (a resume point binds unchanged).
    sort: tuple[sa.ColumnElement[Any], ...]
    #: Each row's depth, selected besides its columns when sorting by it.
    depth: sa.ColumnElement[Any] | None = None


def copy_order(selection: TableSelection, target_dialect: str) -> CopyOrder:
    """The order to copy `selection` in, into a database of `target_dialect`."""
    table = selection.source
    key = tuple(raw(table.c[name]) for name in selection.key)
    reference = _self_reference(selection)
    # SQLite checks no keys while loading; without a key there is no resume point to keep.
    if reference is None or target_dialect == "sqlite" or not key:
        return CopyOrder(table, key)
    depths = _depths(table, selection.key, reference)
    matched = sa.and_(*(table.c[name] == depths.c[name] for name in selection.key))
    depth = raw(sa.func.coalesce(depths.c.depth, _UNREACHED))
    return CopyOrder(table.outerjoin(depths, matched), (depth, *key), depth)


def _self_reference(selection: TableSelection) -> ForeignKeySchema | None:
    """The table's one foreign key to itself, if it has exactly one (two could disagree)."""
    keys = [fk for fk in selection.schema.foreign_keys if fk.ref_table == selection.name]
    return keys[0] if len(keys) == 1 else None


def _depths(table: sa.Table, key: tuple[str, ...], fk: ForeignKeySchema) -> sa.CTE:
    """(key..., depth) of every row reachable from a row that points at no other row."""
    pairs = list(zip(fk.columns, fk.ref_columns, strict=True))
    carried = list(dict.fromkeys([*key, *fk.ref_columns]))
    parent, child = table.alias("dsdb_parent"), table.alias("dsdb_child")
    roots = sa.select(
        *(table.c[name] for name in carried), sa.cast(sa.literal(0), sa.BigInteger).label("depth")
    ).where(
        sa.or_(
            *(table.c[column].is_(None) for column, _ in pairs),  # a NULL points nowhere
            sa.and_(*(table.c[column] == table.c[ref] for column, ref in pairs)),
            ~sa.exists().where(
                sa.and_(*(parent.c[ref] == table.c[column] for column, ref in pairs))
            ),
        )
    )
    tree = roots.cte("dsdb_depth", recursive=True)
    step = (
        sa.select(*(child.c[name] for name in carried), tree.c.depth + 1)
        .select_from(child.join(tree, sa.and_(*(child.c[c] == tree.c[r] for c, r in pairs))))
        .where(sa.not_(sa.and_(*(child.c[column] == child.c[ref] for column, ref in pairs))))
    )
    return tree.union_all(step)


def raw(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The column compared as the driver stores it, so raw resume values bind unchanged."""
    return sa.type_coerce(column, sa.types.NullType())


def after(key: Sequence[sa.ColumnElement[Any]], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """key > values, the two compared as rows (`key` raw, `values` as the driver has them)."""
    return _compare(key, values, operator.gt)


def before(key: Sequence[sa.ColumnElement[Any]], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """key < values, the two compared as rows (`key` raw, `values` as the driver has them)."""
    return _compare(key, values, operator.lt)


def _compare(
    key: Sequence[sa.ColumnElement[Any]],
    values: Sequence[Any],
    beyond: Callable[[Any, Any], sa.ColumnElement[bool]],
) -> sa.ColumnElement[bool]:
    # (a, b) > (x, y) written as a > x OR (a = x AND b > y): every dialect understands it.
    bound = [sa.bindparam(None, value, type_=sa.types.NullType()) for value in values]
    return sa.or_(
        *(
            sa.and_(*(key[i] == bound[i] for i in range(index)), beyond(key[index], bound[index]))
            for index in range(len(key))
        )
    )
