"""The target table of a migration: check that it can hold the data, create or evolve it.

`inspect_target` only reads (the planner calls it); `ensure_target` creates a missing table
(without secondary indexes, which load faster afterwards) or adds the columns the source
gained; `finish_target` runs after the load: indexes, foreign keys whose parent now exists,
and identity/serial/AUTO_INCREMENT counters moved past the copied keys so the application's
next insert does not collide (issue 4, item 4).

Types come from `dbschema.target_type`: SQLite REAL becomes DOUBLE PRECISION (never `real`),
timestamps keep microseconds and zones, decimals their precision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa

from dsdb_plan.dbschema import (
    Bind,
    ColumnSchema,
    ForeignKeySchema,
    IndexSchema,
    TableSchema,
    add_foreign_keys,
    advance_sequences,
    connection,
    create_indexes,
    create_tables,
    reflect_tables,
    target_type,
    transaction,
)
from dsdb_plan.engines import Engine, engine_for
from dsdb_plan.engines.base import NUMERIC_TYPES
from dsdb_plan.errors import PlanError
from dsdb_plan.migrate.subset import TableSelection
from dsdb_plan.plan import counted
from dsdb_plan.typeless import TYPELESS

SchemaChanges = Literal["evolve", "strict"]
KnownTables = Collection[str] | Mapping[str, str]

_INTEGER_RANK = {"smallint": 1, "boolean": 1, "integer": 2, "bigint": 3}
_INTEGER_DIGITS = {"smallint": 5, "boolean": 1, "integer": 10, "bigint": 19}
_TEXT = frozenset({"text", "varchar"})
#: Target types any value of the source type fits in, beside the same type and text.
_HOLDS: dict[str, frozenset[str]] = {
    "float": frozenset({"float", "double"}),
    "double": frozenset({"double"}),
    "date": frozenset({"date", "datetime"}),
    "time": frozenset({"time"}),
    "datetime": frozenset({"datetime"}),
    "json": frozenset({"json"}),
    "uuid": frozenset({"uuid"}),
    "binary": frozenset({"binary"}),
}


@dataclass(frozen=True)
class TargetCheck:
    """What the target database holds for one selected table.

    `incompatible` and `problems` are messages naming the table and columns; `problems` is
    every reason the copy cannot go ahead (incompatibilities, and under `strict` the columns
    the target lacks), so a plan fails when it is not empty.
    """

    exists: bool
    missing_columns: tuple[str, ...] = ()
    incompatible: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    #: What a new table leaves out that the source has (defaults this engine cannot write).
    notes: tuple[str, ...] = ()


def inspect_target(
    target_engine: Bind,
    selection: TableSelection,
    *,
    schema_changes: SchemaChanges,
    source: Bind | None = None,
) -> TargetCheck:
    """Compare the target table (if any) with what the selection will copy; read-only.

    With the `source` database, text for the target's bounded columns (an existing table's
    `varchar(n)`, or what a new table would get) is measured there, over the subset: text
    too long to fit is a problem naming its length and the column's limit.
    """
    label = f"table {selection.target!r}"
    with connection(target_engine) as conn:
        engine = engine_for(conn.dialect)
        if selection.target not in sa.inspect(conn).get_table_names():
            bounds = _new_table_bounds(engine, selection)
            too_long = _too_long(source, selection, bounds, label) if source is not None else []
            inexact = (
                _inexact_decimals(source, selection, selection.schema, label)
                if source is not None and engine.capabilities.typed_columns
                else []
            )
            notes = _defaults_left_out(engine, selection.schema)
            unheld = unheld_columns(engine, selection)
            return TargetCheck(False, problems=(*unheld, *too_long, *inexact), notes=notes)
        (existing,) = reflect_tables(conn, [selection.target])
        merged = _merging_collations(conn, engine, existing, selection, label)
    present = set(existing.column_names)
    missing = tuple(name for name in selection.columns if name not in present)
    incompatible: list[str] = []
    missing_keys = [name for name in selection.key if name in missing]
    if missing_keys:
        what = _columns("key column", missing_keys)
        incompatible.append(f"{label}: {what} missing in the target")
    for name in selection.columns:
        if name not in present:
            continue
        copied, held = selection.schema.column(name), existing.column(name)
        if engine.capabilities.typed_columns:
            reason = _cannot_hold(copied, held)
        else:  # SQLite stores any value in any column, by the column's affinity
            reason = _affinity_changes(copied, held)
        if reason:
            incompatible.append(f"{label}: column {name!r} {reason}")
    required = [
        column.name
        for column in existing.columns
        if column.name not in selection.columns
        and not column.nullable
        and column.default is None
        and not column.autoincrement
    ]
    if required:
        incompatible.append(
            f"{label}: {_columns('column', required)} "
            f"{'is' if len(required) == 1 else 'are'} NOT NULL without a default in the "
            "target but not copied"
        )
    if selection.key and not missing_keys and not _is_unique(existing, selection.key):
        incompatible.append(
            f"{label}: no primary key or unique index on {_names(selection.key)} in the target "
            "(rows are matched by that key)"
        )
    incompatible += merged
    if source is not None and engine.capabilities.typed_columns:
        bounds = {
            name: column.length
            for name in selection.columns
            if name in present
            and (column := existing.column(name)).type == "varchar"
            and column.length is not None
        }
        incompatible += _too_long(source, selection, bounds, label)
        incompatible += _inexact_decimals(source, selection, existing, label)
    problems = list(incompatible)
    if missing and schema_changes == "strict":
        problems.append(
            f"{label}: {_columns('column', missing)} in the source but not in the target "
            f"(schema: strict; `evolve` would add {'them' if len(missing) > 1 else 'it'})"
        )
    return TargetCheck(True, missing, tuple(incompatible), tuple(problems))


def ensure_target(
    target_engine: Bind,
    selection: TableSelection,
    check: TargetCheck,
    *,
    known_tables: KnownTables = (),
) -> None:
    """Create the target table, or add its missing columns; refuse when `check` has problems.

    A new table gets the copied columns, its primary key (or a unique index on the key when
    the key is not the primary key: rows are matched by it) and the foreign keys whose parent
    exists in the target or is the table itself; keys to parents in `known_tables` (target
    names, or a source → target name map) that do not exist yet wait for `finish_target`, as
    every key does where checking it after the load is faster (`keys_faster_after_load`).
    Missing columns are added as nullable: the rows already there have no value for them.
    """
    if check.problems:
        raise PlanError("; ".join(check.problems))
    with transaction(target_engine) as conn:
        if not check.exists:
            _create(conn, selection, known_tables)
            return
        for name in check.missing_columns:
            column = selection.schema.column(name)
            sql_type = target_type(column, conn.dialect.name)
            preparer = conn.dialect.identifier_preparer
            conn.exec_driver_sql(
                f"ALTER TABLE {preparer.quote_identifier(selection.target)} ADD COLUMN "
                f"{preparer.quote_identifier(name)} {sql_type.compile(dialect=conn.dialect)}"
            )


def finish_target(
    target_engine: Bind,
    selection: TableSelection,
    *,
    known_tables: KnownTables = (),
    created: bool = True,
) -> None:
    """After loading: advance sequences and, in a table dsdb `created`, create the indexes
    and foreign keys it lacks. A table dsdb did not create keeps its own as they are.

    Idempotent: indexes already present, and keys whose columns already reference a table,
    are skipped, so it may be called again once the parents of a foreign-key cycle exist.
    """
    with transaction(target_engine) as conn:
        (existing,) = reflect_tables(conn, [selection.target])
        if not created:
            advance_sequences(conn, existing)
            return
        have = {(index.columns, index.unique) for index in existing.indexes}
        if existing.primary_key:
            have.add((existing.primary_key, True))
        todo = tuple(
            index for index in selection.schema.indexes if (index.columns, index.unique) not in have
        )
        if todo:
            shaped = dataclasses.replace(selection.schema, indexes=todo)
            create_indexes(conn, [shaped], rename={shaped.name: selection.target})
        if engine_for(conn.dialect).capabilities.adds_constraints_later:
            names = _target_names(known_tables)
            tables = set(sa.inspect(conn).get_table_names())
            linked = {fk.columns for fk in existing.foreign_keys}
            keys = [
                fk
                for fk in selection.schema.foreign_keys
                if fk.columns not in linked and names.get(fk.ref_table, fk.ref_table) in tables
            ]
            if keys:
                add_foreign_keys(
                    conn,
                    [(selection.schema, fk) for fk in keys],
                    rename={selection.schema.name: selection.target, **_renamed(names, keys)},
                )
        advance_sequences(conn, existing)


def _create(conn: sa.Connection, selection: TableSelection, known_tables: KnownTables) -> None:
    names = _target_names(known_tables)
    tables = set(sa.inspect(conn).get_table_names())
    shaped = selection.schema
    # Keys to tables not there yet, and to this table itself (a row may point at one in a
    # later batch), are added after the load (`finish_target`), which checks them all at
    # once; so are all keys where that is much faster than checking each row as it loads.
    # SQLite cannot add a key later, and does not check keys while loading. DuckDB can do
    # neither: there a key to a table not created yet (one closing a cycle) is left out.
    capabilities = engine_for(conn.dialect).capabilities
    inline = not capabilities.adds_constraints_later
    ahead = inline and capabilities.references_later_tables
    now = not capabilities.keys_faster_after_load
    keys = tuple(
        fk
        for fk in shaped.foreign_keys
        if (inline and fk.ref_table == shaped.name)
        or (ahead and fk.ref_table in names)
        or (now and fk.ref_table != shaped.name and names.get(fk.ref_table, fk.ref_table) in tables)
    )
    table = dataclasses.replace(shaped, foreign_keys=keys, indexes=())
    rename = {shaped.name: selection.target, **_renamed(names, keys)}
    # Indexes and the keys left out are added after loading; their columns need a type an
    # index can hold from the start (MariaDB indexes unbounded text only by a hash, which no
    # foreign key can reference).
    keyed = {shaped.name: shaped.keyed_columns() | set(selection.key)}
    create_tables(conn, [table], rename=rename, with_indexes=False, keyed=keyed)
    if selection.key and tuple(selection.key) != shaped.primary_key:
        unique = IndexSchema(None, tuple(selection.key), unique=True)
        create_indexes(conn, [dataclasses.replace(table, indexes=(unique,))], rename=rename)


def unheld_columns(engine: Engine, selection: TableSelection) -> list[str]:
    """A message for each selected column a new table in `engine` cannot be created with."""
    return [
        f"table {selection.target!r}: {reason}"
        for column in selection.schema.columns
        if (reason := engine.cannot_hold(column))
    ]


def keys_left_out(
    engine: Engine, selections: Sequence[TableSelection], existing: Collection[str]
) -> dict[str, list[str]]:
    """A note, by table, for each foreign key a table the migration creates in `engine` will
    lack: where a key can neither be added after the load nor name a table not created yet
    (DuckDB), a key to a table copied later (one closing a cycle) is left out (`_create`).
    `selections` are in copy order; `existing` names the target's tables already there."""
    capabilities = engine.capabilities
    if capabilities.adds_constraints_later or capabilities.references_later_tables:
        return {}
    targets = {selection.name: selection.target for selection in selections}
    earlier: set[str] = set()
    notes: dict[str, list[str]] = {}
    for selection in selections:
        if selection.target not in existing:
            for fk in selection.schema.foreign_keys:
                parent = targets.get(fk.ref_table, fk.ref_table)
                if fk.ref_table in earlier | {selection.name} or parent in existing:
                    continue
                columns = ", ".join(fk.columns)
                notes.setdefault(selection.name, []).append(
                    f"foreign key ({columns}) to {fk.ref_table} left out: {engine.name} cannot "
                    "make a key to a table created after its own (the tables' keys form a cycle)"
                )
        earlier.add(selection.name)
    return notes


