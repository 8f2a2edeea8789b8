"""The order a table's rows are copied in: by key, or parents first when it points at itself.

Rows go in key order, so each committed batch ends at a known point and a resumed copy
carries on after it. A table with foreign keys to itself (employee -> manager, and -> mentor)
goes parents first instead, into a target that checks keys as each batch commits
(PostgreSQL, MariaDB), which would refuse a row whose parent comes in a later batch: by each
row's depth, then by key. A row's depth is the longest path down to it from a root, a row
that points at no other row (every self-reference NULL, at itself, or at a row not in the
table), so it is greater than the depth of every row it points at through any of its keys.
Depths come from one recursive query over the source table; rows in or below a cycle of
references have none and come last, by key.

`after` and `before` compare sort columns with a point in that order, as a resumed copy
and a range of keys (`diff.py`) need.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from dsdb_plan.dbschema import ForeignKeySchema
from dsdb_plan.engines import Engine, engine_for
from dsdb_plan.migrate.subset import TableSelection

#: The depth of rows in or below a cycle: after every other row.
_UNREACHED = 2**62
#: The most levels a walk over several references goes down. Below a cycle a root reaches,
#: each row would otherwise be walked to the row count (quadratic); one reference cannot
#: lead into a cycle. Rows deeper than this come last, by key, as rows in a cycle do.
DEEPEST_SHARED = 1_000


@dataclass(frozen=True)
class CopyOrder:
    """What to select a table's rows from, and what to sort and resume them by."""

    source: sa.FromClause
    #: Sort columns, compared as the driver returns them (a resume point binds unchanged).
    sort: tuple[sa.ColumnElement[Any], ...]
    #: Each row's depth, selected besides its columns when sorting by it.
    depth: sa.ColumnElement[Any] | None = None


def copy_order(selection: TableSelection, target: Engine) -> CopyOrder:
    """The order to copy `selection` in, into a database of engine `target`."""
    table = selection.source
    key = tuple(raw(table.c[name]) for name in selection.key)
    references = _self_references(selection)
    # A target that checks no keys (SQLite) takes rows in any order; without a key there is
    # no resume point to keep.
    if not references or not target.capabilities.enforces_foreign_keys or not key:
        return CopyOrder(table, key)
    depths = (
        _tree_depths(table, selection.key, references[0])
        if len(references) == 1
        else _depths(table, selection.key, references)
    )
    matched = sa.and_(*(table.c[name] == depths.c[name] for name in selection.key))
    depth = raw(sa.func.coalesce(depths.c.dsdb_depth, _unreached()))
    return CopyOrder(table.outerjoin(depths, matched), (depth, *key), depth)


def _unreached() -> sa.ColumnElement[int]:
    return sa.cast(sa.literal(_UNREACHED), sa.BigInteger)


def _self_references(selection: TableSelection) -> list[ForeignKeySchema]:
    """The table's foreign keys to itself."""
    return [fk for fk in selection.schema.foreign_keys if fk.ref_table == selection.name]


def _tree_depths(table: sa.Table, key: tuple[str, ...], fk: ForeignKeySchema) -> sa.CTE:
    """(key..., dsdb_depth) of every row a root reaches through the table's one reference to
    itself. Each row points at one other at most, so the rows form trees, each row reached
    once, and no walk from a root can enter a cycle: rows in one are simply not reached."""
    pairs = list(zip(fk.columns, fk.ref_columns, strict=True))
    carried = list(dict.fromkeys([*key, *fk.ref_columns]))
    parent, child = table.alias("dsdb_parent"), table.alias("dsdb_child")
    roots = sa.select(
        *(table.c[name] for name in carried),
        sa.cast(sa.literal(0), sa.BigInteger).label("dsdb_depth"),
    ).where(
        sa.or_(
            *(table.c[column].is_(None) for column, _ in pairs),  # a NULL points nowhere
            sa.and_(*(table.c[column] == table.c[ref] for column, ref in pairs)),
            ~sa.exists().where(
                sa.and_(*(parent.c[ref] == table.c[column] for column, ref in pairs))
            ),
        )
    )
    tree = roots.cte("dsdb_tree", recursive=True)
    step = (
        sa.select(*(child.c[name] for name in carried), tree.c.dsdb_depth + 1)
        .select_from(child.join(tree, sa.and_(*(child.c[c] == tree.c[r] for c, r in pairs))))
        .where(sa.not_(sa.and_(*(child.c[column] == child.c[ref] for column, ref in pairs))))
    )
    return tree.union_all(step)


