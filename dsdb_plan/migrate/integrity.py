"""Referential integrity of a migration's subset: rows whose reference points at no copied row.

A source that does not enforce its foreign keys (SQLite by default) holds rows that point
nowhere; a subset can also leave out the row a copied one points at. Copied as they are,
such rows fail the target's foreign key half-way through an apply. So the plan counts them,
per foreign key among the copied tables (the keys `subset.select_tables` kept, which are the
ones `follow` follows), in SQL run by the source: the child's selected rows whose reference
is in none of the parent's selected rows. A NULL in any column of the reference is not
dangling, as for the databases' own (MATCH SIMPLE) foreign keys.

The migration's `on_dangling` policy decides what happens to them (issue 12, item 3):

- ``refuse`` (the default): the plan fails, naming table, key, count and a few values.
- ``skip``: each table's rows are restricted to those whose references resolve within the
  parents' (restricted) rows, parents first, so the rows pointing at a skipped row are
  skipped too. The restriction is a filter on every foreign key, whatever the data holds,
  so plan, apply and verify select the same rows without counting first.
- ``keep``: the rows are copied and the foreign keys they break are left out of the tables
  dsdb creates; the plan says so. (PostgreSQL's ``NOT VALID`` would still check every row a
  later resync inserts, so it would fail the next apply instead of this one.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.util import ClauseAdapter

from dsdb_plan.dbschema import ForeignKeySchema, TableSchema, reflect_foreign_keys
from dsdb_plan.engines import engine_for
from dsdb_plan.migrate.subset import TableSelection
from dsdb_plan.payloads import Dangling, key_columns

#: How many dangling values the plan names per foreign key.
EXAMPLES = 3


def references(
    selections: Sequence[TableSelection],
) -> Iterator[tuple[TableSelection, ForeignKeySchema, TableSelection]]:
    """(child, foreign key, parent) for every foreign key between copied tables."""
    by_name = {selection.name: selection for selection in selections}
    for child in selections:
        for fk in child.schema.foreign_keys:
            parent = by_name.get(fk.ref_table)
            if parent is not None:
                yield child, fk, parent


def resolves(
    child: TableSelection, fk: ForeignKeySchema, parent: TableSelection, dialect: sa.Dialect
) -> sa.ColumnElement[bool]:
    """A condition on `child` rows: the reference through `fk` is NULL or names a selected
    row of `parent` (in `dialect`'s SQL)."""
    held, found = _found(child, fk, parent, dialect)
    return sa.or_(*(column.is_(None) for column in held), found)


def _dangles(
    child: TableSelection, fk: ForeignKeySchema, parent: TableSelection, dialect: sa.Dialect
) -> sa.ColumnElement[bool]:
    """The negation of `resolves`, spelled so that PostgreSQL runs it as an anti-join (it
    does not under `NOT (x IS NULL OR EXISTS …)`: twice as slow on a million rows)."""
    held, found = _found(child, fk, parent, dialect)
    return sa.and_(*(column.is_not(None) for column in held), sa.not_(found))


def _found(
    child: TableSelection, fk: ForeignKeySchema, parent: TableSelection, dialect: sa.Dialect
) -> tuple[list[sa.ColumnElement[Any]], sa.ColumnElement[bool]]:
    """The child's reference columns, and a condition that their (non-NULL) values name a
    selected row of `parent`. The parent's rows are read through an alias of its table (so
    a table referencing itself looks itself up), with EXISTS or, where the engine says so
    (`looks_up_by_membership`), IN: SQLite runs a correlated EXISTS as a scan of the parent
    per row when the referenced columns have no index (a million rows: hours), and
    PostgreSQL runs `NOT (x IN (subquery))` as a scan of every key per row once the keys
    outgrow work_mem."""
    held: list[sa.ColumnElement[Any]] = [child.source.c[column] for column in fk.columns]
    rows = parent.source.alias()
    refs = [rows.c[ref] for ref in fk.ref_columns]
    selected = [] if parent.where is None else [ClauseAdapter(rows).traverse(parent.where)]
    if engine_for(dialect).capabilities.looks_up_by_membership:
        # A NULL among the keys would make IN unknown, not false, for the rows it lacks.
        keys = sa.select(*refs).where(*selected, *(ref.is_not(None) for ref in refs))
        inside = held[0].in_(keys) if len(held) == 1 else sa.tuple_(*held).in_(keys)
        return held, inside
    named = [ref == column for ref, column in zip(refs, held, strict=True)]
    found: sa.ColumnElement[bool] = sa.exists().where(*named, *selected)
    return held, found


def count_dangling(
    conn: sa.Connection, selections: Sequence[TableSelection], examples: int = EXAMPLES
) -> list[Dangling]:
    """The dangling references of `selections`, one entry per foreign key that has any."""
    found = []
    for child, fk, parent in references(selections):
        rows = _dangles(child, fk, parent, conn.dialect)
        if child.where is not None:
            rows = sa.and_(child.where, rows)
        count = sa.select(sa.func.count()).select_from(child.source).where(rows)
        total = int(conn.execute(count).scalar_one())
        if not total:
            continue
        # An original value of a masked column must not reach the plan: count, show none.
        masked = tuple(column for column in fk.columns if column in child.mask)
        held = [child.source.c[column] for column in fk.columns]
        sample = sa.select(*held).where(rows).distinct().order_by(*held).limit(examples + 1)
        values = (
            []
            if masked
            else [
                repr(row[0]) if len(row) == 1 else repr(tuple(row)) for row in conn.execute(sample)
            ]
        )
        found.append(
            Dangling(
                child.name,
                fk.columns,
                fk.ref_table,
                fk.ref_columns,
                total,
                tuple(values[:examples]),
                more=len(values) > examples,
                masked=masked,
            )
        )
    return found


def resolved_only(
    selections: Sequence[TableSelection], dialect: sa.Dialect
) -> list[TableSelection]:
    """`selections` without the rows whose references do not resolve (`skip`), in
    `dialect`'s SQL.

    Parents come first, so each child is restricted to the rows its already restricted
    parents hold. A single reference of a table to itself (staff → boss) is followed
    through a recursive query: a row is skipped when any row above it is. Several such
    references, or a reference to a later table (a cycle), are checked against that
    table's unrestricted rows: `count_dangling` on the result tells whether that left any
    row pointing at a skipped one.
    """
    done: dict[str, TableSelection] = {}
    for selection in selections:
        by_name = {**{s.name: s for s in selections}, **done}
        keys = [fk for fk in selection.schema.foreign_keys if fk.ref_table in by_name]
        loops = [fk for fk in keys if fk.ref_table == selection.name]
        followed = loops if len(loops) == 1 else []
        conditions = [
            resolves(selection, fk, by_name[fk.ref_table], dialect)
            for fk in keys
            if fk not in followed
        ]
        if followed:
            fk = followed[0]
            above = _above_resolves(selection, fk, conditions, dialect)
            conditions += [resolves(selection, fk, selection, dialect), above]
        done[selection.name] = (
            selection.restricted(sa.and_(*conditions)) if conditions else selection
        )
    return [done[selection.name] for selection in selections]


def _above_resolves(
    selection: TableSelection,
    fk: ForeignKeySchema,
    others: Sequence[sa.ColumnElement[bool]],
    dialect: sa.Dialect,
) -> sa.ColumnElement[bool]:
    """A condition on `selection`'s rows, besides `others` and `fk` resolving: the chain
    of rows above through its reference to itself `fk` holds no skipped row. Skipped are
    the selected rows that fail `others` or whose `fk` does not resolve within the
    selection, and, recursively, the rows pointing at a skipped one (UNION ends the
    recursion on cyclic data)."""
    table = selection.source
    ok = sa.and_(resolves(selection, fk, selection, dialect), *others)
    seed = sa.not_(ok) if selection.where is None else sa.and_(selection.where, sa.not_(ok))
    ref = [table.c[column] for column in fk.ref_columns]
    start = sa.select(*(c.label(f"k{i}") for i, c in enumerate(ref))).where(
        seed, *(c.is_not(None) for c in ref)
    )
    name = f"dsdb_skipped_{selection.name}"
    skipped = start.cte(name, recursive=True, nesting=True)
    step = table.alias()
    joined = sa.and_(*(step.c[column] == skipped.c[f"k{i}"] for i, column in enumerate(fk.columns)))
    skipped = skipped.union(
        sa.select(*(step.c[column] for column in fk.ref_columns))
        .select_from(step.join(skipped, joined))
        .where(*(step.c[column].is_not(None) for column in fk.ref_columns))
    )
    below = sa.select(*(skipped.c[f"k{i}"] for i in range(len(ref)))).correlate(None)
    held = [table.c[column] for column in fk.columns]
    inside = held[0].in_(below) if len(held) == 1 else sa.tuple_(*held).in_(below)
    return sa.or_(*(column.is_(None) for column in held), sa.not_(inside))


def unbroken_keys(table: TableSchema, dangling: Sequence[Dangling]) -> tuple[ForeignKeySchema, ...]:
    """The foreign keys of `table` that no `dangling` rows break."""
    broken = {(d.table, d.columns, d.ref_table) for d in dangling}
    return tuple(
        fk for fk in table.foreign_keys if (table.name, fk.columns, fk.ref_table) not in broken
    )


def without_keys(
    selections: Sequence[TableSelection], dangling: Sequence[Dangling]
) -> list[TableSelection]:
    """`selections` without the foreign keys that `dangling` rows break (`keep`): tables
    dsdb creates get no such key, and the table's plan line says why."""
    result = []
    for selection in selections:
        keys = selection.schema.foreign_keys
        kept = unbroken_keys(selection.schema, dangling)
        if len(kept) == len(keys):
            result.append(selection)
            continue
        notes = [
            f"foreign key {selection.name}.{key_columns(fk.columns)} left out: rows point at no "
            f"copied {fk.ref_table} row (on_dangling: keep)"
            for fk in keys
            if fk not in kept
        ]
        schema = dataclasses.replace(selection.schema, foreign_keys=kept)
        reason = "; ".join([selection.reason, *notes])
        result.append(dataclasses.replace(selection, schema=schema, reason=reason))
    return result


def enforced_in_target(
    target: sa.Connection, selections: Sequence[TableSelection], dangling: Sequence[Dangling]
) -> list[str]:
    """The dangling references `keep` cannot copy, a line each: the target table exists
    already and enforces that foreign key, so the copy would fail on the first such row.
    (SQLite checks no foreign key on dsdb's connections.)"""
    if not engine_for(target.dialect).capabilities.enforces_foreign_keys:
        return []
    tables = {selection.name: selection.target for selection in selections}
    existing = set(sa.inspect(target).get_table_names())
    lines = []
    for d in dangling:
        name = tables[d.table]
        if name in existing and any(
            fk.columns == d.columns for fk in reflect_foreign_keys(target, name)
        ):
            lines.append(f"{d.describe()}, into {name}, whose foreign key refuses them")
    return lines


def refusal(dangling: Sequence[Dangling], address: str) -> str:
    """The plan error for dangling references under `refuse`."""
    lines = "; ".join(d.describe() for d in dangling)
    return (
        f"{address}: references that would dangle in the target: {lines}; set `on_dangling: "
        "skip` to leave those rows out, or `on_dangling: keep` to copy them without that key"
    )