def _target_names(known_tables: KnownTables) -> dict[str, str]:
    if isinstance(known_tables, Mapping):
        return dict(known_tables)
    return {name: name for name in known_tables}


def _renamed(names: Mapping[str, str], keys: Collection[ForeignKeySchema]) -> dict[str, str]:
    return {fk.ref_table: names[fk.ref_table] for fk in keys if fk.ref_table in names}


def _affinity_changes(source: ColumnSchema, target: ColumnSchema) -> str | None:
    """Why a column of an engine without typed columns (SQLite) would change the storage
    class of values of a typeless `source` column (a TEXT column stores 1 as '1'), or None."""
    if source.type != TYPELESS or target.type == TYPELESS:
        return None
    return (
        f"is {_describe(target)} in the target but has no declared type in the source: "
        "the target's type would change some values' storage classes (1 into '1'); "
        "drop the target table for one without a type"
    )


def _cannot_hold(source: ColumnSchema, target: ColumnSchema) -> str | None:
    """Why a `target` column cannot hold every value of `source`, or None when it can."""
    what = f"is {_describe(target)} in the target but {_describe(source)} in the source"
    kind, into = source.type, target.type
    if into in _TEXT:
        # A number written as text is no longer a number: verification tells them apart
        # (`digest._CHANGED`), so the plan refuses it first.
        if kind == "binary" or kind in NUMERIC_TYPES:
            return what
        if into == "varchar" and target.length is not None:
            longest = _longest_text(source)
            if longest is not None and longest > target.length:
                return what
        return None
    if kind in _INTEGER_RANK:
        if into in _INTEGER_RANK and into != "boolean":
            # A narrower integer is accepted: SQLite declares no width (every INTEGER reads
            # as bigint), and a value that does not fit is refused by the database, loudly.
            return None
        if into == "boolean":
            return None if kind == "boolean" else what
        if into == "decimal":
            digits = _INTEGER_DIGITS[kind]
            fits = target.precision is None or target.precision - (target.scale or 0) >= digits
            return None if fits else what
        if into == "double" and kind != "bigint":
            return None
        return what
    if kind == "decimal":
        if into == "decimal":
            if target.precision is None or source.precision is None:
                return None
            whole = source.precision - (source.scale or 0)
            fits = target.precision - (target.scale or 0) >= whole and (target.scale or 0) >= (
                source.scale or 0
            )
            return None if fits else what
        return what
    if kind in _TEXT:
        return what  # text only fits text
    return None if into == kind or into in _HOLDS.get(kind, frozenset()) else what