def _depths(
    table: sa.Table, key: tuple[str, ...], references: Sequence[ForeignKeySchema]
) -> sa.CTE:
    """(key..., dsdb_depth) of every row, over several references: the longest path to it
    from a root, or `_UNREACHED` for a row in or below a cycle of references.

    Depths spread down from the roots one step per level; each row keeps the deepest. UNION
    keeps one (key, depth) per row and level, so rows reached along many paths (a diamond)
    cost no more than rows times levels. A path longer than the table has rows goes around
    a cycle, so the walk stops at that many steps (fewer where the server caps recursion):
    the rows it stops at, the rows no root reaches and every row below them are unreached.
    A cycle a root reaches is the costly case: each row below it is walked to that limit,
    at most `DEEPEST_SHARED` steps.
    """
    edges = _edges(table, key, references)
    steps: sa.ColumnElement[int] = sa.func.count()
    if len(references) > 1:
        steps = sa.case((steps > DEEPEST_SHARED, DEEPEST_SHARED), else_=steps)
    limit = sa.select(_WalkLimit(steps).label("n")).select_from(table).cte("dsdb_limit")
    most = sa.select(limit.c.n).scalar_subquery()
    walked = _walk(table, key, edges, most)
    deepest = (
        sa.select(
            *(walked.c[name] for name in key), sa.func.max(walked.c.dsdb_depth).label("dsdb_depth")
        )
        .group_by(*(walked.c[name] for name in key))
        .cte("dsdb_deepest")
    )
    cyclic = _cyclic(table, key, edges, deepest, most)
    # A row in `cyclic` has the depth that sorts it last. Taking the largest per key rather
    # than joining the two keeps PostgreSQL from planning for its estimate of `cyclic`, huge.
    marked = sa.union_all(
        sa.select(deepest),
        sa.select(*(cyclic.c[name] for name in key), _unreached().label("dsdb_depth")),
    ).subquery("dsdb_marked")
    columns = [marked.c[name] for name in key]
    return (
        sa.select(*columns, sa.func.max(marked.c.dsdb_depth).label("dsdb_depth"))
        .group_by(*columns)
        .cte("dsdb_depths")
    )


def _edges(table: sa.Table, key: tuple[str, ...], references: Sequence[ForeignKeySchema]) -> sa.CTE:
    """(child_0..., parent_0...): the key of each row and the key it points at through each
    reference to another row, a row the table may not hold."""
    child = table.alias("dsdb_child")
    edges = [
        _edge(child, table.alias(f"dsdb_parent_{n}"), key, fk) for n, fk in enumerate(references)
    ]
    union = edges[0] if len(edges) == 1 else sa.union_all(*edges)
    return union.cte("dsdb_edge")


def _edge(
    child: sa.FromClause, parent: sa.FromClause, key: tuple[str, ...], fk: ForeignKeySchema
) -> sa.Select[Any]:
    """(child_0..., parent_0...) of the rows pointing at another row through `fk`."""
    source: sa.FromClause = child
    if sorted(fk.ref_columns) == sorted(key):
        # The row holds the key it points at: no join, as a self-reference usually goes.
        holding = dict(zip(fk.ref_columns, fk.columns, strict=True))
        parent_key = [child.c[holding[name]] for name in key]
    else:
        source = child.join(parent, _points_at(child, parent, fk))
        parent_key = [parent.c[name] for name in key]
    itself = sa.and_(*(child.c[name] == end for name, end in zip(key, parent_key, strict=True)))
    return (
        sa.select(
            *(child.c[name].label(f"child_{i}") for i, name in enumerate(key)),
            *(end.label(f"parent_{i}") for i, end in enumerate(parent_key)),
        )
        .select_from(source)
        # A NULL in a reference's columns points nowhere, as a foreign key sees it.
        .where(*(end.is_not(None) for end in parent_key), sa.not_(itself))
    )


