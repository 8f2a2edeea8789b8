"""Which rows a resync has to copy again: the key ranges where source and target differ.

A table copied before usually still holds most of its subset, and copying all of it again
costs far more than finding what changed. The source subset is cut into ranges of `size`
keys; each range is digested on both sides (`verify.py`'s portable digest, in the database
where it can be) and only the ranges whose digests differ are copied. A digest covers whole
rows, keys included, so a range is skipped only when the target holds exactly the source's
rows in it. A mode that keeps the target rows whose key the source no longer has (upsert,
append) compares a range that differs once more, through the target rows of the source's
keys alone (`verify.keyed_digest`): rows deleted from the source do not make their range
differ forever. Once more than half the ranges differ, comparing the rest would cost more than
it saves: everything is copied. The database numbers the keys to find where ranges start,
and the two sides digest each range at the same time.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa

from dsdb_plan.checksum import TableFingerprint
from dsdb_plan.dbschema import TableSchema, usable_from_another_thread
from dsdb_plan.migrate.order import before, raw
from dsdb_plan.migrate.subset import TableSelection
from dsdb_plan.migrate.verify import PortableDigest, keyed_digest
from dsdb_plan.rows import read_chunks
from dsdb_plan.values import row_converter

_CHUNK_ROWS = 5_000


def differing_rows(
    source_conn: sa.Connection,
    selection: TableSelection,
    target_conn: sa.Connection,
    size: int,
    *,
    keeps_target_rows: bool = False,
) -> sa.ColumnElement[bool] | None:
    """A condition on the source table for the rows of the key ranges that differ (false
    when none do), or None when most do or the target holds no rows: copy everything.
    `keeps_target_rows`: target rows whose key the source lacks make no range differ."""
    target = sa.table(selection.target, *(sa.column(name) for name in selection.columns))
    if target_conn.execute(sa.select(sa.literal(1)).select_from(target).limit(1)).first() is None:
        return None
    bounds = _range_starts(source_conn, selection, size)
    key_schema = TableSchema(
        selection.name, tuple(selection.schema.column(name) for name in selection.key)
    )
    # Range bounds are looked up in the target as it stores keys (SQLite dates as text, ...).
    convert = row_converter(key_schema, source_conn.dialect.name, target_conn.dialect.name)
    source_key = [raw(selection.source.c[name]) for name in selection.key]
    target_key = [raw(target.c[name]) for name in selection.key]
    source_digest = _Digester(source_conn, selection, selection.source)
    target_digest = _Digester(target_conn, selection, target)
    differing: list[sa.ColumnElement[bool]] = []
    beside = usable_from_another_thread(target_conn)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsdb-diff") as pool:
        for index, start in enumerate(bounds):
            end = bounds[index + 1] if index + 1 < len(bounds) else None
            in_source = _in_range(source_key, start, end)
            in_target = _in_range(target_key, convert(start), None if end is None else convert(end))
            # The target digests its range while the source digests its own.
            theirs = pool.submit(target_digest, in_target) if beside else None
            mine = source_digest(in_source)
            if mine == (theirs.result() if theirs else target_digest(in_target)):
                continue
            if keeps_target_rows and mine == keyed_digest(
                source_conn, selection, target_conn, target, in_source
            ):
                continue  # only rows the source deleted, which the mode keeps
            differing.append(in_source)
            if len(differing) * 2 > len(bounds):
                return None
    return sa.or_(*differing) if differing else sa.false()


def _range_starts(
    conn: sa.Connection, selection: TableSelection, size: int
) -> list[tuple[Any, ...]]:
    """The first key of every `size` keys of the subset, in key order. Target rows below
    the first are in no range: copying could not remove them anyway (mirror's deletion
    does)."""
    key = [selection.source.c[name] for name in selection.key]
    numbered = sa.select(
        *(raw(column).label(f"k{index}") for index, column in enumerate(key)),
        sa.func.row_number().over(order_by=key).label("n"),
    )
    if selection.where is not None:
        numbered = numbered.where(selection.where)
    keys = numbered.subquery("numbered")
    starts = (
        sa.select(*(keys.c[f"k{index}"] for index in range(len(key))))
        .where((keys.c.n - 1) % size == 0)
        .order_by(keys.c.n)
    )
    return [tuple(row) for chunk in read_chunks(conn, starts, _CHUNK_ROWS) for row in chunk]


def _in_range(
    key: Sequence[sa.ColumnElement[Any]], start: Sequence[Any], end: Sequence[Any] | None
) -> sa.ColumnElement[bool]:
    """start <= key < end (no end: key >= start), as row-value comparisons spelled out."""
    condition = sa.not_(before(key, start))
    return condition if end is None else sa.and_(condition, before(key, end))


class _Digester:
    """The portable digest of the subset's rows in a key range, on one side."""

    def __init__(
        self, conn: sa.Connection, selection: TableSelection, table: sa.TableClause | sa.Table
    ) -> None:
        self.selection = selection
        self.on_source = table is selection.source
        self.digest = PortableDigest(conn, selection, table)

    def __call__(self, in_range: sa.ColumnElement[bool]) -> TableFingerprint:
        where = self.selection.where if self.on_source else None
        return self.digest(in_range if where is None else sa.and_(where, in_range))