def _new_table_bounds(engine: Engine, selection: TableSelection) -> dict[str, int]:
    """The length limit of each text column a new table would get in `engine` (MariaDB bounds
    the unbounded text it must index)."""
    keyed = selection.schema.keyed_columns() | set(selection.key)
    bounds = {}
    for column in selection.schema.columns:
        if column.type in _TEXT:
            length = getattr(engine.column_type(column, keyed=column.name in keyed), "length", None)
            if isinstance(length, int):
                bounds[column.name] = length
    return bounds


def _too_long(
    source: Bind, selection: TableSelection, bounds: Mapping[str, int], label: str
) -> list[str]:
    """A message for each column in `bounds` whose longest text in the source subset is
    longer than its bound. Only columns a source type does not already bound are measured."""
    measured = [
        name
        for name, bound in bounds.items()
        if (column := selection.schema.column(name)).type in _TEXT
        and (column.length is None or column.length > bound)
    ]
    if not measured:
        return []
    with connection(source) as conn:
        length = engine_for(conn.dialect).text_length
        query = sa.select(*(sa.func.max(length(selection.source.c[name])) for name in measured))
        if selection.where is not None:
            query = query.where(selection.where)
        longest = conn.execute(query).one()
    return [
        f"{label}: column {name!r} holds text of up to {found:,} characters in the source, "
        f"longer than the {bounds[name]:,} the target's varchar({bounds[name]}) holds"
        for name, found in zip(measured, longest, strict=True)
        if found is not None and found > bounds[name]
    ]


