"""Portable table schemas (`dsdb_plan.portable`): reflect them from any database, create them
in any other.

A backup or a migration carries a `TableSchema` from SQLite to PostgreSQL or MariaDB and back;
each engine (`dsdb_plan.engines`) maps its types and defaults both ways and avoids the traps of
naive copies (issue 4, item 4): SQLite `REAL` is a double and must never become PostgreSQL's
single-precision `real`; MariaDB cannot index `TEXT`; `DATETIME` without a precision drops
microseconds; identity sequences must continue after the copied keys. Every identifier goes
through SQLAlchemy's quoting, so hostile names (spaces, quotes, semicolons, reserved words,
unicode) work everywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import ReflectedColumn

from dsdb_plan.dag import topological_order
from dsdb_plan.engines import Engine, engine_for
from dsdb_plan.engines.base import portable_type as portable_type
from dsdb_plan.engines.base import quote_for_driver as quote_for_driver
from dsdb_plan.engines.base import quote_identifier as quote_identifier
from dsdb_plan.engines.sqlite import sqlite_portable_type as sqlite_portable_type
from dsdb_plan.errors import DsdbError
from dsdb_plan.portable import INTEGER_TYPES
from dsdb_plan.portable import PORTABLE_TYPES as PORTABLE_TYPES
from dsdb_plan.portable import ColumnSchema as ColumnSchema
from dsdb_plan.portable import ForeignKeySchema as ForeignKeySchema
from dsdb_plan.portable import IndexSchema as IndexSchema
from dsdb_plan.portable import TableSchema as TableSchema

Bind = sa.Engine | sa.Connection

# Columns of types SQLAlchemy does not know (point, xml, ...) are carried by their text; its
# warning about each, on every reflection dsdb makes, says nothing a user could act on.
warnings.filterwarnings(
    "ignore", "Did not recognize type", category=sa.exc.SAWarning, module=r"dsdb_plan\."
)

# -- ordering ----------------------------------------------------------------------------


def sort_tables(tables: Iterable[TableSchema]) -> list[TableSchema]:
    """Parents before children; deterministic (name order among equals).

    A cycle cannot be ordered: its tables fall back to name order, and the foreign keys that
    then point forward are reported by `deferred_foreign_keys` to be added after all tables.
    """
    by_name = {table.name: table for table in tables}
    parents = {
        name: {
            fk.ref_table
            for fk in table.foreign_keys
            if fk.ref_table in by_name and fk.ref_table != name  # self-references never block
        }
        for name, table in by_name.items()
    }
    return [by_name[name] for name in topological_order(parents, break_cycles=True)]


def deferred_foreign_keys(
    ordered: Sequence[TableSchema],
) -> list[tuple[TableSchema, ForeignKeySchema]]:
    """Foreign keys that point at a table created later in `ordered` (cycles only)."""
    position = {table.name: index for index, table in enumerate(ordered)}
    return [
        (table, fk)
        for index, table in enumerate(ordered)
        for fk in table.foreign_keys
        if position.get(fk.ref_table, -1) > index
    ]


# -- reflection --------------------------------------------------------------------------


@contextlib.contextmanager
def transaction(bind: Bind) -> Iterator[sa.Connection]:
    """The caller's connection (and its transaction), or a new transaction committed at the end."""
    if isinstance(bind, sa.Connection):
        yield bind
    else:
        with bind.begin() as conn:
            yield conn


@contextlib.contextmanager
def connection(bind: Bind) -> Iterator[sa.Connection]:
    """The caller's connection (left open), or a new one from an engine (closed after)."""
    if isinstance(bind, sa.Connection):
        yield bind
    else:
        with bind.connect() as conn:
            yield conn


def usable_from_another_thread(conn: sa.Connection) -> bool:
    """Whether a worker thread may use `conn` (one thread at a time): not where the pool keeps
    a connection per thread (SQLite in memory), as its driver refuses every other thread."""
    return not isinstance(conn.engine.pool, sa.pool.SingletonThreadPool)