def _points_at(
    child: sa.FromClause, parent: sa.FromClause, fk: ForeignKeySchema
) -> sa.ColumnElement[bool]:
    pairs = zip(fk.columns, fk.ref_columns, strict=True)
    return sa.and_(*(child.c[column] == parent.c[ref] for column, ref in pairs))


def _edge_end(
    edges: sa.CTE, end: str, rows: sa.FromClause, key: tuple[str, ...]
) -> sa.ColumnElement[bool]:
    """The `end` ("child" or "parent") of an edge is a row of `rows`."""
    return sa.and_(*(edges.c[f"{end}_{i}"] == rows.c[name] for i, name in enumerate(key)))


def _walk(
    table: sa.Table, key: tuple[str, ...], edges: sa.CTE, bound: sa.ScalarSelect[Any]
) -> sa.CTE:
    """(key..., dsdb_depth) for every path from a root, up to `bound` steps long."""
    pointed = table.alias("dsdb_pointed")
    points_at_a_row = (
        sa.exists()
        .select_from(edges.join(pointed, _edge_end(edges, "parent", pointed, key)))
        .where(_edge_end(edges, "child", table, key))
    )
    roots = sa.select(
        *(table.c[name] for name in key), sa.cast(sa.literal(0), sa.BigInteger).label("dsdb_depth")
    ).where(~points_at_a_row)
    walked = roots.cte("dsdb_walk", recursive=True)
    below = edges.join(walked, _edge_end(edges, "parent", walked, key))
    step = (
        sa.select(*(edges.c[f"child_{i}"] for i in range(len(key))), walked.c.dsdb_depth + 1)
        .select_from(below)
        .where(walked.c.dsdb_depth < bound)
    )
    return walked.union(step)


def _cyclic(
    table: sa.Table,
    key: tuple[str, ...],
    edges: sa.CTE,
    deepest: sa.CTE,
    bound: sa.ScalarSelect[Any],
) -> sa.CTE:
    """(key...) of the rows in or below a cycle: no root reaches them, or the walk from one
    went on to `bound` steps, or they are below such a row."""
    matched = sa.and_(*(deepest.c[name] == table.c[name] for name in key))
    seeds = (
        sa.select(*(table.c[name] for name in key))
        .select_from(table.outerjoin(deepest, matched))
        .where(sa.or_(deepest.c.dsdb_depth.is_(None), deepest.c.dsdb_depth >= bound))
    )
    cyclic = seeds.cte("dsdb_cyclic", recursive=True)
    below = edges.join(cyclic, _edge_end(edges, "parent", cyclic, key))
    step = sa.select(*(edges.c[f"child_{i}"] for i in range(len(key)))).select_from(below)
    return cyclic.union(step)


class _WalkLimit(FunctionElement[int]):
    """The most steps a walk takes: the row count, or less where the server caps recursion."""

    type = sa.BigInteger()
    inherit_cache = True
    name = "dsdb_walk_limit"


@compiles(_WalkLimit)
def _rows(element: _WalkLimit, compiler: SQLCompiler, **kw: Any) -> str:
    rows = compiler.process(element.clauses, **kw)
    cap = engine_for(compiler.dialect).recursion_cap(compiler.dialect)
    # Stopping one short of the engine's own cap, the rows beyond come last.
    return rows if cap is None else f"LEAST({rows}, {cap} - 1)"


def bound(value: Any) -> sa.BindParameter[Any]:
    """A value as the driver returned it, bound unchanged (to compare with a `raw` column)."""
    return sa.bindparam(None, value, type_=sa.types.NullType())


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
    bounds = [bound(value) for value in values]
    return sa.or_(
        *(
            sa.and_(*(key[i] == bounds[i] for i in range(index)), beyond(key[index], bounds[index]))
            for index in range(len(key))
        )
    )