def _inexact_decimals(
    source: Bind, selection: TableSelection, target: TableSchema, label: str
) -> list[str]:
    """A message for each decimal column of `target` that some value of the source subset
    does not fit exactly: more decimal places than its scale (the target would round it) or
    more whole digits than its precision leaves (refused mid-copy). Only sources that store
    any value in any column (SQLite) are measured; elsewhere the declared types decide."""
    limits = {
        name: (column.precision, column.scale or 0)
        for name in selection.columns
        if (column := target.column(name)).type == "decimal"
        and column.precision is not None
        and selection.schema.column(name).type in ("decimal", "float", "double")
    }
    if not limits:
        return []
    with connection(source) as conn:
        if engine_for(conn.dialect).capabilities.typed_columns:
            return []
        parts: list[sa.ColumnElement[Any]] = []
        for name, (precision, scale) in limits.items():
            value = selection.source.c[name]
            off = sa.or_(
                sa.func.round(value, scale) != value,
                sa.func.abs(value) >= float(f"1e{precision - scale}"),
            )
            parts += [sa.func.count(sa.case((off, 1))), sa.func.min(sa.case((off, value)))]
        query = sa.select(*parts)
        if selection.where is not None:
            query = query.where(selection.where)
        found = conn.execute(query).one()
    messages = []
    for index, (name, (precision, scale)) in enumerate(limits.items()):
        count, example = int(found[2 * index]), found[2 * index + 1]
        if count:
            places = "place" if scale == 1 else "places"
            messages.append(
                f"{label}: column {name!r} holds {count:,} value{'s' if count > 1 else ''} "
                f"in the source that decimal({precision},{scale}) cannot hold exactly (more "
                f"than {scale} decimal {places} or {precision - scale} whole digits, "
                f"e.g. {example})"
            )
    return sorted(messages)