def reflect_tables(bind: Bind, tables: Collection[str] | None = None) -> list[TableSchema]:
    """The schema of every table (or the listed ones), parents first.

    Unknown requested tables raise `DsdbError` naming them all.
    """
    with transaction(bind) as conn:
        inspector = sa.inspect(conn)
        existing = set(inspector.get_table_names())
        if tables is None:
            names = sorted(existing)
        else:
            missing = sorted(set(tables) - existing)
            if missing:
                raise DsdbError("no such table: " + ", ".join(repr(name) for name in missing))
            names = sorted(set(tables))
        return sort_tables(_reflect_table(conn, inspector, name) for name in names)


def _reflect_table(conn: sa.Connection, inspector: sa.Inspector, name: str) -> TableSchema:
    engine = engine_for(conn.dialect)
    pk_columns = inspector.get_pk_constraint(name).get("constrained_columns") or ()
    primary_key = tuple(engine.reflected_name(column) for column in pk_columns)
    columns = tuple(
        replace(column, nullable=False) if column.name in primary_key else column
        for column in engine.reflect_columns(conn, inspector, name, primary_key)
    )
    foreign_keys = engine.reflect_foreign_keys(conn, name)
    indexes = engine.reflect_indexes(conn, inspector, name)
    return TableSchema(name, columns, primary_key, foreign_keys, indexes)


def reflected_columns(inspector: sa.Inspector, table: str) -> list[ReflectedColumn]:
    """`inspector.get_columns(table)` with every column name as written in the database."""
    return engine_for(inspector.dialect).reflected_columns(inspector, table)


def reflect_foreign_keys(conn: sa.Connection, table: str) -> tuple[ForeignKeySchema, ...]:
    """The foreign keys of `table` that point into the same schema."""
    return engine_for(conn.dialect).reflect_foreign_keys(conn, table)


# -- target types ------------------------------------------------------------------------


def target_type(column: ColumnSchema, dialect: str, *, keyed: bool = False) -> Any:
    """The SQLAlchemy type to create `column` with on `dialect`.

    `keyed` columns sit in a key or index, which some engines (MariaDB) cannot give
    unbounded text.
    """
    try:
        return engine_for(dialect).column_type(column, keyed=keyed)
    except KeyError:
        raise DsdbError(f"column {column.name!r}: unknown portable type {column.type!r}") from None


# -- creation ----------------------------------------------------------------------------


def build_tables(
    dialect: sa.Dialect,
    tables: Sequence[TableSchema],
    *,
    rename: Mapping[str, str] | None = None,
    deferred: Collection[tuple[str, str | None, tuple[str, ...]]] = (),
    keyed: Mapping[str, Collection[str]] | None = None,
) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    """SQLAlchemy `Table`s for `tables` on `dialect`, keyed by source name.

    Foreign keys whose (table, name, columns) is in `deferred` get `use_alter` so they can be
    added after every table exists. Tables referenced but not in `tables` get column-only
    stubs, so the DDL can name them; stubs are never created. `keyed` names, per table, the
    columns that will sit in a key or an index, where the table given leaves out the keys and
    indexes added after loading (their columns still need a type an index can hold).
    """
    rename = dict(rename or {})
    metadata = sa.MetaData()
    engine = engine_for(dialect)
    options = engine.table_options(dialect)
    built: dict[str, sa.Table] = {}
    for table in tables:
        in_keys = table.keyed_columns() | set((keyed or {}).get(table.name, ()))
        columns = [
            _sa_column(column, engine, table, column.name in in_keys) for column in table.columns
        ]
        built[table.name] = sa.Table(
            rename.get(table.name, table.name), metadata, *columns, **options
        )
    for table in tables:
        target = built[table.name]
        if table.primary_key:
            target.append_constraint(sa.PrimaryKeyConstraint(*table.primary_key))
        for fk in table.foreign_keys:
            parent = built.get(fk.ref_table)
            if parent is None:
                parent = _stub(metadata, rename.get(fk.ref_table, fk.ref_table), fk.ref_columns)
            target.append_constraint(
                sa.ForeignKeyConstraint(
                    list(fk.columns),
                    [parent.c[column] for column in fk.ref_columns],
                    name=fk.name,
                    use_alter=(table.name, fk.name, fk.columns) in deferred,
                )
            )
    return metadata, built


