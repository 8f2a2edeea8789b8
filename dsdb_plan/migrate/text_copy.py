"""Copy a table from one server into another as bulk text, no value passing through Python.

Bulk text is the text MySQL/MariaDB's LOAD DATA reads by default: a line per row, a tab
between values, `\\N` for NULL, backslash escapes (`\\t`, `\\n`, `\\r`, `\\b`, `\\\\`), binary
as hexadecimal. PostgreSQL's `COPY (SELECT …) TO STDOUT` writes nearly that: the source
engine casts in the SELECT what it writes otherwise (`Engine.bulk_text_expression`: booleans
as 0/1, zoned timestamps as UTC wall time, binary as hex) and rewrites the escapes bulk text
lacks (`Engine.bulk_text`); the target engine loads it from a temporary file
(`Engine.bulk_text_loader`: `LOAD DATA LOCAL INFILE`). A table with a column the source
cannot write so is copied by rows (`copier._load_batches`), as is any table into a server
that refuses local files.

The rows go in key ranges of `batch_size` rows, each loaded in key order, the next read
while one loads; the ranges are committed and checkpointed together every `COMMIT_SECONDS`
(the first at once, and at once when the copy is asked to stop), so an interrupted copy
resumes after the last commit. A range the target did not take exactly as written (a
duplicate key, a value it would change or refuse: the target says so) is rolled back with
the ranges since the last commit, and the copy goes on from there by rows, which write or
refuse those rows as always.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any, Protocol, cast

import sqlalchemy as sa

from dsdb_plan.dbschema import reflected_columns
from dsdb_plan.engines import engine_for
from dsdb_plan.migrate.load import COMMIT_SECONDS
from dsdb_plan.migrate.order import after, copy_order
from dsdb_plan.migrate.read_ahead import read_ahead_of
from dsdb_plan.migrate.subset import TableSelection

#: A range read from the source: its bulk text, its row count and its last key.
_Range = tuple[bytes, int, tuple[Any, ...]]


class TextJob(Protocol):
    """The part of a copy in progress (`copier._Job`) that a copy as text reads and moves."""

    selection: TableSelection
    batch_size: int
    cursor_column: str | None
    last_key: tuple[Any, ...] | None
    on_source_snapshot: Callable[[sa.Connection], None] | None
    cancel: threading.Event | None

    def advance(self, rows: int, last_key: tuple[Any, ...] | None, high_water: Any) -> None: ...


def text_copy_note(source: sa.Engine, target: sa.Engine) -> str | None:
    """A plan note when `source` could write its tables as bulk text and `target` could load
    it but its server refuses (a setting the user can change), so the copy goes by rows."""
    if not engine_for(source.dialect).capabilities.writes_bulk_text:
        return None
    with target.connect() as conn:
        refusal = engine_for(conn.dialect).bulk_text_refusal(conn)
    if refusal is None:
        return None
    return f"rows are copied one batch of values at a time, not as bulk text: {refusal}"


def copy_as_text(
    src: sa.Connection,
    dst: sa.Connection,
    job: TextJob,
    table: str,
    filters: Sequence[sa.ColumnElement[bool]],
) -> bool:
    """Copy the rows of `job`'s selection that meet `filters`, after `job.last_key`, into
    `table` as bulk text; returns whether every row went in. False: nothing (the table or
    the target cannot be copied so) or only the ranges `job` advanced past; the caller
    copies the rest by rows, in the same source transaction."""
    selection = job.selection
    order = copy_order(selection, engine_for(dst.dialect))
    if job.cursor_column is not None or selection.mask or order.depth is not None:
        return False  # a high-water mark, masks and depths are worked out in Python
    if not selection.key:
        return False  # ranges need a key
    source = engine_for(src.dialect)
    if not source.capabilities.writes_bulk_text:
        return False
    load = engine_for(dst.dialect).bulk_text_loader(dst)
    if load is None:
        return False
    if not src.in_transaction():
        # Every range in one snapshot, as the rows path reads the table in one statement.
        source.begin_snapshot(src)
    if job.on_source_snapshot is not None:
        job.on_source_snapshot(src)  # once: the rows path, if it takes over, must not again
        job.on_source_snapshot = None
    actual = {c["name"]: c["type"] for c in reflected_columns(sa.inspect(src), selection.name)}
    written = []
    for column in selection.schema.columns:
        expression = source.bulk_text_expression(
            selection.source.c[column.name], column, actual.get(column.name)
        )
        if expression is None:
            return False
        written.append(expression)
    with source.fixed_formatting(src), _scratch_file() as file:
        ranges = _ranges(src, job, order.source, order.sort, written, filters)
        # A generator, closed on leaving: the reading thread stops before the rows path
        # (or anything else) uses `src` again.
        loaded = cast(Generator[_Range], read_ahead_of(ranges))
        with contextlib.closing(loaded):
            pending, last_key, since = 0, None, -math.inf
            for data, rows, last in loaded:
                file.seek(0)
                file.truncate()
                file.write(data)
                file.flush()
                if load(table, selection.schema.columns, file.name) != rows:
                    dst.rollback()
                    return False
                pending, last_key = pending + rows, last
                stopping = job.cancel is not None and job.cancel.is_set()
                if stopping or time.monotonic() - since >= COMMIT_SECONDS:
                    dst.commit()
                    job.advance(pending, last_key, None)
                    pending, since = 0, time.monotonic()
            if pending:
                dst.commit()
                job.advance(pending, last_key, None)
    src.rollback()
    return True


def _scratch_file() -> Any:
    """A private temporary file for one range at a time (mode 0600, deleted on close)."""
    return tempfile.NamedTemporaryFile(prefix="dsdb-", suffix=".txt")


def _ranges(
    src: sa.Connection,
    job: TextJob,
    rows: sa.FromClause,
    sort: Sequence[sa.ColumnElement[Any]],
    written: Sequence[sa.ColumnElement[Any]],
    filters: Sequence[sa.ColumnElement[bool]],
) -> Iterator[_Range]:
    """The rows after `job.last_key`, `job.batch_size` at a time in key order, as bulk text.

    Each range ends at the key `batch_size` rows on (found through the key's index), so its
    last key is known before it is read and its rows are read in one COPY.
    """
    engine = engine_for(src.dialect)
    position = job.last_key
    while True:
        where = [*filters]
        if position is not None:
            where.append(after(sort, position))
        keys = sa.select(*sort).select_from(rows).where(*where)
        upper = src.execute(keys.order_by(*sort).offset(job.batch_size - 1).limit(1)).first()
        if upper is not None:
            where.append(sa.not_(after(sort, tuple(upper))))
        query = sa.select(*written).select_from(rows).where(*where).order_by(*sort)
        data = engine.bulk_text(src, query)
        count = data.count(b"\n")  # a newline in a value is escaped: one per row
        if count == 0:
            return
        last = upper
        if last is None:
            last = src.execute(keys.order_by(*(c.desc() for c in sort)).limit(1)).first()
        assert last is not None  # the range has rows
        yield data, count, tuple(last)
        if upper is None:
            return
        position = tuple(upper)