#: The storage class of each Python value SQLite hands back, for a misfit's example.
_CLASS_OF = {int: "integer", float: "real", str: "text", bytes: "blob"}

#: What the user can do about values their column's type does not hold.
MISFIT_REMEDY = (
    "correct or clear those values in the source, or leave their rows out with a filter (`where:`)"
)


#: The least whole number beyond a 64-bit integer, as a decimal (no driver takes it as one).
_INT64_END = sa.literal(Decimal(2**63), sa.Numeric(20, 0))

#: What a user can do about decimals the target would round.
ROUNDED_REMEDY = (
    "copy such a column into an engine that keeps its digits (DuckDB, PostgreSQL, "
    "MariaDB), or leave it out with the table's `columns:`"
)


def misfit_values(source: Bind, selection: TableSelection, into: Engine) -> list[str]:
    """A message for each column of the source subset that holds values dsdb cannot copy
    into engine `into` as the column's portable type (`Engine.misfit`: text in a SQLite
    INTEGER column, PostgreSQL's infinite timestamps), with their count and one of them
    (none from a masked column)."""
    with connection(source) as conn:
        engine = engine_for(conn.dialect)
        if engine is into and not into.capabilities.typed_columns:
            return []  # SQLite into SQLite: values go across untouched
        tests = {
            column: test
            for column in selection.schema.columns
            if (test := engine.misfit(selection.source.c[column.name], column, into)) is not None
        }
        subset = () if selection.where is None else (selection.where,)
        # Where there are none, as in most tables, a scan that stops at the first is cheaper
        # than counting them per column.
        if (
            not tests
            or not conn.execute(
                sa.select(sa.exists().where(*subset, sa.or_(*tests.values())))
            ).scalar_one()
        ):
            return []
        # A typed engine's misfit is of the column's type, which its driver may not load:
        # shown as its text. Elsewhere as it is stored, with its class.
        typed = engine.capabilities.typed_columns
        found = _offending(conn, selection, tests, as_text=typed)
    return [
        f"table {selection.name!r}: column {column.name!r} ({column.type}) holds "
        f"{counted(count, 'value')} in the source that dsdb cannot copy as {column.type} "
        f"({_shown(selection, column, example, typed)})"
        for column, (count, example) in found.items()
    ]


