"""A backup's tables read as whole Arrow columns where every value comes back exactly
(issue 15, aim 4): SQLite through its ADBC driver (`migrate/sqlite_arrow.py`), as the
migration's column path reads it, without loading polars.

Fetching rows through Python's sqlite3 and building Arrow arrays from Python values was most
of a SQLite backup's time; here the driver reads each batch into Arrow columns in C and the
Parquet writer takes them as they are. The driver types a column by the values of its batch
and turns some values of another storage class into that type without a word (an integer
into a double, a number or a blob into text, text into a blob), so a column takes this path
only where its values are of the one class its declared type stores: one query counts, per
table, the text and blob columns' values of any other class, and each batch's Arrow types
are checked (an integer or a double column's batch holding anything else is typed otherwise,
or refused). A decimal column, whose integers and reals SQLite keeps apart, is read as two
columns, its integers and its reals (`columnar.Numbers`). A table that does not fit is read
row by row, as before.

The count runs beside the read, on a second connection in a thread of its own (the driver
lets go of the GIL): a full scan before the read was 12% of a backup's time (issue 15,
aim 4). The read ends only once the count says no value misfits, so a file is never
completed from a table that does not fit: a count that finds one ends the read with
`Unfit`, and the table is read row by row.

The driver reads on connections of its own, in read transactions that begin after the
backup's: they are used only when the file's change token (`fingerprint.change_token`) taken
before the backup's transaction began is still the token once theirs have begun, so no
write committed in between and all read the same data.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any

import adbc_driver_manager
import adbc_driver_sqlite
import pyarrow as pa
import sqlalchemy as sa

from dsdb_plan.archive.columnar import Column, Numbers
from dsdb_plan.dbschema import ColumnSchema, TableSchema
from dsdb_plan.engines import engine_for
from dsdb_plan.fingerprint import change_token
from dsdb_plan.migrate.sqlite_arrow import STORED_AS, Unfit, database_file, executed, quoted

#: A decimal column holds integers and reals, read apart (`Numbers`); every other column one
#: storage class (`sqlite_arrow.STORED_AS`).
_NUMBERS = "decimal"
#: The Arrow type the driver reads each class as.
_ARROW = {"integer": pa.int64(), "real": pa.float64(), "text": pa.string(), "blob": pa.binary()}
#: Arrow bytes a batch aims at: the next batch's rows are taken from the last one's size, so
#: a table of large values is read in few rows at a time and one of small values in many.
#: On the benchmark's rows (about 13,000 a batch here) a backup took 15% less CPU than in
#: batches of 5,000 rows, and peaked 4 MB higher; batches of 50,000 peaked 36 MB higher.
_BATCH_BYTES = 2 << 20
_FIRST_ROWS = 1000
#: Classes whose columns the driver may fill silently with values of another class: counted
#: by one query per table. An integer or a double column cannot be: a batch holding another
#: class is typed otherwise, or refused, which each batch's check sees.
_COUNTED = ("text", "blob")


class ColumnReader:
    """Reads tables of one SQLite file as Arrow columns, in one read transaction, while a
    second connection in the same snapshot counts each table's misfits."""

    def __init__(self, connection: Any, counter: Any, counting: ThreadPoolExecutor) -> None:
        self._connection = connection
        self._counter = counter
        self._counting = counting

    def batches(self, table: TableSchema, rows: int) -> Iterator[list[Column]] | None:
        """The table's rows in key order, up to `rows` at a time (`_BATCH_BYTES`), each column
        as `Column`s the Parquet writer takes; None where the table cannot take this path. A
        batch the driver does not read exactly after all, or a value of another storage class
        found by the count beside the read, raises `Unfit` (the caller then reads the table
        row by row) before the read ends."""
        if not table.primary_key or not table.columns:
            return None
        if not all(column.type in STORED_AS for column in table.columns):
            return None
        if any(table.column(name).type == _NUMBERS for name in table.primary_key):
            return None
        return self._read(table, rows, self._counting.submit(self._misfits, table))

    def _misfits(self, table: TableSchema) -> int:
        tests = [_misfit(column) for column in table.columns if _class(column) in (*_COUNTED, None)]
        if not tests:
            return 0
        query = f"SELECT count(*) FROM {quoted(table.name)} WHERE {' OR '.join(tests)}"
        with executed(self._counter, query, None, 1) as stream:
            return int(pa.RecordBatchReader.from_stream(stream).read_all().column(0)[0].as_py())

    def _read(self, table: TableSchema, most: int, misfits: Future[int]) -> Iterator[list[Column]]:
        key = list(map(quoted, table.primary_key))
        at_key = [table.column_names.index(name) for name in table.primary_key]
        selects = ", ".join(_selected(column) for column in table.columns)
        base = f"SELECT {selects} FROM {quoted(table.name)}"
        order = f" ORDER BY {', '.join(key)} LIMIT "
        after = f" WHERE ({', '.join(key)}) > ({', '.join('?' * len(key))})"
        last: tuple[Any, ...] | None = None
        rows = min(most, _FIRST_ROWS)
        while True:
            _fits(misfits, wait=False)
            query = base + (after if last is not None else "") + order + str(rows)
            bound = None if last is None else pa.table({f"k{i}": [v] for i, v in enumerate(last)})
            with executed(self._connection, query, bound, rows) as stream:
                try:
                    read = pa.RecordBatchReader.from_stream(stream).read_all()
                except pa.ArrowException as error:
                    raise Unfit(str(error)) from error
            if read.num_rows == 0:
                break
            columns = _columns(table.columns, read)
            last = tuple(_last(columns[index]) for index in at_key)
            if None in last:
                raise Unfit("a NULL in the key: no next batch to read after it")
            yield columns
            if read.num_rows < rows:
                break
            rows = max(1, min(most, _BATCH_BYTES * read.num_rows // max(1, read.nbytes)))
        _fits(misfits, wait=True)


@contextmanager
def column_reader(conn: sa.Connection, token: str | None) -> Iterator[ColumnReader | None]:
    """A reader of the database `conn` reads, in read transactions that see what `conn`'s
    (begun after `token` was taken) sees; None where none can: an engine without a column
    reader, a database that is no plain file, or a file written to since `token`."""
    if token is None or not engine_for(conn.dialect).capabilities.reads_columns:
        yield None
        return
    path = database_file(conn)
    if path is None:
        yield None
        return
    database = adbc_driver_sqlite.connect(path)
    try:
        with ExitStack() as stack:
            reading, counting = (stack.enter_context(_snapshot(database)) for _ in range(2))
            if reading is None or counting is None or change_token(conn.engine) != token:
                yield None
                return
            # Shut down before the connections close: a count still running is waited for.
            counter = stack.enter_context(
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsdb-misfits")
            )
            yield ColumnReader(reading, counting, counter)
    finally:
        database.close()


@contextmanager
def _snapshot(database: Any) -> Iterator[Any]:
    """A connection to `database` in a read transaction that has taken its snapshot, or None
    where the driver refused."""
    connection = adbc_driver_manager.AdbcConnection(database)
    try:
        connection.set_autocommit(False)
        try:
            with executed(connection, "SELECT count(*) FROM sqlite_master", None, 1) as stream:
                pa.RecordBatchReader.from_stream(stream).read_all()  # takes the snapshot
        except Unfit:
            yield None
            return
        yield connection
    finally:
        connection.rollback()
        connection.close()


def _fits(misfits: Future[int], *, wait: bool) -> None:
    """`Unfit` once the count beside the read found values of another storage class; with
    `wait`, the count is waited for (as the read ends)."""
    if (wait or misfits.done()) and misfits.result():
        raise Unfit("values of another storage class than their column's")


def _last(column: Column) -> Any:
    assert isinstance(column, pa.Array)  # a key is never a decimal's two columns
    return column[len(column) - 1].as_py()


def _class(column: ColumnSchema) -> str | None:
    """The one storage class the column holds; None for a decimal's two."""
    classes = STORED_AS[column.type]
    return classes[0] if len(classes) == 1 else None


def _misfit(column: ColumnSchema) -> str:
    """True for a row whose value in `column` is of a class the column does not take.

    SQLite sorts NULL before numbers, numbers before text, text before blobs, whatever a
    column's affinity or collation (https://www.sqlite.org/datatype3.html#comparisons), and
    '' and x'' are the least text and blob: comparing with them picks out the other classes
    without a function call per value, a third faster than `typeof`.
    """
    name = quoted(column.name)
    kind = _class(column)
    if kind is None:  # a decimal: integers and reals only
        return f"{name} >= ''"
    if kind == "blob":
        return f"{name} < x''"
    return f"({name} < '' OR {name} >= x'')"


def _selected(column: ColumnSchema) -> str:
    name = quoted(column.name)
    if _class(column) is not None:
        return name
    return (
        f"CASE WHEN typeof({name}) = 'integer' THEN {name} END, "
        f"CASE WHEN typeof({name}) = 'real' THEN {name} END"
    )


def _columns(columns: Sequence[ColumnSchema], read: pa.Table) -> list[Column]:
    """The batch's columns as the writer takes them, or `Unfit` where one is not of the
    type its class reads as (so it held values of another class)."""
    arrays = [read.column(index).combine_chunks() for index in range(read.num_columns)]
    found: list[Column] = []
    at = 0
    for column in columns:
        kind = _class(column)
        if kind is None:
            integers, reals = _typed(arrays[at], "integer"), _typed(arrays[at + 1], "real")
            found.append(Numbers(integers, reals))
            at += 2
            continue
        found.append(_typed(arrays[at], kind))
        at += 1
    return found


def _typed(array: pa.Array, kind: str) -> pa.Array:
    if array.null_count == len(array):
        return pa.nulls(len(array), _ARROW[kind])
    if array.type != _ARROW[kind]:
        raise Unfit(f"a {kind} column read as {array.type}")
    if kind == "text":
        try:
            array.validate(full=True)  # text that is not UTF-8, as Python's sqlite3 refuses
        except pa.ArrowInvalid as error:
            raise Unfit(str(error)) from error
    return array
