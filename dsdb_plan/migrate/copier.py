"""Copy one selected table from a source database into a target, in committed batches.

The source is read with one streamed SELECT ordered by the key (a server-side cursor where
the driver has one), so memory holds one batch; a table that points at itself goes parents
first (`order.py`). Each batch is converted
(`values.row_converter`, through `convert.batch_converter`), written
(`load.batch_writer`) and committed, then reported to
`on_checkpoint` with the last key (and depth) written. Every batch is idempotent — append inserts
ignoring existing keys, upsert and mirror upsert — so a batch committed but not yet
checkpointed is harmless when a resumed copy writes it again. A resume reads from the
checkpoint's last key on: no gap, no duplicate. A copy asked to stop (`cancel`) raises
`Interrupted` right after a batch is committed and checkpointed, which is where a resume
carries on from.

Modes (issue 4, item 2):

- ``append``: insert the rows whose key the target does not hold; never updates or deletes.
- ``upsert``: insert, or update by key.
- ``replace``: load a staging table ``<target>__dsdb_new`` (created like the target), then
  swap it in within one transaction (one ``RENAME TABLE`` statement on MySQL/MariaDB), so
  readers see the old table or the new one, never a half-loaded one. Works without a key;
  then a resume starts the staging load again.
- ``mirror``: upsert, then delete the target rows whose key is not in the source subset
  (or, with ``delete=False``, leave that to a later call resuming from the checkpoint, so a
  migration deletes from its children before their parents). The
  source keys are streamed into a temporary table in the target and the deletion is one
  ``DELETE … WHERE NOT EXISTS`` there: memory stays bounded, and keys are compared by the
  target database with the same types and collation the upsert matched them with (comparing
  values in Python or in the source would disagree about e.g. case-insensitive collations).

With ``cursor_column``, only rows whose cursor is greater than ``since`` are read, and
`CopyResult.high_water` is the largest cursor copied (a raw source value, for the caller to
store and pass back as ``since``).

SQLite to SQLite skips Python entirely: the source file is ATTACHed to the target connection
and each batch is one ``INSERT … SELECT`` over a key range; batches grow from `batch_size`
rows while each commits in well under a second (`_load_attached`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql import visitors

from dsdb_plan.archive.format import decode_value, encode_value
from dsdb_plan.dbschema import (
    IndexSchema,
    TableSchema,
    advance_sequences,
    create_indexes,
    create_tables,
    reflect_foreign_keys,
    reflect_tables,
    usable_from_another_thread,
)
from dsdb_plan.engines import Engine, TableSwap, engine_for
from dsdb_plan.errors import DsdbError, Interrupted, PlanError, driver_message
from dsdb_plan.migrate.convert import BatchConverter, batch_converter
from dsdb_plan.migrate.load import Operation, batch_writer
from dsdb_plan.migrate.mask import with_masks
from dsdb_plan.migrate.order import CopyOrder, after, bound, copy_order, raw
from dsdb_plan.migrate.read_ahead import read_ahead_of
from dsdb_plan.migrate.subset import TableSelection
from dsdb_plan.migrate.text_copy import copy_as_text

Mode = Literal["append", "upsert", "replace", "mirror"]
Checkpoint = dict[str, Any]
STAGING_SUFFIX = "__dsdb_new"
_ATTACHED = "dsdb_source"
_KEYED_MODES = ("append", "upsert", "mirror")
#: SQLite to SQLite, how long a committed batch may grow to take (`_load_attached`).
_ATTACHED_BATCH_SECONDS = 1.0


@dataclass(frozen=True)
class CopyResult:
    """What one `copy_table` call did (counting batches committed before a resume too)."""

    rows_copied: int  # source rows written to the target (inserted, updated or skipped)
    rows_deleted: int = 0  # target rows mirror deleted
    high_water: Any = None  # largest cursor value copied (raw source value), else `since`
    rows_resumed: int = 0  # of `rows_copied`, those the checkpoint it resumed from counted

    @property
    def rows_now(self) -> int:
        """The rows this call wrote (not those before the checkpoint it resumed from)."""
        return self.rows_copied - self.rows_resumed


def copy_table(
    source_engine: sa.Engine,
    target_engine: sa.Engine,
    selection: TableSelection,
    *,
    mode: Mode,
    batch_size: int,
    cursor_column: str | None = None,
    since: Any = None,
    resume: Mapping[str, Any] | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    progress: Callable[[int], None] | None = None,
    on_source_rows: Callable[[Sequence[Sequence[Any]]], None] | None = None,
    on_source_snapshot: Callable[[sa.Connection], None] | None = None,
    on_source_digest: Callable[[int, int], None] | None = None,
    only: sa.ColumnElement[bool] | None = None,
    cancel: threading.Event | None = None,
    delete: bool = True,
    cleared_later: Collection[str] = (),
) -> CopyResult:
    """Copy `selection` into its target table (which `target.ensure_target` made ready).

    `resume` is the last checkpoint an interrupted call reported for the same table, mode
    and cursor; any other checkpoint is ignored and the copy starts over (always safe).
    Checkpoints are JSON-ready dicts: ``table``, ``target``, ``mode``, ``cursor``, ``phase``,
    ``last_key`` (encoded source values), ``rows``, ``high_water`` and ``since``.
    `progress(rows_so_far)` is called after each committed batch, `on_source_rows(rows)` with
    each batch of source rows as read (raw driver values, copied columns only; not on the
    SQLite-to-SQLite path, which never brings rows into Python), and
    `on_source_snapshot(connection)` on the source connection just before the rows are read,
    in the same snapshot (REPEATABLE READ): what it reads there is what the copy reads.
    `on_source_digest(rows, hash_sum)` takes the portable digest (`digest.SubsetDigest`) of
    the rows copied in whole columns (`arrow_copy.py`), which never reach `on_source_rows`;
    without it, rows go through Python.
    `only` narrows the rows copied (not the subset mirror keeps). Once `cancel` is set, the
    copy raises `Interrupted` after its next committed batch. A mirror with `delete=False`
    stops after loading, checkpointed at its "delete" phase: called again with that
    checkpoint, it only deletes. `cleared_later` names target tables the same migration
    replaces or mirrors after this one: their keys to this table are put back unchecked on
    PostgreSQL (`_swap`), as their rows may point at rows this replace removes until they
    are replaced or cleared too (`validate_keys`). Uses one source and one target
    connection.
    """
    check_table(selection, mode, cursor_column, batch_size)
    job = _Job(
        selection=selection,
        mode=mode,
        batch_size=batch_size,
        cursor_column=cursor_column,
        since=since,
        on_checkpoint=on_checkpoint,
        progress=progress,
        on_source_rows=on_source_rows,
        on_source_snapshot=on_source_snapshot,
        on_source_digest=on_source_digest,
        only=only,
        cancel=cancel,
    )
    job.resume_from(resume)
    session = engine_for(target_engine.dialect).copy_session
    with source_engine.connect() as src, target_engine.connect() as dst, session(dst):
        if on_source_snapshot is not None:  # what it reads is what the copy reads
            engine_for(src.dialect).begin_snapshot(src)
        if mode == "replace":
            _replace(src, dst, job, cleared_later)
            return job.result()
        operation: Operation = "insert_ignore" if mode == "append" else "upsert"
        if job.phase == "load":
            _load(src, dst, job, selection.target, operation)
        if mode == "mirror":
            job.checkpoint("delete")
            if not delete:
                return job.result()
            job.deleted = _delete_missing(src, dst, job)
            dst.commit()
    return job.result()


def check_table(
    selection: TableSelection, mode: str, cursor_column: str | None, batch: int
) -> None:
    """Refuse a table the options cannot copy (a keyed mode without a key, a cursor that is
    no column, ...): the planner calls it too, so the plan fails rather than the apply."""
    label = f"table {selection.name!r}"
    if mode not in ("append", "upsert", "replace", "mirror"):
        raise PlanError(f"{label}: unknown mode {mode!r}")
    if mode in _KEYED_MODES and not selection.key:
        raise PlanError(
            f"{label}: mode {mode} needs a key to match rows, and the table has no primary "
            "key: declare `key:` for it, or use mode replace"
        )
    if cursor_column is not None:
        if mode == "replace":
            raise PlanError(f"{label}: an incremental cursor cannot be used with mode replace")
        if cursor_column not in selection.source.c:
            raise PlanError(f"{label}: no cursor column {cursor_column!r}")
    if batch < 1:
        raise PlanError(f"{label}: batch size must be at least 1, not {batch}")


@dataclass
class _Job:
    """One copy in progress: its settings and how far it got."""

    selection: TableSelection
    mode: str
    batch_size: int
    cursor_column: str | None
    since: Any
    on_checkpoint: Callable[[Checkpoint], None] | None
    progress: Callable[[int], None] | None
    on_source_rows: Callable[[Sequence[Sequence[Any]]], None] | None = None
    on_source_snapshot: Callable[[sa.Connection], None] | None = None
    on_source_digest: Callable[[int, int], None] | None = None
    only: sa.ColumnElement[bool] | None = None
    cancel: threading.Event | None = None
    phase: str = "load"
    last_key: tuple[Any, ...] | None = None
    rows: int = 0
    deleted: int = 0
    high_water: Any = None
    resumed: bool = False
    rows_resumed: int = 0
    #: The target's indexes when a replace began: a swap cut short after dropping them
    #: (DuckDB drops them in a step of their own) makes them again from here.
    indexes: tuple[IndexSchema, ...] = ()

    def resume_from(self, checkpoint: Mapping[str, Any] | None) -> None:
        if not checkpoint or any(
            checkpoint.get(name) != value for name, value in self._identity().items()
        ):
            return
        self.resumed = True
        self.phase = str(checkpoint.get("phase", "load"))
        last_key = checkpoint.get("last_key")
        self.last_key = None if last_key is None else tuple(decode_value(v) for v in last_key)
        self.rows = self.rows_resumed = int(checkpoint.get("rows", 0))
        self.high_water = decode_value(checkpoint.get("high_water"))
        self.since = decode_value(checkpoint.get("since"))
        self.indexes = tuple(IndexSchema.from_dict(i) for i in checkpoint.get("indexes", ()))

    def _identity(self) -> dict[str, Any]:
        return {
            "table": self.selection.name,
            "target": self.selection.target,
            "mode": self.mode,
            "cursor": self.cursor_column,
        }

    def advance(self, rows: int, last_key: tuple[Any, ...] | None, high_water: Any) -> None:
        """Record a committed batch, then report it; stop here if asked to."""
        self.rows += rows
        self.last_key = last_key
        if high_water is not None and (self.high_water is None or high_water > self.high_water):
            self.high_water = high_water
        self.checkpoint(self.phase)
        if self.progress is not None:
            self.progress(self.rows)
        if self.cancel is not None and self.cancel.is_set():
            raise Interrupted(
                f"table {self.selection.name!r}: stopped after {self.rows:,} rows, at a "
                "committed batch; the next apply resumes there"
            )

    def checkpoint(self, phase: str) -> None:
        self.phase = phase
        if self.on_checkpoint is None:
            return
        self.on_checkpoint(
            {
                **self._identity(),
                "phase": phase,
                "last_key": None
                if self.last_key is None
                else [encode_value(value) for value in self.last_key],
                "rows": self.rows,
                "high_water": encode_value(self.high_water),
                "since": encode_value(self.since),
                "indexes": [index.to_dict() for index in self.indexes],
            }
        )

    def result(self) -> CopyResult:
        high_water = self.high_water if self.high_water is not None else self.since
        return CopyResult(self.rows, self.deleted, high_water, self.rows_resumed)


# -- loading -----------------------------------------------------------------------------


def _load(
    src: sa.Connection, dst: sa.Connection, job: _Job, table: str, operation: Operation
) -> None:
    """Copy the remaining rows into `table`, a batch per transaction."""
    with _unique_clash_explained(table, operation):
        if _attachable(src, dst, job):
            _load_attached(src, dst, job, table, operation)
        elif not copy_as_text(src, dst, job, table, _unresumed_filter(job)):
            _load_columns(src, dst, job, table, operation)
            _load_batches(src, dst, job, table, operation)


def _unresumed_filter(job: _Job) -> list[sa.ColumnElement[bool]]:
    """The rows to copy, wherever the copy resumes."""
    unresumed = dataclasses.replace(job, last_key=None)
    return _source_filter(unresumed, job.selection.source, _key_order(job))


def _load_columns(
    src: sa.Connection, dst: sa.Connection, job: _Job, table: str, operation: Operation
) -> None:
    """Copy what `arrow_copy` can of a whole, fresh copy into `table`; `_load_batches` goes
    on from its last batch. Only where a plain COPY does what `operation` does (a unique
    source key into an empty table) and the digest it takes has somewhere to go."""
    selection = job.selection
    if (
        job.last_key is not None
        or job.cursor_column is not None
        or job.only is not None
        or selection.where is not None
        or selection.mask
        or (operation != "insert" and set(selection.key) != set(selection.schema.primary_key))
        or (job.on_source_rows is not None and job.on_source_digest is None)
        or copy_order(selection, engine_for(dst.dialect)).depth is not None
    ):
        return
    from dsdb_plan.migrate import arrow_copy  # polars and Arrow load only for a copy

    def copied(batch: arrow_copy.Committed) -> None:
        if job.on_source_digest is not None:
            job.on_source_digest(batch.rows, batch.hash_sum)
        job.advance(batch.rows, batch.last_key, None)

    arrow_copy.copy_columns(src, dst, selection, table, job.batch_size, copied, job.cancel)


@contextlib.contextmanager
def _unique_clash_explained(table: str, operation: Operation) -> Iterator[None]:
    """A keyed write that another unique index of the target refused, with its cause and
    a way out: databases check such an index row by row, so rows that swap or hand on
    unique values (A takes B's email while B takes a new one) cannot be written in turn."""
    try:
        yield
    except sa.exc.IntegrityError as error:
        if operation == "insert" or not _unique_violation(error):
            raise
        raise DsdbError(
            f"table {table!r}: {driver_message(error)}: a copied row takes a unique value that"
            " another row of the target still holds, as when rows swap values, which cannot"
            " be written one row at a time; copying the table once with `mode: replace`"
            " rewrites it whole"
        ) from error


def _unique_violation(error: sa.exc.IntegrityError) -> bool:
    orig = error.orig
    return (
        getattr(orig, "sqlstate", None) == "23505"  # PostgreSQL
        or getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_CONSTRAINT_UNIQUE
        or getattr(orig, "args", ())[:1] == (1062,)  # MySQL/MariaDB's ER_DUP_ENTRY
    )


def _load_batches(
    src: sa.Connection, dst: sa.Connection, job: _Job, table: str, operation: Operation
) -> None:
    selection = job.selection
    schema = selection.schema
    convert = with_masks(
        batch_converter(schema, src.dialect.name, dst.dialect.name),
        schema,
        selection.masker,
        selection.mask,
    )
    writer = batch_writer(dst, table, schema.columns, operation=operation, key=selection.key)
    # After a resume the first batch may already be in the target; a plain insert can only
    # take it if keys are ignored, so that one batch goes through insert_ignore.
    first = (
        batch_writer(dst, table, schema.columns, operation="insert_ignore", key=selection.key)
        if operation == "insert" and job.resumed and selection.key
        else writer
    )
    names = list(selection.columns)
    cursor_at: int | None = None
    if job.cursor_column is not None:
        if job.cursor_column not in names:
            names.append(job.cursor_column)
        cursor_at = names.index(job.cursor_column)
    order = copy_order(selection, engine_for(dst.dialect))
    # The resume point: each row's depth (read after its columns) and key, or its key.
    resume_at = [names.index(name) for name in selection.key]
    if order.depth is not None:
        resume_at.insert(0, len(names))
    if set(selection.key) & set(selection.mask):
        resume_at = []  # a masked key's original values never go into a checkpoint
    query = _read_query(src, job, names, order)
    if job.on_source_snapshot is not None:
        job.on_source_snapshot(src)
    cut = len(names) > len(selection.columns) or order.depth is not None
    read = _converted_batches(src, query, job, convert, cut=cut)
    for rows, batch in read_ahead_of(read) if usable_from_another_thread(src) else read:
        first.write(batch)
        first = writer
        dst.commit()
        last = rows[-1]
        high = None
        if cursor_at is not None:
            high = _largest(row[cursor_at] for row in rows)
        job.advance(len(rows), tuple(last[i] for i in resume_at) if resume_at else None, high)
    src.rollback()


def _converted_batches(
    src: sa.Connection, query: sa.Select[Any], job: _Job, convert: BatchConverter, *, cut: bool
) -> Iterator[tuple[Sequence[Sequence[Any]], list[tuple[Any, ...]]]]:
    """Each batch of source rows with its copied columns converted for the target.

    With `cut`, rows end with columns (the cursor, a depth) that are read but not copied.
    """
    width = len(job.selection.columns)
    for rows in _source_batches(src, query, job.batch_size):
        copied = [row[:width] for row in rows] if cut else rows
        if job.on_source_rows is not None:
            job.on_source_rows(copied)
        yield rows, convert(copied)


def _source_batches(
    src: sa.Connection, query: sa.Select[Any], size: int
) -> Iterator[Sequence[Sequence[Any]]]:
    """The query's rows, `size` at a time, with memory bounded by one batch."""
    if engine_for(src.dialect).registration.embedded:
        # pysqlite steps the statement as rows are fetched, so its own cursor is bounded, and
        # reading it directly skips building a SQLAlchemy Row per row (a third of the read).
        # The columns are untyped (`PortableType`): Rows would hold the same raw values.
        cursor = src.execute(query).cursor
        while rows := cursor.fetchmany(size):
            yield rows
        return
    # Elsewhere a server-side cursor keeps memory bounded (yield_per implies stream_results).
    # Set on the statement: set on the connection, they would stream its later statements
    # too, which PostgreSQL refuses for some (`SHOW`).
    result = src.execute(query.execution_options(yield_per=size))
    yield from result.partitions(size)


def _source_filter(job: _Job, table: sa.Table, order: CopyOrder) -> list[sa.ColumnElement[bool]]:
    """The selection's filter, the cursor and the resume point, on `table`'s columns."""
    selection = job.selection
    conditions: list[sa.ColumnElement[bool]] = []
    if selection.where is not None:
        conditions.append(selection.where)
    if job.only is not None:
        conditions.append(job.only)
    if job.cursor_column is not None and job.since is not None:
        conditions.append(raw(table.c[job.cursor_column]) > bound(job.since))
    # A resume point of another order (one written by an older dsdb) starts over.
    if job.last_key is not None and len(job.last_key) == len(order.sort):
        conditions.append(after(order.sort, job.last_key))
    return conditions


def _read_query(
    src: sa.Connection, job: _Job, names: Sequence[str], order: CopyOrder | None = None
) -> sa.Select[Any]:
    """SELECT `names` of the rows still to copy, in `order` (key order by default), and
    each row's depth after them when the order has one."""
    table = job.selection.source
    order = order or _key_order(job)
    columns: list[sa.ColumnElement[Any]] = []
    engine = engine_for(src.dialect)
    schema = job.selection.schema
    for name in names:
        column: sa.ColumnElement[Any] = table.c[name]
        if name in schema.column_names:  # read as backups read it (PostgreSQL's JSON as text)
            column = engine.read_expression(column, schema.column(name))
        columns.append(column)
    if order.depth is not None:
        columns.append(order.depth.label("dsdb_depth"))
    query = sa.select(*columns).select_from(order.source)
    return query.where(*_source_filter(job, table, order)).order_by(*order.sort)


def _key_order(job: _Job) -> CopyOrder:
    source = job.selection.source
    return CopyOrder(source, tuple(raw(source.c[name]) for name in job.selection.key))


def _largest(values: Iterator[Any]) -> Any:
    present = [value for value in values if value is not None]
    return max(present) if present else None


# -- SQLite to SQLite ----------------------------------------------------------------------


def _attachable(src: sa.Connection, dst: sa.Connection, job: _Job) -> bool:
    database = src.engine.url.database
    engine = engine_for(src.dialect)
    return (
        engine.capabilities.copies_by_attach
        and engine_for(dst.dialect) is engine
        and bool(database)
        and database != ":memory:"
        and not str(database).startswith("file:")
        and _attached_select(job, [], None, check=True) is not None
        and not job.selection.mask  # masking needs the rows in Python
    )


def _attached_select(
    job: _Job,
    names: Sequence[str],
    extra: Sequence[sa.ColumnElement[bool]] | None,
    *,
    check: bool = False,
) -> sa.Select[Any] | None:
    """SELECT `names` from the attached source (None when the filter cannot be moved, which
    only compiling it tells: asked once, with `check`, as compiling costs a copy of many
    small ranges a sixth of its time)."""
    tables: dict[int, sa.Table] = {}

    def qualified(table: sa.Table) -> sa.Table:
        if id(table) not in tables:
            tables[id(table)] = sa.Table(
                table.name,
                sa.MetaData(),
                *(sa.Column(c.name, c.type) for c in table.c),
                schema=_ATTACHED,
            )
        return tables[id(table)]

    def swap(element: Any, **kw: Any) -> Any:
        if isinstance(element, sa.Table) and element.schema is None:
            return qualified(element)
        if (
            isinstance(element, sa.Column)
            and isinstance(element.table, sa.Table)
            and element.table.schema is None
        ):
            return qualified(element.table).c[element.key]
        return None

    source = job.selection.source
    query = sa.select(*(source.c[name] for name in names)) if names else sa.select(sa.literal(1))
    filters = _source_filter(job, source, _key_order(job))
    query = query.select_from(source).where(*filters, *(extra or ()))
    try:
        moved = cast(sa.Select[Any], visitors.replacement_traverse(cast(Any, query), {}, swap))
        if check:
            moved.compile(dialect=sqlite_dialect.dialect())
    except (sa.exc.SQLAlchemyError, KeyError):
        return None
    return moved


def _load_attached(
    src: sa.Connection, dst: sa.Connection, job: _Job, table: str, operation: Operation
) -> None:
    """`INSERT … SELECT` from the ATTACHed source file, one key range per transaction.

    The range ends at the key `size` rows further on (found through the key's index), so its
    last key is known before it is written. `size` starts at `batch_size` and doubles while
    a batch takes less than half of `_ATTACHED_BATCH_SECONDS`: no row passes through Python,
    so a batch costs no memory, and a commit (which syncs the file, and saves a checkpoint)
    cost more than the rows of a 10,000-row batch. A resume redoes at most one batch.
    """
    dst.commit()  # ATTACH is refused inside a transaction
    dst.exec_driver_sql(f"ATTACH DATABASE ? AS {_ATTACHED}", (src.engine.url.database,))
    try:
        key = list(job.selection.key)
        size = job.batch_size
        # After a resume, the batch committed but not checkpointed may reach past any range
        # of this run (it may have grown larger): every insert ignores keys already there,
        # which costs SQLite nothing more, as it looks each key up to insert it anyway.
        replay = operation == "insert" and job.resumed and job.rows > 0 and bool(key)
        while True:
            started = time.monotonic()
            upper = _attached_row(dst, job, key, None, offset=size - 1) if key else None
            extra = [] if upper is None else [sa.not_(after(_key_order(job).sort, upper))]
            count = size if upper is not None else _attached_count(dst, job, extra)
            if count == 0:
                break
            last = upper if upper is not None or not key else _attached_row(dst, job, key, extra)
            high = None
            if job.cursor_column is not None:
                high = _attached_row(dst, job, [job.cursor_column], extra, largest=True)
            dst.execute(
                _attached_insert(job, table, "insert_ignore" if replay else operation, extra)
            )
            dst.commit()
            job.advance(count, last, None if high is None else high[0])
            if upper is None:
                break
            if time.monotonic() - started < _ATTACHED_BATCH_SECONDS / 2:
                size *= 2
    finally:
        dst.rollback()
        dst.exec_driver_sql(f"DETACH DATABASE {_ATTACHED}")


def _attached_row(
    dst: sa.Connection,
    job: _Job,
    names: Sequence[str],
    extra: Sequence[sa.ColumnElement[bool]] | None,
    *,
    offset: int | None = None,
    largest: bool = False,
) -> tuple[Any, ...] | None:
    """The key `offset` rows on (ascending), or the last key / largest value in range."""
    query = _attached_select(job, names, extra)
    assert query is not None  # _attachable checked that the filter moves
    columns = [query.selected_columns[name] for name in names]
    if offset is not None:
        query = query.order_by(*columns).offset(offset)
    else:
        query = query.where(*(c.is_not(None) for c in columns) if largest else ())
        query = query.order_by(*(c.desc() for c in columns))
    row = dst.execute(query.limit(1)).first()
    return None if row is None else tuple(row)


def _attached_count(dst: sa.Connection, job: _Job, extra: Sequence[sa.ColumnElement[bool]]) -> int:
    query = _attached_select(job, [], extra)
    assert query is not None
    return int(dst.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one())


def _attached_insert(
    job: _Job, table: str, operation: Operation, extra: Sequence[sa.ColumnElement[bool]]
) -> Any:
    selection = job.selection
    names = list(selection.columns)
    rows = _attached_select(job, names, [*extra, sa.true()])  # WHERE: see SQLite's upsert docs
    assert rows is not None
    target = sa.table(table, *(sa.column(name) for name in names))
    statement = sqlite_dialect.insert(target).from_select(names, rows)
    key = [target.c[name] for name in selection.key]
    if operation == "insert_ignore":
        return statement.on_conflict_do_nothing(index_elements=key)
    updates = [name for name in names if name not in selection.key]
    if operation == "upsert" and updates:
        return statement.on_conflict_do_update(
            index_elements=key, set_={name: statement.excluded[name] for name in updates}
        )
    if operation == "upsert":
        return statement.on_conflict_do_nothing(index_elements=key)
    return statement


# -- replace -------------------------------------------------------------------------------


def _replace(
    src: sa.Connection, dst: sa.Connection, job: _Job, cleared_later: Collection[str]
) -> None:
    """Fill `<target>__dsdb_new`, then swap it in atomically."""
    selection = job.selection
    staging = selection.target + STAGING_SUFFIX
    existing = set(sa.inspect(dst).get_table_names())
    target_schema = (
        reflect_tables(dst, [selection.target])[0]
        if selection.target in existing
        else dataclasses.replace(selection.schema, name=selection.target)
    )
    dst.commit()
    lost = tuple(index for index in job.indexes if index not in target_schema.indexes)
    target_schema = dataclasses.replace(target_schema, indexes=(*target_schema.indexes, *lost))
    job.indexes = target_schema.indexes
    staged = _staging_schema(target_schema, staging, engine_for(dst.dialect))
    resumable = (
        job.resumed
        and job.phase in ("load", "swap")
        and staging in existing
        and bool(selection.key)
        and set(target_schema.primary_key) == set(selection.key)
    )
    if not resumable:
        job.phase, job.last_key, job.rows, job.resumed = "load", None, 0, False
        job.rows_resumed = 0
        with dst.begin():
            if staging in existing:
                sa.Table(staging, sa.MetaData()).drop(dst)
            create_tables(dst, [dataclasses.replace(staged, indexes=())], with_indexes=False)
    _load(src, dst, job, staging, "insert")
    job.checkpoint("swap")
    _swap(dst, selection.target, staged, selection.target in existing, cleared_later)


def _staging_schema(target: TableSchema, staging: str, engine: Engine) -> TableSchema:
    """The target's schema under the staging name.

    A self-reference points at the staging table itself where keys follow a table through a
    rename, and at the target's name where keys name tables (SQLite). Where constraint names
    are unique per schema, the staging table's keys go unnamed.
    """
    capabilities = engine.capabilities
    keys = tuple(
        dataclasses.replace(fk, ref_table=staging, name=None)
        if fk.ref_table == target.name and capabilities.keys_follow_renames
        else dataclasses.replace(
            fk, name=None if capabilities.constraint_names_per_schema else fk.name
        )
        for fk in target.foreign_keys
    )
    return dataclasses.replace(target, name=staging, foreign_keys=keys)


def _swap(
    dst: sa.Connection,
    target: str,
    staged: TableSchema,
    exists: bool,
    cleared_later: Collection[str] = (),
) -> None:
    """Put the loaded staging table in the target's place in one atomic step (the engine
    knows how), with the target's indexes and sequences.

    Other tables' foreign keys to the target are put back on the new table; those of
    `cleared_later` tables unchecked where the engine can check them later, as they may
    point at rows the new table lacks until their own replace drops them or their mirror
    deletes them (and `validate_keys` checks them).
    """

    def finish(name: str) -> None:
        schema = dataclasses.replace(staged, name=name)
        create_indexes(dst, [schema])
        advance_sequences(dst, schema)

    swap = TableSwap(staged.name, target, exists, finish, cleared_later)
    engine_for(dst.dialect).swap_table(dst, swap)


def validate_keys(engine: sa.Engine, table: str, parents: Collection[str]) -> None:
    """Check the foreign keys of `table` to `parents` that a replace of those put back
    unchecked (`_swap`), now that a mirror deleted the rows that pointed at removed ones."""
    rules = engine_for(engine.dialect)
    if not rules.capabilities.validates_keys_later or not parents:
        return
    with engine.begin() as conn:
        rules.validate_keys(conn, table, parents)


# -- mirror --------------------------------------------------------------------------------


def _delete_missing(src: sa.Connection, dst: sa.Connection, job: _Job) -> int:
    """Delete target rows whose key is not in the source subset; returns how many."""
    selection = job.selection
    key = list(selection.key)
    engine = engine_for(dst.dialect)
    digest = hashlib.sha1(selection.target.encode()).hexdigest()[:16]
    reflected = sa.Table(selection.target, sa.MetaData(), autoload_with=dst)
    keys = sa.Table(
        f"dsdb_keys_{digest}",
        sa.MetaData(),
        *(sa.Column(name, reflected.c[name].type, primary_key=True) for name in key),
        prefixes=["TEMPORARY"],
    )
    dst.commit()
    engine.drop_temporary(dst, keys)
    keys.create(dst)
    schema = selection.schema
    key_schema = dataclasses.replace(
        schema, columns=tuple(schema.column(name) for name in key), primary_key=tuple(key)
    )
    convert = with_masks(
        batch_converter(key_schema, src.dialect.name, dst.dialect.name),
        key_schema,
        selection.masker,
        selection.mask,
    )
    writer = batch_writer(dst, keys.name, key_schema.columns)
    unfiltered = dataclasses.replace(job, cursor_column=None, last_key=None, only=None)
    query = _read_query(src, unfiltered, key)
    for rows in _source_batches(src, query, job.batch_size):
        writer.write(convert(rows))
    src.rollback()
    engine.analyze_temporary(dst, keys)
    target = sa.table(selection.target, *(sa.column(name) for name in key))
    matched = sa.and_(*(keys.c[name] == target.c[name] for name in key))
    statement = sa.delete(target).where(~sa.exists().where(matched))
    if engine.capabilities.checks_keys_per_row and any(
        fk.ref_table == selection.name for fk in schema.foreign_keys
    ):
        deleted = _delete_within_itself(dst, statement, selection.target)
    else:
        try:
            deleted = dst.execute(statement).rowcount
        except sa.exc.IntegrityError as error:
            dst.rollback()
            raise DsdbError(
                f"table {selection.target!r}: rows gone from the source are still referenced "
                "in the target by rows this migration keeps (append, upsert) or does not "
                f"copy, so nothing was deleted: {driver_message(error)}"
            ) from error
    engine.drop_temporary(dst, keys)
    return int(deleted or 0)


def _delete_within_itself(dst: sa.Connection, statement: sa.Delete, table: str) -> int:
    """Delete rows of a table that references itself, where keys are checked row by row.

    InnoDB (MySQL/MariaDB) checks a foreign key row by row, not at the end of the statement:
    deleting a chain of rows (a boss and the staff under them) fails on the first row whose
    child the statement deletes later. So the rows go with the checks off, then every key pointing
    at the table is checked, in the same transaction, which is rolled back if a row was
    left pointing at a deleted one.
    """
    engine = engine_for(dst.dialect)
    with engine.keys_unchecked(dst):
        deleted = int(dst.execute(statement).rowcount or 0)
    own = [(table, fk) for fk in reflect_foreign_keys(dst, table) if fk.ref_table == table]
    for child, fk in own + engine.incoming_foreign_keys(dst, table):
        columns, referenced = fk.columns, fk.ref_columns
        rows = sa.table(child, *(sa.column(c) for c in columns)).alias("child")
        parent = sa.table(table, *(sa.column(c) for c in referenced)).alias("parent")
        found = sa.and_(
            *(parent.c[r] == rows.c[c] for c, r in zip(columns, referenced, strict=True))
        )
        orphan = (
            sa.select(sa.literal(1))
            .select_from(rows)
            .where(*(rows.c[c].is_not(None) for c in columns), ~sa.exists().where(found))
            .limit(1)
        )
        if dst.execute(orphan).first() is not None:
            dst.rollback()
            raise DsdbError(
                f"table {table!r}: deleting the rows gone from the source would leave rows "
                f"of {child!r} pointing at them ({', '.join(columns)}); nothing was deleted"
            )
    return deleted
