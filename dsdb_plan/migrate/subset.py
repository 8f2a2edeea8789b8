"""Choose what a migration copies: which tables, which columns and which rows of each.

A listed table gives its rows through its filter. `follow` keeps the subset consistent
(issue 4, item 3):

- `parents`: every row the copied rows point to (through a foreign key) is copied as well,
  transitively, so the target has no dangling foreign key. A parent's filter is "its key is
  among the values the copied child rows hold": `(key) IN (SELECT fk FROM child WHERE ...)`,
  OR-combined over every child that points to it.
- `children`: also every row that points to a listed row, transitively (the child's foreign
  key is among the parent's selected keys), and then the parents those rows need.

The foreign keys followed are the source's and the references the manifest declares
(`virtual_keys.py`). A listed table's own rows are its filter and then its sample
(`sample.py`); the columns to mask are resolved here too (`mask.py`), so that a masked key's
partners across foreign keys are masked alike.

Every filter is a condition on the source table, with subqueries over the other tables, so
the copier reads each table with one streamed SELECT and nothing is held in memory. Every
table is built in one `sa.MetaData` from the portable schema, with `PortableType` columns so
that selecting them yields raw driver values.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import sqlalchemy as sa

from dsdb_plan.dbschema import (
    ForeignKeySchema,
    TableSchema,
    connection,
    reflect_tables,
    sort_tables,
)
from dsdb_plan.engines import Engine
from dsdb_plan.errors import PlanError, driver_message
from dsdb_plan.migrate.filters import column_type, compile_where
from dsdb_plan.migrate.mask import Masker, MaskRule, resolve_masks
from dsdb_plan.migrate.sample import sample_condition
from dsdb_plan.migrate.virtual_keys import Unmade, with_references
from dsdb_plan.models import MigrationTable
from dsdb_plan.references import reference_label
from dsdb_plan.typeless import REMEDY, TYPELESS, for_engine, observe

Follow = Literal["none", "parents", "children"]

#: How many subqueries deep a filter may nest. Each foreign key followed nests one level;
#: a cycle of foreign keys between tables (A -> B -> A) would nest forever, and SQLite's
#: parser overflows at about ten levels: fewer where the dangling rows of such a filter are
#: counted under `on_dangling: skip`, which nests the parents' filters once more (seven
#: overflowed, for departments and their heads, staff with a manager and a mentor). Out
#: of budget, a table stands for all its rows: the rows linked to it are then a superset
#: of those needed (never fewer, so nothing dangles and no child is missed), and exact
#: whenever the chains are shorter. A single self-reference (employee -> manager) is
#: followed exactly by a recursive CTE instead.
_MAX_NESTING = 5
#: At most this many subqueries in one table's filter: cycles with several foreign keys
#: grow as (keys ** depth); past it, tables stand for all their rows as above.
_MAX_SUBQUERIES = 64


_REMEDY = f"{REMEDY}; or leave it out of the copy (columns: under the table)"


@dataclass(frozen=True)
class TableSelection:
    """One source table a migration copies, and how.

    `source` has `PortableType` columns: `select_subset` (or any select of them) reads raw
    driver values, as `values.row_converter` expects. `schema` is the table as the target
    should hold it: only the copied columns (`columns`, in source order), and without the
    foreign keys and indexes whose columns are not copied. `key` identifies a row (the
    explicit key, else the primary key; empty when there is neither). `where` is None for
    every row. `reason` says why the table is copied: "listed", "parent of flights via
    flights.carrier", ... joined by "; ".
    """

    name: str
    target: str
    source: sa.Table
    schema: TableSchema
    key: tuple[str, ...]
    where: sa.ColumnElement[bool] | None
    reason: str
    mask: Mapping[str, str] = field(default_factory=dict)
    masker: Masker | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """The copied columns, in the order rows are read and written."""
        return self.schema.column_names

    def narrowed(self, columns: Sequence[str]) -> TableSelection:
        """The same rows, with only `columns` (which must include the key)."""
        schema = self.schema
        kept = tuple(column for column in schema.columns if column.name in columns)
        return replace(self, schema=replace(schema, columns=kept, foreign_keys=(), indexes=()))

    def restricted(self, condition: sa.ColumnElement[bool]) -> TableSelection:
        """The same columns, of only the selected rows that also meet `condition`."""
        where = condition if self.where is None else sa.and_(self.where, condition)
        return replace(self, where=where)

    @property
    def whole_table(self) -> bool:
        """Whether every row and every column, in table order, is copied."""
        return self.where is None and self.columns == tuple(self.source.c.keys())


def select_subset(selection: TableSelection) -> sa.Select[Any]:
    """SELECT the copied columns of the selected rows (raw driver values)."""
    query = sa.select(*(selection.source.c[name] for name in selection.columns))
    return query if selection.where is None else query.where(selection.where)


def count_rows(conn: sa.Connection, selection: TableSelection) -> int:
    """The exact number of rows the selection copies."""
    query = sa.select(sa.func.count()).select_from(selection.source)
    if selection.where is not None:
        query = query.where(selection.where)
    return int(conn.execute(query).scalar_one())


def select_tables(
    engine: sa.Engine | sa.Connection,
    options: Mapping[str, MigrationTable] | None,
    follow: Follow,
    *,
    rename: Mapping[str, str] | None = None,
    source_name: str = "the source database",
    references: Sequence[tuple[str, ForeignKeySchema]] = (),
    mask: Mapping[str, str] | None = None,
    masker: Masker | None = None,
    into: Engine | None = None,
) -> list[TableSelection]:
    """The tables to copy, parents first, with columns, key and row filter of each.

    `options` maps each listed table to its options; None means every table, whole.
    `rename` maps a source table to its target name (a table's `rename_to` also counts).
    `references` are foreign keys the manifest declares, as (child table, key) pairs:
    followed, and created in the target, like declared ones (`with_references`). `mask`
    maps `table.column` or `column` patterns to transforms for every table (after a
    listed table's own `mask`); `masker` applies them (`mask.py`). `into` is the target's
    engine: where its columns are typed, each typeless column takes the type its values
    call for (`typeless.py`), noted in the table's reason. Raises
    PlanError for unknown tables, columns or keys (a table missing from `source_name`, as
    the message calls the source).
    """
    schemas, declared = with_references(
        engine, {schema.name: schema for schema in reflect_tables(engine)}, references
    )
    if options is None:
        options = {name: MigrationTable() for name in schemas}
        follow = "none"  # every row of every table: nothing to add
    _check_listed(options, schemas, source_name, engine)
    metadata = sa.MetaData()
    tables = {
        name: sa.Table(name, metadata, *(sa.Column(c.name, column_type(c)) for c in s.columns))
        for name, s in schemas.items()
    }
    shapes = _parents_hold_keys(
        {name: _shape(schemas[name], options.get(name)) for name in schemas}
    )
    own: dict[str, _Rows] = {
        name: _own_rows(tables[name], shapes[name].key, table) for name, table in options.items()
    }
    _check_sql_where(engine, options, tables, source_name)
    graph = _Graph(schemas, tables, shapes)
    reasons: dict[str, list[str]] = {name: ["listed"] for name in options}
    if follow != "none" and not graph.edges:
        for name in options:
            reasons[name].append(
                f"follow: {follow} found no foreign key between the tables; declare them "
                "under references: (`dsdb references suggest` lists likely ones)"
            )
    phases: list[tuple[str, set[str]]] = []
    if follow == "children":
        phases.append(("down", graph.descendants(set(options), reasons)))
    if follow in ("parents", "children"):
        selected = phases[-1][1] if phases else set(options)
        phases.append(("up", graph.ancestors(selected, reasons)))
    if phases:
        own = graph.filters(own, phases)
    targets = {**{n: o.rename_to for n, o in options.items() if o.rename_to}, **(rename or {})}
    shapes = _parents_copied(shapes, set(own))
    for name, notes in declared.items():
        if name in own:
            shapes[name] = _without_unmade(shapes[name], notes)
    _typed_in(engine, into, shapes, own)
    masks = _masks(shapes, own, options, mask or {}, graph)
    if masks and masker is None:
        raise PlanError("mask needs mask_seed: the secret masked values derive from")
    chosen = sort_tables(shapes[name].schema for name in own)
    selections = [
        TableSelection(
            name=schema.name,
            target=targets.get(schema.name, schema.name),
            source=tables[schema.name],
            schema=schema,
            key=shapes[schema.name].key,
            where=own[schema.name],
            reason="; ".join(reasons[schema.name] + shapes[schema.name].notes),
            mask=masks.get(schema.name, {}),
            masker=masker if schema.name in masks else None,
        )
        for schema in chosen
    ]
    _check_targets(selections)
    return selections


def _typed_in(
    bind: sa.Engine | sa.Connection,
    into: Engine | None,
    shapes: dict[str, _Shape],
    copied: Iterable[str],
) -> None:
    """Give the copied tables' typeless columns the types `into` creates them with, each
    with its reason in the table's notes (updating `shapes`)."""
    if into is None or not into.capabilities.typed_columns:
        return
    names = [n for n in sorted(copied) if any(c.type == TYPELESS for c in shapes[n].schema.columns)]
    if not names:
        return
    with connection(bind) as conn:
        for name in names:
            schema, reasons = for_engine(observe(conn, shapes[name].schema), into, remedy=_REMEDY)
            shapes[name] = replace(
                shapes[name], schema=schema, notes=[*shapes[name].notes, *reasons]
            )


def _masks(
    shapes: dict[str, _Shape],
    copied: Iterable[str],
    options: Mapping[str, MigrationTable],
    everywhere: Mapping[str, str],
    graph: _Graph,
) -> dict[str, dict[str, str]]:
    """Every copied table's masked columns; the plan line of each says which, and how
    (updating `shapes`)."""
    names = sorted(copied)
    rules = {
        name: [
            *(MaskRule(c, t, strict=True) for c, t in _table_mask(options, name).items()),
            *(MaskRule(pattern, t) for pattern, t in everywhere.items()),
        ]
        for name in names
    }
    schemas = {name: shapes[name].schema for name in names}
    masks, linked = resolve_masks(schemas, rules, graph.edges)
    for name in names:
        table = options.get(name)
        cursor = table.incremental.cursor if table and table.incremental else None
        if cursor is not None and cursor in masks.get(name, {}):
            raise PlanError(
                f"mask: {name}.{cursor} is the incremental cursor: its values are recorded "
                "in state, so it cannot be masked"
            )
    for name, columns in masks.items():
        said = ", ".join(
            f"{column} ({how}, like the key it joins)"
            if (name, column) in linked
            else f"{column} ({how})"
            for column, how in columns.items()
        )
        shapes[name] = replace(shapes[name], notes=[*shapes[name].notes, f"masks {said}"])
    return masks


def _table_mask(options: Mapping[str, MigrationTable], name: str) -> Mapping[str, str]:
    table = options.get(name)
    return table.mask if table is not None and table.mask else {}


def _check_sql_where(
    engine: sa.Engine | sa.Connection,
    options: Mapping[str, MigrationTable],
    tables: Mapping[str, sa.Table],
    source_name: str,
) -> None:
    """Run each `sql_where` once on no rows, so that a mistake in it is named as one rather
    than surfacing as a failed read of the subset."""
    conditions = {
        name: condition
        for name, table_options in options.items()
        if (condition := (table_options.sql_where or "").strip())
    }
    if not conditions:
        return
    with connection(engine) as conn:
        for name, condition in conditions.items():
            query = (
                sa.select(sa.literal(1))
                .select_from(tables[name])
                .where(sa.literal_column(f"({condition})"))
                .limit(0)
            )
            try:
                conn.execute(query).close()
            except sa.exc.DBAPIError as error:
                raise PlanError(
                    f"table '{name}': sql_where {condition!r} is refused by {source_name}: "
                    f"{driver_message(error)}"
                ) from None


def _own_rows(table: sa.Table, key: tuple[str, ...], options: MigrationTable) -> _Rows:
    """The rows a listed table selects by itself: its filter, then its sample."""
    rows = compile_where(table, options.where, options.sql_where)
    if options.sample is None:
        return rows
    return sample_condition(table, key, options.sample, rows)


def _without_unmade(shape: _Shape, notes: Sequence[str | Unmade]) -> _Shape:
    """The shape with its reference notes, less the keys the target cannot hold."""
    unmade = {note.fk: note.why for note in notes if isinstance(note, Unmade)}
    kept = tuple(fk for fk in shape.schema.foreign_keys if fk not in unmade)
    said = [note for note in notes if isinstance(note, str)]
    said += [
        f"foreign key {reference_label(shape.schema.name, fk)} followed, not created in the "
        f"target: {why}"
        for fk, why in unmade.items()
        if fk in shape.schema.foreign_keys
    ]
    return _Shape(replace(shape.schema, foreign_keys=kept), shape.key, [*shape.notes, *said])


# -- listed tables, columns and keys --------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """A table as copied: its target schema, key, and notes on what was left out."""

    schema: TableSchema
    key: tuple[str, ...]
    notes: list[str]


def _shape(schema: TableSchema, options: MigrationTable | None) -> _Shape:
    names = schema.column_names
    wanted = set(names)
    if options is not None and options.columns is not None:
        for column in options.columns:
            _check_column(schema, column, "columns")
        wanted = set(options.columns)
    key = tuple(options.key) if options is not None and options.key else schema.primary_key
    for column in key:
        _check_column(schema, column, "key")
    left_out = [column for column in key if column not in wanted]
    if left_out:
        raise PlanError(
            f"table {schema.name!r}: key column {_names(left_out)} must be among the copied columns"
        )
    notes = []
    foreign_keys = []
    for fk in schema.foreign_keys:
        if set(fk.columns) <= wanted:
            foreign_keys.append(fk)
        else:
            notes.append(f"foreign key {_fk_label(schema.name, fk)} dropped: columns not copied")
    shaped = replace(
        schema,
        columns=tuple(column for column in schema.columns if column.name in wanted),
        primary_key=schema.primary_key if set(schema.primary_key) <= wanted else (),
        foreign_keys=tuple(foreign_keys),
        indexes=tuple(index for index in schema.indexes if set(index.columns) <= wanted),
    )
    return _Shape(shaped, key, notes)


def _parents_copied(shapes: dict[str, _Shape], copied: set[str]) -> dict[str, _Shape]:
    """Drop the foreign keys of copied tables to tables the migration does not copy: the
    target may lack the rows they point at, whatever tables it holds."""
    result = dict(shapes)
    for name in copied:
        shape = shapes[name]
        foreign_keys = shape.schema.foreign_keys
        kept = tuple(fk for fk in foreign_keys if fk.ref_table in copied)
        if len(kept) == len(foreign_keys):
            continue
        notes = [
            f"foreign key {_fk_label(name, fk)} dropped: {fk.ref_table} is not copied"
            for fk in foreign_keys
            if fk not in kept
        ]
        schema = replace(shape.schema, foreign_keys=kept)
        result[name] = _Shape(schema, shape.key, [*shape.notes, *notes])
    return result


def _parents_hold_keys(shapes: dict[str, _Shape]) -> dict[str, _Shape]:
    """Drop the foreign keys whose referenced columns the parent does not copy."""
    result = {}
    for name, shape in shapes.items():
        kept, notes = [], list(shape.notes)
        for fk in shape.schema.foreign_keys:
            parent = shapes.get(fk.ref_table)
            if parent is None or set(fk.ref_columns) <= set(parent.schema.column_names):
                kept.append(fk)
            else:
                notes.append(
                    f"foreign key {_fk_label(name, fk)} dropped: {fk.ref_table} does not copy "
                    "the columns it references"
                )
        result[name] = _Shape(replace(shape.schema, foreign_keys=tuple(kept)), shape.key, notes)
    return result


def _check_column(schema: TableSchema, column: str, option: str) -> None:
    if column not in schema.column_names:
        raise PlanError(
            f"{option}: table {schema.name!r} has no column {column!r}"
            + _suggest(column, schema.column_names)
        )


def _check_listed(
    options: Mapping[str, MigrationTable],
    schemas: Mapping[str, Any],
    source_name: str,
    engine: sa.Engine | sa.Connection,
) -> None:
    unknown = sorted(set(options) - set(schemas))
    if not unknown:
        return
    views = sorted(set(unknown) & set(sa.inspect(engine).get_view_names()))
    if views:
        noun = "a view" if len(views) == 1 else "views"
        raise PlanError(
            f"{_names(views)} in {source_name} {'is' if len(views) == 1 else 'are'} {noun}: "
            "a migration copies tables (list the tables the view reads, with a `where`)"
        )
    hints = "".join(_suggest(name, list(schemas)) for name in unknown[:1])
    noun = "table" if len(unknown) == 1 else "tables"
    raise PlanError(f"no {noun} {_names(unknown)} in {source_name}{hints}")


def _check_targets(selections: Sequence[TableSelection]) -> None:
    seen: dict[str, str] = {}
    for selection in selections:
        other = seen.setdefault(selection.target, selection.name)
        if other != selection.name:
            raise PlanError(
                f"tables {other!r} and {selection.name!r} would both be copied to "
                f"{selection.target!r}"
            )


def _suggest(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    if not close:
        close = [n for n in names if n.lower() == name.lower()][:1]
    return f"; did you mean {close[0]!r}?" if close else ""


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _fk_label(table: str, fk: ForeignKeySchema) -> str:
    columns = fk.columns[0] if len(fk.columns) == 1 else f"({', '.join(fk.columns)})"
    return f"{table}.{columns}"


# -- following foreign keys -----------------------------------------------------------------


_Rows = sa.ColumnElement[bool] | None  # None: every row (compile_where's convention)


class _Graph:
    """The foreign keys between tables: which tables to follow, and the filters that do it."""

    def __init__(
        self,
        schemas: Mapping[str, TableSchema],
        tables: Mapping[str, sa.Table],
        shapes: Mapping[str, _Shape],
    ) -> None:
        self.tables = tables
        # (child, fk) for every foreign key that is copied and points inside the database.
        self.edges = [
            (name, fk)
            for name in sorted(schemas)
            for fk in shapes[name].schema.foreign_keys
            if fk.ref_table in schemas
        ]

    def descendants(self, start: set[str], reasons: dict[str, list[str]]) -> set[str]:
        """`start` and every table pointing to one of them, transitively."""
        found = set(start)
        changed = True
        while changed:
            changed = False
            for child, fk in self.edges:
                if fk.ref_table in found and child != fk.ref_table:
                    if child not in found:
                        found.add(child)
                        changed = True
                    why = f"child of {fk.ref_table} via {_fk_label(child, fk)}"
                    known = reasons.setdefault(child, [])
                    if why not in known and "listed" not in known:
                        known.append(why)
        return found

    def ancestors(self, start: set[str], reasons: dict[str, list[str]]) -> set[str]:
        """`start` and every table one of them points to, transitively."""
        found = set(start)
        changed = True
        while changed:
            changed = False
            for child, fk in self.edges:
                if child in found and fk.ref_table != child:
                    if fk.ref_table not in found:
                        found.add(fk.ref_table)
                        changed = True
                    why = f"parent of {child} via {_fk_label(child, fk)}"
                    known = reasons.setdefault(fk.ref_table, [])
                    if why not in known:
                        known.append(why)
        return found

    def filters(
        self, own: Mapping[str, _Rows], phases: Sequence[tuple[str, set[str]]]
    ) -> dict[str, _Rows]:
        """The filter of every table of the last phase.

        `phases` are ("down", tables) — rows pointing to selected rows of a parent — and
        ("up", tables) — rows that selected rows of a child point to — applied in order,
        each on top of the rows the previous one selected (`own` before the first).
        """
        follower = _Follower(self, own, phases)
        return {name: follower.final(name) for name in sorted(phases[-1][1])}


class _Nothing:
    """No row of a table (it is not selected)."""


_NOTHING = _Nothing()
_Found = _Rows | _Nothing


class _Follower:
    """Builds the filters of `_Graph.filters`, within a nesting budget (see _MAX_NESTING)."""

    def __init__(
        self, graph: _Graph, own: Mapping[str, _Rows], phases: Sequence[tuple[str, set[str]]]
    ) -> None:
        self.graph = graph
        self.own = own
        self.phases = phases
        self.subqueries = 0
        self.names = 0

    def final(self, table: str) -> _Rows:
        self.subqueries = 0
        found = self.rows(len(self.phases) - 1, table, _MAX_NESTING)
        return sa.false() if isinstance(found, _Nothing) else found

    def rows(self, phase: int, table: str, budget: int) -> _Found:
        """Rows of `table` selected once phase `phase` is done, in `budget` nested levels."""
        base = self.own.get(table, _NOTHING) if phase < 0 else self.rows(phase - 1, table, budget)
        direction, tables = self.phases[phase] if phase >= 0 else ("", set())
        if base is None or table not in tables:
            return base
        links = self._links(direction, table, tables)
        loops = [fk for fk, other in links if other == table]
        if len(loops) == 1:  # one self-reference: a recursive CTE follows it exactly
            links = [(fk, other) for fk, other in links if other != table]
        if not links and not loops:
            return base
        if budget <= 0 or self.subqueries >= _MAX_SUBQUERIES:
            return None  # out of budget: every row, a superset (see _MAX_NESTING)
        terms = [] if isinstance(base, _Nothing) else [base]
        for fk, other in links:
            linked = self.rows(phase, other, budget - 1)
            if not isinstance(linked, _Nothing):
                self.subqueries += 1
                terms.append(self._link(direction, table, fk, other, linked))
        if not terms:
            return _NOTHING
        found = terms[0] if len(terms) == 1 else sa.or_(*terms)
        if len(loops) == 1:
            found = sa.or_(found, self._closure(direction, table, loops[0], found))
        return found

    def _links(
        self, direction: str, table: str, tables: set[str]
    ) -> list[tuple[ForeignKeySchema, str]]:
        """(fk, other) for every foreign key linking rows of `table` to rows of `other`."""
        if direction == "up":  # table is the parent, other the child holding the fk
            return [(fk, c) for c, fk in self.graph.edges if fk.ref_table == table and c in tables]
        return [
            (fk, fk.ref_table)
            for c, fk in self.graph.edges
            if c == table and fk.ref_table in tables
        ]

    def _link(
        self, direction: str, table: str, fk: ForeignKeySchema, other: str, other_rows: _Rows
    ) -> sa.ColumnElement[bool]:
        """Rows of `table` linked by `fk` to the `other_rows` of `other`."""
        mine, theirs = _ends(direction, fk)
        inner = self.graph.tables[other]
        # correlate(None): a subquery over a table of the enclosing query must keep its own
        # FROM; SQLAlchemy would otherwise correlate it away.
        query = sa.select(*(inner.c[column] for column in theirs)).correlate(None)
        if other_rows is not None:
            query = query.where(other_rows)
        return _in(self.graph.tables[table], mine, query)

    def _closure(
        self, direction: str, table: str, fk: ForeignKeySchema, seed: sa.ColumnElement[bool]
    ) -> sa.ColumnElement[bool]:
        """Rows of `table` linked to the `seed` rows through its self-reference, transitively.

        up (parents): the rows the seed rows point to, their own parents, and so on; down
        (children): the rows pointing to a seed row, their children, and so on. UNION (not
        UNION ALL) ends the recursion on cyclic data.
        """
        mine, theirs = _ends(direction, fk)
        outer = self.graph.tables[table]
        self.names += 1
        start = sa.select(*(outer.c[c].label(f"k{i}") for i, c in enumerate(theirs)))
        found = start.where(seed).cte(f"dsdb_follow_{self.names}", recursive=True, nesting=True)
        step = outer.alias()
        joined = sa.and_(*(step.c[c] == found.c[f"k{i}"] for i, c in enumerate(mine)))
        found = found.union(
            sa.select(*(step.c[c] for c in theirs)).select_from(step.join(found, joined))
        )
        keys = sa.select(*(found.c[f"k{i}"] for i in range(len(theirs)))).correlate(None)
        return _in(outer, mine, keys)


def _ends(direction: str, fk: ForeignKeySchema) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(columns of the table being filtered, columns of the table it is linked to)."""
    if direction == "up":  # the parent's referenced key among the child's fk values
        return fk.ref_columns, fk.columns
    return fk.columns, fk.ref_columns  # the child's fk among the parent's keys


def _in(table: sa.Table, columns: Sequence[str], query: sa.Select[Any]) -> sa.ColumnElement[bool]:
    """`columns IN (query)`, as a row value for several columns (SQLite >= 3.15)."""
    if len(columns) == 1:
        return table.c[columns[0]].in_(query)
    return sa.tuple_(*(table.c[column] for column in columns)).in_(query)