def _stub(metadata: sa.MetaData, name: str, columns: Sequence[str]) -> sa.Table:
    if name in metadata.tables:
        table = metadata.tables[name]
        for column in columns:
            if column not in table.c:
                table.append_column(sa.Column(column, sa.Integer()))
        return table
    return sa.Table(name, metadata, *(sa.Column(column, sa.Integer()) for column in columns))


def _sa_column(
    column: ColumnSchema, engine: Engine, table: TableSchema, keyed: bool
) -> sa.Column[Any]:
    autoincrement = column.autoincrement and column.type in INTEGER_TYPES
    default = engine.column_default(column)
    return sa.Column(
        column.name,
        engine.column_type(column, keyed=keyed),
        *engine.column_identity(column),
        nullable=column.nullable and column.name not in table.primary_key,
        autoincrement=autoincrement
        and (column.name in table.primary_key or not engine.autoincrement_needs_key()),
        server_default=sa.text(default) if default is not None else None,
    )


def create_tables(
    bind: Bind,
    tables: Sequence[TableSchema],
    *,
    rename: Mapping[str, str] | None = None,
    with_indexes: bool = True,
    keyed: Mapping[str, Collection[str]] | None = None,
) -> None:
    """Create `tables` with primary and foreign keys (and indexes), parents first.

    Foreign keys inside a cycle are added once every table exists (SQLite keeps them inline:
    it cannot add constraints later and does not check them at creation). `keyed` as in
    `build_tables`.
    """
    ordered = sort_tables(tables)
    with transaction(bind) as conn:
        capabilities = engine_for(conn.dialect).capabilities
        cyclic = deferred_foreign_keys(ordered)
        later = [(t.name, fk.name, fk.columns) for t, fk in cyclic]
        if not capabilities.adds_constraints_later:
            if not capabilities.references_later_tables:
                # Neither inline nor later (DuckDB): the keys that close a cycle are left out.
                ordered = [_without_keys(table, cyclic) for table in ordered]
            later = []
        _, built = build_tables(conn.dialect, ordered, rename=rename, deferred=later, keyed=keyed)
        for table in ordered:
            target = built[table.name]
            inline = [fk for fk in target.foreign_key_constraints if not fk.use_alter]
            conn.execute(sa.schema.CreateTable(target, include_foreign_key_constraints=inline))
        for table in ordered:
            for fk in built[table.name].foreign_key_constraints:
                if fk.use_alter:
                    conn.execute(sa.schema.AddConstraint(fk))
        if with_indexes:
            create_indexes(conn, ordered, rename=rename)


def _without_keys(
    table: TableSchema, keys: Collection[tuple[TableSchema, ForeignKeySchema]]
) -> TableSchema:
    dropped = [fk for owner, fk in keys if owner.name == table.name]
    kept = tuple(fk for fk in table.foreign_keys if fk not in dropped)
    return replace(table, foreign_keys=kept)


def create_indexes(
    bind: Bind, tables: Sequence[TableSchema], *, rename: Mapping[str, str] | None = None
) -> None:
    """Create the secondary indexes of `tables` (after a bulk load, where that is faster).

    Index names are unique per schema in PostgreSQL but per table elsewhere, so a name
    already used in this call is made unique by prefixing the table name.
    """
    with transaction(bind) as conn:
        _, built = build_tables(conn.dialect, tables, rename=rename)
        used = engine_for(conn.dialect).schema_wide_names(conn)
        for table in tables:
            target = built[table.name]
            for index in table.indexes:
                name = index.name or _index_name(target.name, index.columns)
                if name in used:
                    name = _index_name(f"{target.name}_{name}", index.columns)
                used.add(name)
                sa.Index(
                    name, *(target.c[column] for column in index.columns), unique=index.unique
                ).create(conn)