def rounded_decimals(source: Bind, selection: TableSelection, into: Engine) -> list[str]:
    """A message for each decimal column of the source subset holding values that engine
    `into` would round (more significant digits than it keeps: SQLite's 15, integers within
    64 bits aside), with their count and one of them (none from a masked column)."""
    digits = into.capabilities.exact_decimal_digits
    columns = [column for column in selection.schema.columns if column.type == "decimal"]
    if digits is None or not columns:
        return []
    with connection(source) as conn:
        engine = engine_for(conn.dialect)
        if engine is into:  # values go across untouched
            return []
        tests = {}
        for column in columns:
            value = selection.source.c[column.name]
            whole = sa.and_(value == sa.func.round(value), sa.func.abs(value) < _INT64_END)
            tests[column] = sa.and_(sa.not_(whole), engine.significant_digits(value) > digits)
        found = _offending(conn, selection, tests, as_text=False)
    return [
        f"table {selection.name!r}: column {column.name!r} holds {counted(count, 'value')} "
        f"with more than {digits} significant digits "
        f"({_shown(selection, column, example, typed=True)}), which {into.name} stores as a "
        "double, rounding them"
        for column, (count, example) in found.items()
    ]


def _offending(
    conn: sa.Connection,
    selection: TableSelection,
    tests: Mapping[ColumnSchema, sa.ColumnElement[bool]],
    *,
    as_text: bool,
) -> dict[ColumnSchema, tuple[int, Any]]:
    """For each column whose `tests` some rows of the subset meet, how many do and the
    least of their values (`as_text`: its text), in one query."""
    parts: list[sa.ColumnElement[Any]] = []
    for column, test in tests.items():
        value = selection.source.c[column.name]
        example = sa.cast(value, sa.Text) if as_text else value
        parts += [sa.func.count(sa.case((test, 1))), sa.func.min(sa.case((test, example)))]
    query = sa.select(*parts)
    if selection.where is not None:
        query = query.where(selection.where)
    row = conn.execute(query).one()
    found = {column: (int(row[2 * i]), row[2 * i + 1]) for i, column in enumerate(tests)}
    return {column: hit for column, hit in found.items() if hit[0]}


def _shown(selection: TableSelection, column: ColumnSchema, example: Any, typed: bool) -> str:
    """A misfit's example as the plan shows it: never a masked column's; a value of a typed
    column as it is, another with its SQLite storage class."""
    if column.name in selection.mask:
        return "values not shown: the column is masked"
    if typed:
        return f"e.g. {example}"
    return f"e.g. {_CLASS_OF.get(type(example), 'value')} {example!r}"


def _merging_collations(
    conn: sa.Connection,
    engine: Engine,
    existing: TableSchema,
    selection: TableSelection,
    label: str,
) -> list[str]:
    """Key and unique columns of an existing table whose collation holds text that differs
    only by case, accent or trailing space as equal: distinct source keys would merge."""
    unique = {name for index in existing.indexes if index.unique for name in index.columns}
    keyed = set(selection.key) | set(existing.primary_key) | unique
    merging = engine.inexact_collations(conn, existing.name, keyed & set(selection.columns))
    return [
        f"{label}: column {name!r} has collation {collation} in the target, which holds text "
        "that differs only by case, accent or trailing space as equal, so distinct keys from "
        f"the source would merge (a binary NO PAD collation such as "
        f"{engine.exact_collation(conn.dialect)} keeps them apart)"
        for name, collation in sorted(merging.items())
    ]


def _defaults_left_out(engine: Engine, schema: TableSchema) -> tuple[str, ...]:
    return tuple(reason for column in schema.columns if (reason := engine.default_left_out(column)))


def _longest_text(column: ColumnSchema) -> int | None:
    if column.type == "varchar":
        return column.length
    if column.type == "uuid":
        return 36
    if column.type in _INTEGER_RANK:
        return 20
    return None  # unbounded: only a scan of the data would tell


def _describe(column: ColumnSchema) -> str:
    if column.type == "varchar" and column.length:
        return f"varchar({column.length})"
    if column.type == "decimal" and column.precision is not None:
        return f"decimal({column.precision},{column.scale or 0})"
    return column.type


def _is_unique(table: TableSchema, key: Collection[str]) -> bool:
    wanted = set(key)
    if set(table.primary_key) == wanted:
        return True
    return any(index.unique and set(index.columns) == wanted for index in table.indexes)


def _columns(noun: str, names: Collection[str]) -> str:
    """`column 'a'`, `columns 'a', 'b'`."""
    return f"{noun}{'s' * (len(names) != 1)} {_names(names)}"


def _names(names: Collection[str]) -> str:
    return ", ".join(repr(name) for name in names)
