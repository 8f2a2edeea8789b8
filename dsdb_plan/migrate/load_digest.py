"""The target's digest of a table being loaded, taken beside the load (issue 15, aim 1).

Verifying a table copied across kinds of database reads the whole target table back
(`verify.PortableDigest`): into PostgreSQL one scan of about the load's own time, after
it. A table loaded in whole columns (`arrow_copy.py`) is committed batch by batch in key
order, so here a worker thread digests the rows up to each committed batch's key while the
next batches load: the same SQL (`sql_digest.py`), with the record's fingerprint of the
table in the same scan (`Engine.table_checksum_parts`). Once the load is over, the table's
token (its row count and the transactions that wrote its rows, checked in one cheap scan)
proves that the table holds exactly the rows digested; where it does not, verification
digests the table whole as before.

Only for a single integer key: its ranges mean the same rows in both databases, whatever
the collation.
"""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa

from dsdb_plan.checksum import TableFingerprint
from dsdb_plan.dbschema import reflected_columns
from dsdb_plan.engines import engine_for
from dsdb_plan.migrate.digest import SubsetDigest
from dsdb_plan.migrate.sql_digest import in_database
from dsdb_plan.migrate.subset import TableSelection

_INTEGERS = frozenset({"smallint", "integer", "bigint"})

#: A digest of the target table and its fingerprint for the record, as verification takes
#: them (`verify.PortableDigest.with_fingerprint`).
Taken = tuple[TableFingerprint, TableFingerprint]


def digestible(selection: TableSelection) -> bool:
    """Whether the load of `selection` can be digested by key ranges as it goes."""
    key = selection.key
    return len(key) == 1 and selection.schema.column(key[0]).type in _INTEGERS


class LoadDigest:
    """Digests the target rows of `selection` up to each key `committed` reports, in a
    thread of its own with a connection of its own, until `result`."""

    def __init__(self, engine: sa.Engine, selection: TableSelection) -> None:
        self._engine, self._selection = engine, selection
        self._changed = threading.Condition()
        self._committed: Any = None  # the last committed batch's key
        self._finished = False
        self._taken: Taken | None = None
        self._thread = threading.Thread(target=self._run, name="dsdb-load-digest", daemon=True)
        self._thread.start()

    def committed(self, last_key: tuple[Any, ...] | None) -> None:
        """The batch ending at `last_key` is committed: its rows may be digested."""
        if last_key is None:
            return
        with self._changed:
            self._committed = last_key[0]
            self._changed.notify()

    def result(self) -> Taken | None:
        """The digest and fingerprint of every row committed, once the worker has read them;
        None where it could not digest them (verification then reads the table whole)."""
        self.close()
        return self._taken

    def close(self) -> None:
        with self._changed:
            self._finished = True
            self._changed.notify()
        self._thread.join()

    def _next(self, done: Any) -> Any:
        """The key to digest up to, once there is one past `done` or the load is over."""
        with self._changed:
            while self._committed == done and not self._finished:
                self._changed.wait()
            return self._committed

    def _run(self) -> None:
        try:
            self._taken = self._digest()
        except sa.exc.SQLAlchemyError:
            self._taken = None  # verification digests the table whole

    def _digest(self) -> Taken | None:
        selection = self._selection
        name = selection.target
        with self._engine.connect() as conn:
            columns = reflected_columns(sa.inspect(conn), name)
            whole = sa.table(name, *(sa.column(column["name"]) for column in columns))
            engine = engine_for(conn.dialect)
            parts = engine.table_checksum_parts(conn, whole, columns)
            summer = in_database(conn, whole, selection.columns, selection.schema)
            conn.rollback()
            if parts is None or summer is None:
                return None
            key = whole.c[selection.key[0]]
            rows = hashes = 0
            totals = [0] * len(parts.aggregates)
            done: Any = None
            while True:
                upto = self._next(done)
                if upto == done:  # the load is over, and every row it committed digested
                    break
                where = key <= upto if done is None else sa.and_(key > done, key <= upto)
                with engine.fixed_formatting(conn):
                    found, summed, values = summer.with_aggregates(where, parts.aggregates)
                conn.rollback()
                rows += found
                hashes += summed
                totals = [total + int(value) for total, value in zip(totals, values, strict=True)]
                done = upto
        if done is None:
            return None
        digest = SubsetDigest(selection.schema, selection.columns)
        digest.add_total(rows, hashes)
        return digest.result(), parts.fingerprint(rows, totals)