def add_foreign_keys(
    bind: Bind,
    keys: Sequence[tuple[TableSchema, ForeignKeySchema]],
    *,
    rename: Mapping[str, str] | None = None,
) -> None:
    """Add foreign keys to existing tables (those left out of a cycle's CREATE TABLE).

    Keys already present (same columns to the same table) are skipped, so this can be rerun.
    SQLite cannot add constraints to a table; there the keys must be created inline.
    """
    rename = dict(rename or {})
    with transaction(bind) as conn:
        if not engine_for(conn.dialect).capabilities.adds_constraints_later or not keys:
            return
        for table, fk in keys:
            name = rename.get(table.name, table.name)
            ref_table = rename.get(fk.ref_table, fk.ref_table)
            present = {
                (found.columns, found.ref_table) for found in reflect_foreign_keys(conn, name)
            }
            if (fk.columns, ref_table) in present:
                continue
            alone = TableSchema(table.name, table.columns, table.primary_key, (fk,), table.indexes)
            _, built = build_tables(
                conn.dialect, [alone], rename=rename, deferred=[(table.name, fk.name, fk.columns)]
            )
            for constraint in built[table.name].foreign_key_constraints:
                engine_for(conn.dialect).add_foreign_key(conn, constraint)


def _index_name(table: str, columns: Sequence[str]) -> str:
    """A readable name that fits every database's 63/64-character identifier limit."""
    name = f"ix_{table}_{'_'.join(columns)}"
    if len(name) <= 60:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[:51]}_{digest}"


def drop_tables(bind: Bind, names: Collection[str]) -> list[str]:
    """Drop those of `names` that exist, children first; returns the names dropped.

    Foreign keys inside a cycle are dropped first so the tables can go in any order.
    """
    with transaction(bind) as conn:
        inspector = sa.inspect(conn)
        existing = sorted(set(names) & set(inspector.get_table_names()))
        schemas = [
            TableSchema(name, (), foreign_keys=reflect_foreign_keys(conn, name))
            for name in existing
        ]
        ordered = sort_tables(schemas)
        engine = engine_for(conn.dialect)
        if engine.capabilities.adds_constraints_later:
            for table, fk in deferred_foreign_keys(ordered):
                if fk.name is None:
                    continue
                conn.exec_driver_sql(
                    f"ALTER TABLE {quote_for_driver(conn.dialect, table.name)} "
                    f"{engine.drop_foreign_key} {quote_for_driver(conn.dialect, fk.name)}"
                )
        for table in reversed(ordered):
            sa.Table(table.name, sa.MetaData()).drop(conn)
        return [table.name for table in reversed(ordered)]


def advance_sequences(bind: Bind, table: TableSchema, *, name: str | None = None) -> None:
    """Make identity/serial/AUTO_INCREMENT columns continue after the largest copied key.

    Without this, PostgreSQL's sequence still starts at 1 after a copy with explicit ids and
    the application's first insert fails on a duplicate key. SQLite needs nothing: its rowid
    and AUTOINCREMENT counters follow the largest key.
    """
    target = name or table.name
    columns = [c for c in table.columns if c.autoincrement and c.type in INTEGER_TYPES]
    if not columns:
        return
    with transaction(bind) as conn:
        engine = engine_for(conn.dialect)
        sa_table = sa.table(target, *(sa.column(c.name) for c in columns))
        for column in columns:
            largest = conn.execute(sa.select(sa.func.max(sa_table.c[column.name]))).scalar()
            engine.continue_after(conn, target, column.name, int(largest or 0))
