"""Restore a backup into any database, verified first, one whole table at a time.

Order of work: verify the backup (`integrity`: its metadata, and the checksums and row
counts of the files to load; nothing is written before), find the rows whose foreign key
points at no row of the backup and apply the `on_dangling` policy to them (`references`:
refuse, leave them out, or leave their key out), refuse tables that hold
data unless replacing is allowed, drop the tables to (re)load children first, then per table
and parents first: create it, load its rows, create its indexes, advance its sequences, commit,
report it done; last, add the foreign keys left for the end (on PostgreSQL, all of them). A
killed restore therefore leaves whole tables, and the caller resumes by passing the tables
reported done as `completed` (the keys are added by whichever run gets to the end). One
asked to stop does so after its next batch, rolling back the table it was loading.

Where the engine's driver loads Arrow batches (PostgreSQL) a Parquet file's table is loaded
in whole columns (`column_restore`) on the driver's own connection: the table is created and
committed empty first, its rows loaded and committed in one transaction of the driver, then
its indexes and sequences made. The table is reported started (`on_table_started`) before
its rows are committed, so a restore killed before it is done knows, when resumed, that the
rows it finds there are its own, and loads the table again; one that fails or is asked to
stop drops the table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain, compress
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from dsdb_plan.archive.info import BackupInfo
from dsdb_plan.archive.integrity import check_backup, verify_data
from dsdb_plan.archive.reader import iter_blocks
from dsdb_plan.archive.references import count_dangling, refusal, rows_kept
from dsdb_plan.dbschema import (
    ForeignKeySchema,
    TableSchema,
    add_foreign_keys,
    advance_sequences,
    connection,
    create_indexes,
    create_tables,
    deferred_foreign_keys,
    drop_tables,
)
from dsdb_plan.engines import engine_for
from dsdb_plan.errors import BackupError, DsdbError, Interrupted, driver_message
from dsdb_plan.migrate.convert import columns_converter
from dsdb_plan.migrate.integrity import unbroken_keys
from dsdb_plan.migrate.load import load_rows
from dsdb_plan.payloads import Dangling, key_columns
from dsdb_plan.typeless import for_engine

Progress = Callable[[str, int], None]
OnDangling = Literal["refuse", "skip", "keep"]


@dataclass(frozen=True)
class RestoreResult:
    """What one `restore_backup` call did."""

    tables: tuple[str, ...]  # loaded by this call, in load order
    rows: int  # loaded by this call
    skipped: tuple[str, ...] = ()  # already completed by an earlier, interrupted call
    warnings: tuple[str, ...] = ()  # e.g. foreign keys to tables the target does not have


def tables_with_data(engine: sa.Engine | sa.Connection, tables: Iterable[str]) -> list[str]:
    """Those of `tables` that exist in the target and hold at least one row, in given order."""
    with connection(engine) as conn:
        existing = set(sa.inspect(conn).get_table_names())
        occupied = []
        for name in tables:
            if name not in existing:
                continue
            probe = sa.select(sa.literal(1)).select_from(sa.table(name)).limit(1)
            if conn.execute(probe).first() is not None:
                occupied.append(name)
        return occupied


def restore_backup(
    path: Path,
    engine: sa.Engine,
    *,
    recorded: Mapping[str, Any] | None = None,
    tables: Collection[str] | None = None,
    replace_existing: bool = False,
    completed: Collection[str] = (),
    on_table_done: Callable[[str, int], None] | None = None,
    on_table_started: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    on_dangling: OnDangling = "refuse",
    dangling: Sequence[Dangling] | None = None,
) -> RestoreResult:
    """Restore the backup in folder `path` into `engine` (any dialect).

    `recorded` is the state's record of the backup (`BackupInfo.to_dict()` when it was
    taken), which `backup.json` must still match. `tables` restores a subset. Tables in
    `completed` are skipped (resume); every other selected table is dropped if present and
    loaded again. `on_table_done(table, rows)` is called after each table's transaction
    commits; `on_table_started(table)` before a table's rows may first be committed without
    it being done (loaded in columns); `progress(table, rows_so_far)` per batch.

    Tables an interrupted run left behind may hold its rows, so a resume passes
    `replace_existing=True` (the first run made the check). Foreign keys to tables neither
    restored nor present in the target are left out and reported in `warnings`.
    Once `cancel` is set, `Interrupted` is raised after the next batch, and the table being
    loaded is rolled back (on MySQL, whose DDL commits at once, left for a resume to drop).
    """
    info = check_backup(path, recorded)
    rules = engine_for(engine.dialect)
    # Typeless columns take the types their recorded values call for (`typeless.py`).
    selected = [for_engine(table, rules)[0] for table in _selected(info, tables)]
    todo = [table for table in selected if table.name not in completed]
    skipped = tuple(table.name for table in selected if table.name in completed)
    occupied = tables_with_data(engine, [table.name for table in todo])
    if occupied and not replace_existing:
        raise BackupError(
            "restore refused: target tables already hold data: "
            + ", ".join(repr(name) for name in occupied)
            + " (replace_existing=True replaces them)"
        )
    verify_data(info, [table.name for table in todo])  # before anything is written
    if dangling is None:
        dangling = count_dangling(info, selected)
    if dangling and on_dangling == "refuse":
        raise BackupError(refusal(dangling, f"backup {info.id}"))
    kept = rows_kept(info, selected) if dangling and on_dangling == "skip" else {}
    if on_dangling == "keep":
        selected = [_without_broken_keys(table, dangling) for table in selected]
        todo = [table for table in selected if table.name not in completed]
    existing = set(sa.inspect(engine).get_table_names()) - {t.name for t in todo}
    restored = {t.name for t in selected}
    reachable = existing | restored
    later = _keys_added_after_loading(engine.dialect.name, selected, reachable)
    warnings = []
    loaded_rows = 0
    # Where a key can neither be added later nor name a table not created yet (DuckDB), the
    # key that closes a cycle cannot be made.
    ahead = rules.capabilities.adds_constraints_later or rules.capabilities.references_later_tables
    created = set(existing)
    drop_tables(engine, [table.name for table in todo])
    for table in todo:
        _stop_if_asked(cancel, table.name)
        inline = []
        for fk in table.foreign_keys:
            if fk.ref_table not in reachable:
                warnings.append(
                    f"table {table.name!r}: foreign key {fk.columns} to {fk.ref_table!r} not "
                    f"created: the target has no table {fk.ref_table!r}"
                )
            elif not ahead and fk.ref_table not in created | {table.name}:
                warnings.append(
                    f"table {table.name!r}: foreign key {fk.columns} to {fk.ref_table!r} not "
                    f"created: {rules.name} cannot make a key to a table created after its own "
                    "(the tables' keys form a cycle)"
                )
            elif (table, fk) not in later:
                inline.append(fk)
        created.add(table.name)
        # The columns of keys added later are typed for a key from the start.
        keyed = table.keyed_columns()
        outside = [fk for fk in table.foreign_keys if fk.ref_table in existing - restored]
        rows = _restore_table(
            engine,
            info,
            dataclasses.replace(table, foreign_keys=tuple(inline)),
            keyed,
            progress,
            cancel,
            kept.get(table.name),
            outside,
            on_table_started,
        )
        loaded_rows += rows
        if on_table_done is not None:
            on_table_done(table.name, rows)
    _add_later_keys(engine, later)
    return RestoreResult(
        tables=tuple(table.name for table in todo),
        rows=loaded_rows,
        skipped=skipped,
        warnings=tuple(warnings),
    )


def _without_broken_keys(table: TableSchema, dangling: Sequence[Dangling]) -> TableSchema:
    keys = unbroken_keys(table, dangling)
    return (
        table
        if len(keys) == len(table.foreign_keys)
        else dataclasses.replace(table, foreign_keys=keys)
    )


def _selected(info: BackupInfo, tables: Collection[str] | None) -> list[TableSchema]:
    if tables is None:
        return list(info.tables)
    unknown = sorted(set(tables) - set(info.table_names))
    if unknown:
        raise BackupError(
            f"backup {info.id} has no table " + ", ".join(repr(name) for name in unknown)
        )
    return [table for table in info.tables if table.name in tables]


def _keys_added_after_loading(
    dialect: str, selected: Sequence[TableSchema], reachable: Collection[str]
) -> list[tuple[TableSchema, ForeignKeySchema]]:
    """The foreign keys created once every table is loaded, not with their table.

    Where a key added afterwards is checked in a single query, several times faster than an
    inline key checked row by row as rows load (PostgreSQL's COPY; what pg_restore does too),
    every key reaching a restored table waits. Elsewhere only keys inside a cycle wait
    (MySQL loads without checking keys: `keys_unchecked`), and an engine that cannot add a
    key to an existing table (SQLite) keeps all keys inline.
    """
    capabilities = engine_for(dialect).capabilities
    if not capabilities.adds_constraints_later:
        return []
    if capabilities.keys_faster_after_load and not capabilities.checks_keys_per_row:
        return [
            (table, fk)
            for table in selected
            for fk in table.foreign_keys
            if fk.ref_table in reachable
        ]
    return deferred_foreign_keys(selected)


def _add_later_keys(
    engine: sa.Engine, later: Sequence[tuple[TableSchema, ForeignKeySchema]]
) -> None:
    if not later:
        return
    try:
        with engine.begin() as conn:
            add_foreign_keys(conn, later)
    except sa.exc.DBAPIError as error:
        # Every table is loaded and recorded: a resume only adds the keys again.
        raise DsdbError(
            f"adding foreign keys in {engine_for(engine.dialect).name} failed: "
            f"{driver_message(error)}; the tables are restored, and the next apply only "
            "adds the keys again: fix the target's rows that break the key, or set the "
            "restore's `on_dangling: skip` or `keep` to restore the tables again without them"
        ) from error


def _stop_if_asked(cancel: threading.Event | None, table: str) -> None:
    if cancel is not None and cancel.is_set():
        raise Interrupted(
            f"table {table!r}: stopped before it was restored; the tables restored before "
            "are recorded, the next apply restores the rest"
        )


def _restore_table(
    engine: sa.Engine,
    info: BackupInfo,
    table: TableSchema,
    keyed: Collection[str],
    progress: Progress | None,
    cancel: threading.Event | None,
    kept: Sequence[bool] | None = None,
    outside: Sequence[ForeignKeySchema] = (),
    on_started: Callable[[str], None] | None = None,
) -> int:
    """Create, load and index one table in one transaction; returns the rows loaded (those
    `kept` marks, in file order, when given). The rows must resolve the foreign keys
    `outside`, to target tables the restore does not write, before the table commits: the
    backup's files cannot tell, and MySQL creates its keys unchecked.

    PostgreSQL and SQLite roll the whole table back on failure. MySQL commits DDL at once,
    so a failure there leaves an empty or partial table that the next run drops and reloads.
    """
    # Imported here: polars, which it needs, would cost every backup 25 MB (issue 15, aim 7).
    from dsdb_plan.archive import column_restore

    if column_restore.fits(info, table.name, engine):
        count = _restore_columns(
            engine, info, table, keyed, progress, cancel, kept, outside, on_started
        )
        if count is not None:
            return count
    convert = columns_converter(table, info.source_dialect, engine.dialect.name)
    blocks = iter_blocks(info, table.name)
    rows: Iterator[tuple[Any, ...]] = chain.from_iterable(
        convert(block.columns, block.rows) for block in blocks
    )
    if kept is not None:
        rows = compress(rows, kept)
    # The copy session keeps a restored key of 0 in a MySQL AUTO_INCREMENT column.
    session = engine_for(engine.dialect).copy_session
    try:
        with engine.connect() as conn, session(conn), conn.begin():
            create_tables(conn, [table], with_indexes=False, keyed={table.name: keyed})
            count = _load(conn, table, rows, progress, cancel)
            _refuse_unresolved(conn, table.name, outside)
            create_indexes(conn, [table])
            advance_sequences(conn, table)
    except sa.exc.DBAPIError as error:
        raise DsdbError(
            f"restoring table {table.name!r} into {engine.dialect.name} failed: "
            f"{driver_message(error)}"
        ) from error
    return count


def _restore_columns(
    engine: sa.Engine,
    info: BackupInfo,
    table: TableSchema,
    keyed: Collection[str],
    progress: Progress | None,
    cancel: threading.Event | None,
    kept: Sequence[bool] | None,
    outside: Sequence[ForeignKeySchema],
    on_started: Callable[[str], None] | None,
) -> int | None:
    """`_restore_table` in whole columns: the rows loaded, or None where they do not fit
    that path (the table is dropped again, for the row path to load)."""

    def report(count: int) -> None:
        if progress is not None:
            progress(table.name, count)
        _stop_if_asked(cancel, table.name)  # the driver's transaction is rolled back

    from dsdb_plan.archive import column_restore

    try:
        with engine.begin() as conn:
            create_tables(conn, [table], with_indexes=False, keyed={table.name: keyed})
        if on_started is not None:
            on_started(table.name)
        count = column_restore.load(
            engine, info.path / info.file_for(table.name).name, table, kept, report
        )
        if count is not None:
            expected = info.file_for(table.name).rows if kept is None else sum(kept)
            if count != expected:
                raise BackupError(
                    f"backup {info.id}: table {table.name!r} holds {count} rows, "
                    f"expected {expected}"
                )
            with engine.begin() as conn:
                _refuse_unresolved(conn, table.name, outside)
                create_indexes(conn, [table])
                advance_sequences(conn, table)
            return count
    except sa.exc.DBAPIError as error:
        _drop_quietly(engine, table.name)
        raise DsdbError(
            f"restoring table {table.name!r} into {engine.dialect.name} failed: "
            f"{driver_message(error)}"
        ) from error
    except BaseException:
        _drop_quietly(engine, table.name)
        raise
    drop_tables(engine, [table.name])
    return None


def _drop_quietly(engine: sa.Engine, table: str) -> None:
    """Drop `table` after a failure, which is what the caller hears of: if dropping fails
    too, the next run drops it (it is not reported done)."""
    with contextlib.suppress(sa.exc.DBAPIError):
        drop_tables(engine, [table])


def _refuse_unresolved(
    conn: sa.Connection, table: str, outside: Sequence[ForeignKeySchema]
) -> None:
    """Raise when rows of `table` point at no row of a target table through `outside`
    keys. The parent is LEFT JOINed: SQLite runs a correlated NOT EXISTS as a scan of an
    unindexed parent per row."""
    for fk in outside:
        child = sa.table(table, *map(sa.column, fk.columns)).alias("child")
        parent = sa.table(fk.ref_table, *map(sa.column, fk.ref_columns)).alias("parent")
        pairs = list(zip(fk.ref_columns, fk.columns, strict=True))
        joined = child.outerjoin(parent, sa.and_(*(parent.c[r] == child.c[c] for r, c in pairs)))
        dangling = conn.execute(
            sa.select(sa.func.count())
            .select_from(joined)
            .where(*(child.c[c].is_not(None) for c in fk.columns))
            .where(parent.c[fk.ref_columns[0]].is_(None))
        ).scalar_one()
        if dangling:
            raise BackupError(
                f"table {table!r}: {dangling:,} rows point at no row of target table "
                f"{fk.ref_table!r} through foreign key {key_columns(fk.columns)}, and the "
                f"restore does not restore {fk.ref_table!r}: restore it too (`tables`), or "
                "add the rows it lacks to the target; nothing of the table was kept"
            )


def _load(
    conn: sa.Connection,
    table: TableSchema,
    rows: Iterator[tuple[Any, ...]],
    progress: Progress | None,
    cancel: threading.Event | None,
) -> int:
    def report(count: int) -> None:
        if progress is not None:
            progress(table.name, count)
        _stop_if_asked(cancel, table.name)  # the table's transaction is rolled back

    # Rows of a consistent snapshot: checking keys row by row (InnoDB) only breaks
    # self-references that point forward (mysqldump loads unchecked, too).
    with engine_for(conn.dialect).keys_unchecked(conn):
        return load_rows(conn, table, rows, progress=report, read_ahead=True)
