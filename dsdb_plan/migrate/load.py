"""Batch writers: load rows into one table as fast as each database allows.

Shared by restores and migrations. Rows arrive already converted for the target
(`values.row_converter`) and are written in batches with three operations:

- ``insert``: plain insert (the table is new or known to be empty);
- ``insert_ignore``: rows whose key already exists are skipped (append mode, and every replay
  of a batch that was committed but not checkpointed);
- ``upsert``: insert, or update the non-key columns of the row with the same key.

Each engine picks its writer (`Engine.bulk_writer`) from those here. Fast paths per target:
PostgreSQL (psycopg 3) COPY — straight into the table for ``insert``,
and for the keyed operations as long as no batch meets a key the table holds; otherwise into
a temporary staging table followed by one ``INSERT … SELECT … ON CONFLICT``;
MySQL/MariaDB multi-row ``INSERT … ON DUPLICATE KEY UPDATE`` (the driver's executemany
rewrites a batch into multi-row statements capped below ``max_allowed_packet``: PyMySQL at
1,000,000 bytes, mysqlclient at 64 KiB), or, where a second unique index would make that
fire on another row, a temporary table merged by key; SQLite prepared executemany with
``ON CONFLICT``. An engine without a fast path goes through SQLAlchemy's typed columns, with a key
lookup for the keyed operations.

Identifiers are quoted by SQLAlchemy's preparer (which also doubles ``%`` for drivers that
interpolate), values are always bound.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from itertools import islice
from typing import Any, Literal, Protocol, cast

import psycopg
import sqlalchemy as sa
from psycopg import sql
from psycopg.types.string import BytesBinaryDumper

from dsdb_plan.dbschema import ColumnSchema, TableSchema, quote_for_driver, target_type
from dsdb_plan.engines import engine_for
from dsdb_plan.errors import DsdbError
from dsdb_plan.migrate.read_ahead import read_ahead_of

Operation = Literal["insert", "insert_ignore", "upsert"]
Row = tuple[Any, ...]
#: Rows per round trip when the caller does not choose.
BATCH_ROWS = 10_000
#: Keys per lookup statement on the generic path (bounded statement size).
_LOOKUP_KEYS = 500


class BatchWriter(Protocol):
    """Writes batches of converted rows into one table through one connection.

    `write` runs inside the connection's current transaction; committing is the caller's.
    """

    def write(self, rows: Sequence[Row]) -> None: ...


def batch_writer(
    conn: sa.Connection,
    table: str,
    columns: Sequence[ColumnSchema],
    *,
    operation: Operation = "insert",
    key: Sequence[str] = (),
) -> BatchWriter:
    """The fastest writer `conn`'s database has for `operation` on `table`'s `columns`.

    Keyed operations need `key` (a subset of `columns`) to be unique in the target: a primary
    key or a unique index, which ``ON CONFLICT`` and ``ON DUPLICATE KEY`` rely on.
    """
    names = tuple(column.name for column in columns)
    if operation != "insert":
        if not key:
            raise DsdbError(f"table {table!r}: {operation} needs key columns")
        missing = [name for name in key if name not in names]
        if missing:
            raise DsdbError(f"table {table!r}: key columns {missing} are not copied")
    return cast(
        BatchWriter, engine_for(conn.dialect).bulk_writer(conn, table, columns, key, operation)
    )


# -- the writers engines choose from (`Engine.bulk_writer`) ------------------------------------


def postgres_copy_writer(
    conn: sa.Connection, table: str, names: Sequence[str], key: Sequence[str], operation: str
) -> BatchWriter:
    """COPY (psycopg 3): straight into the table, or through a staging table for keyed
    operations once a batch meets a key the table holds."""
    if operation == "insert":
        return _PostgresCopy(conn, table, names)
    staged = _PostgresStaged(conn, table, names, tuple(key), cast(Operation, operation))
    return _PostgresCopyFirst(conn, staged)


def mysql_writer(
    conn: sa.Connection, table: str, names: Sequence[str], key: Sequence[str], operation: str
) -> BatchWriter:
    """Multi-row INSERT … ON DUPLICATE KEY UPDATE, or a temporary table merged by key where a
    second unique index would make that fire on another row."""
    if operation != "insert" and _other_unique_index(conn, table, key):
        return _MysqlStaged(conn, table, names, tuple(key), cast(Operation, operation))
    statement = _mysql_statement(conn.dialect, table, names, key, cast(Operation, operation))
    return _DriverExecutemany(conn, statement)


def on_conflict_writer(
    conn: sa.Connection, table: str, names: Sequence[str], key: Sequence[str], operation: str
) -> BatchWriter:
    """Prepared executemany with INSERT … ON CONFLICT (SQLite 3.24+, PostgreSQL)."""
    statement = _on_conflict_statement(conn.dialect, table, names, key, cast(Operation, operation))
    return _DriverExecutemany(conn, statement)


def generic_writer(
    conn: sa.Connection,
    table: str,
    columns: Sequence[ColumnSchema],
    key: Sequence[str],
    operation: str,
) -> BatchWriter:
    """SQLAlchemy's typed columns, with a key lookup for the keyed operations."""
    return _GenericWriter(conn, table, columns, tuple(key), cast(Operation, operation))


def load_rows(
    conn: sa.Connection,
    table: TableSchema,
    rows: Iterable[Row],
    *,
    name: str | None = None,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[int], None] | None = None,
    read_ahead: bool = False,
) -> int:
    """Insert every row of `rows` into `table` (or `name`) in batches; returns the count.

    Runs in the caller's transaction; `progress(rows_so_far)` after each batch. With
    `read_ahead`, the next batch is taken from `rows` in a worker thread while one is
    written (`rows` must then not read through `conn`).
    """
    writer = batch_writer(conn, name or table.name, table.columns)
    count = 0
    chunks = batches(rows, batch_rows)
    for batch in read_ahead_of(chunks) if read_ahead else chunks:
        writer.write(batch)
        count += len(batch)
        if progress is not None:
            progress(count)
    return count


def batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    """`rows` in lists of at most `size`, never holding more than one list."""
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


#: After the first batch (committed at once, so progress shows), the bulk paths commit (and
#: so checkpoint) their batches together once this long has passed since the last commit,
#: not one by one: a commit and its checkpoint cost the same for any number of batches, and
#: a killed copy redoes at most this much.
COMMIT_SECONDS = 2.0


def _insert_statement(dialect: sa.Dialect, table: str, names: Sequence[str]) -> str:
    """A single-row INSERT with a positional placeholder per column."""
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    columns = ", ".join(quote_for_driver(dialect, name) for name in names)
    return (
        f"INSERT INTO {quote_for_driver(dialect, table)} ({columns}) "
        f"VALUES ({', '.join([mark] * len(names))})"
    )


def _on_conflict_statement(
    dialect: sa.Dialect,
    table: str,
    names: Sequence[str],
    key: Sequence[str],
    operation: Operation,
) -> str:
    """INSERT for SQLite (3.24+) and PostgreSQL drivers without COPY."""
    if dialect.paramstyle not in ("qmark", "format", "pyformat"):
        raise DsdbError(f"unsupported parameter style {dialect.paramstyle!r}")
    statement = _insert_statement(dialect, table, names)
    return statement + _conflict_clause(dialect, names, key, operation, "excluded")


def _conflict_clause(
    dialect: sa.Dialect,
    names: Sequence[str],
    key: Sequence[str],
    operation: Operation,
    excluded: str,
) -> str:
    if operation == "insert":
        return ""
    target = ", ".join(quote_for_driver(dialect, name) for name in key)
    updates = [name for name in names if name not in key]
    if operation == "insert_ignore" or not updates:
        return f" ON CONFLICT ({target}) DO NOTHING"
    sets = ", ".join(
        f"{quote_for_driver(dialect, n)} = {excluded}.{quote_for_driver(dialect, n)}"
        for n in updates
    )
    return f" ON CONFLICT ({target}) DO UPDATE SET {sets}"


def _mysql_statement(
    dialect: sa.Dialect,
    table: str,
    names: Sequence[str],
    key: Sequence[str],
    operation: Operation,
) -> str:
    """A single-row INSERT the MySQL drivers' executemany turn into multi-row statements.

    Rows with an existing key are skipped with a no-op update rather than INSERT IGNORE,
    which would also turn truncations and NULLs in NOT NULL columns into warnings.
    """
    q = quote_for_driver
    statement = _insert_statement(dialect, table, names)
    if operation == "insert":
        return statement
    updates = [name for name in names if name not in key]
    if operation == "insert_ignore" or not updates:
        first = q(dialect, key[0])
        return statement + f" ON DUPLICATE KEY UPDATE {first} = {first}"
    sets = ", ".join(f"{q(dialect, n)} = VALUES({q(dialect, n)})" for n in updates)
    return statement + f" ON DUPLICATE KEY UPDATE {sets}"


def _other_unique_index(conn: sa.Connection, table: str, key: Sequence[str]) -> bool:
    """Whether `table` has a unique index besides the one on `key`: ON DUPLICATE KEY would
    then also fire on it, and update a row with another key."""
    inspector = sa.inspect(conn)
    unique: list[Sequence[str | None]] = [inspector.get_pk_constraint(table)["constrained_columns"]]
    unique += [index["column_names"] for index in inspector.get_indexes(table) if index["unique"]]
    unique += [c["column_names"] for c in inspector.get_unique_constraints(table)]
    return any(set(columns) != set(key) for columns in unique if columns)


def _stage_name(table: str) -> str:
    """The session's temporary staging table for `table`: one per table, whatever its name."""
    return f"dsdb_stage_{hashlib.sha1(table.encode()).hexdigest()[:16]}"


class _MysqlStaged:
    """Keyed writes into a MySQL/MariaDB table with more than one unique index, matched by
    the key alone: each batch goes into a temporary table, then one UPDATE … JOIN changes
    the rows whose key the target holds (upsert) and one INSERT … SELECT adds the others.
    A row that clashes on another unique index is then refused, as PostgreSQL refuses it.
    """

    def __init__(
        self,
        conn: sa.Connection,
        table: str,
        names: Sequence[str],
        key: Sequence[str],
        operation: Operation,
    ) -> None:
        self._conn = conn

        def q(name: str) -> str:
            return quote_for_driver(conn.dialect, name)

        stage_name = _stage_name(table)
        stage, target = q(stage_name), q(table)
        columns = ", ".join(map(q, names))
        matched = " AND ".join(f"t.{q(name)} = s.{q(name)}" for name in key)
        # The target's column types and NOT NULLs, none of its indexes; kept for the session.
        self._create = (
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} AS SELECT {columns} FROM {target}"
            " WHERE FALSE"
        )
        self._fill = _insert_statement(conn.dialect, stage_name, names)
        self._merge = []
        updates = [name for name in names if name not in key]
        if operation != "insert_ignore" and updates:
            sets = ", ".join(f"t.{q(name)} = s.{q(name)}" for name in updates)
            self._merge.append(f"UPDATE {target} t JOIN {stage} s ON {matched} SET {sets}")
        self._merge += [
            f"INSERT INTO {target} ({columns}) SELECT {', '.join(f's.{q(n)}' for n in names)}"
            f" FROM {stage} s LEFT JOIN {target} t ON {matched} WHERE t.{q(key[0])} IS NULL",
            f"DELETE FROM {stage}",
        ]

    def write(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        self._conn.exec_driver_sql(self._create)
        self._conn.exec_driver_sql(self._fill, list(rows))
        for statement in self._merge:
            self._conn.exec_driver_sql(statement)


class _DriverExecutemany:
    """One prepared statement, executed for a whole batch by the driver."""

    def __init__(self, conn: sa.Connection, statement: str) -> None:
        self._conn = conn
        self._statement = statement

    def write(self, rows: Sequence[Row]) -> None:
        if rows:
            self._conn.exec_driver_sql(self._statement, list(rows))


def _copy_statement(table: str, names: Sequence[str], binary: bool = False) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN{}").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.SQL(" (FORMAT BINARY)" if binary else ""),
    )


#: Column types (pg_type.typname) whose binary COPY form psycopg writes exactly, and the
#: test (Python source, on `{v}`) a non-null value must pass to be written in it: the classes
#: `values` gives these types, zoned as the column is. float4 is left out (a double
#: rounded once more to single precision can differ from the text rounded once).
_BINARY_TESTS: dict[str, str] = {
    "int2": "{v}.__class__ is int and -32768 <= {v} <= 32767",
    "int4": "{v}.__class__ is int and -2147483648 <= {v} <= 2147483647",
    "int8": "{v}.__class__ is int and -9223372036854775808 <= {v} <= 9223372036854775807",
    "float8": "{v}.__class__ is float",
    "numeric": "{v}.__class__ is Decimal",
    "bool": "{v}.__class__ is bool",
    "text": "{v}.__class__ is str",
    "varchar": "{v}.__class__ is str",
    "bpchar": "{v}.__class__ is str",
    "bytea": "{v}.__class__ is bytes",
    "date": "{v}.__class__ is date",
    "timestamp": "{v}.__class__ is datetime and {v}.tzinfo is None",
    "timestamptz": "{v}.__class__ is datetime and {v}.tzinfo is not None",
}


class _Copier:
    """COPYs batches into one table's columns: in binary when every value of the batch has
    the Python class its column's binary form is written exactly from, else in text.

    Binary spares formatting each value as text and PostgreSQL parsing it (timestamps,
    decimals, bytea: about half of a COPY's time). psycopg picks binary dumpers by the
    column types given to it, so a value of another class (a text that `values` left for
    the database to judge) must go as text, where PostgreSQL parses or refuses it.
    """

    def __init__(self, table: str, names: Sequence[str]) -> None:
        self._table = table
        self._names = tuple(names)
        self._types: list[str] | None = None
        self._fits: Callable[[Sequence[Row]], bool] | None = None

    def copy(self, cursor: Any, rows: Sequence[Row], into: str | None = None) -> None:
        """COPY `rows` into the table (or `into`, a table with the same column types)."""
        if self._types is None:
            self._prepare(cursor)
        binary = self._fits is not None and self._fits(rows)
        if binary:
            # bytea's binary dumper is by default the one psycopg's DB-API module registers
            # for its `Binary` wrapper, written in Python: the C one for bytes is twice as fast.
            cursor.adapters.register_dumper(bytes, BytesBinaryDumper)
        with cursor.copy(_copy_statement(into or self._table, self._names, binary)) as copy:
            if binary:
                copy.set_types(self._types)
            for row in rows:
                copy.write_row(row)

    def _prepare(self, cursor: Any) -> None:
        cursor.execute(
            "SELECT a.attname, t.typname FROM pg_attribute a "
            "JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE a.attrelid = to_regclass(quote_ident(%s)) AND a.attnum > 0 "
            "AND NOT a.attisdropped",
            (self._table,),
        )
        found = dict(cursor.fetchall())
        self._types = [found.get(name, "") for name in self._names]
        if all(kind in _BINARY_TESTS for kind in self._types):
            self._fits = _fits_function(self._types)


def _fits_function(types: Sequence[str]) -> Callable[[Sequence[Row]], bool]:
    """A function telling whether every value of a batch passes its column's binary test."""
    names = ", ".join(f"v{index}" for index in range(len(types)))
    tests = " and ".join(
        f"(v{index} is None or ({_BINARY_TESTS[kind].format(v=f'v{index}')}))"
        for index, kind in enumerate(types)
    )
    source = (
        f"def fits(rows):\n    for {names}, in rows:\n        if not ({tests}):\n"
        "            return False\n    return True\n"
    )
    scope: dict[str, Any] = {"Decimal": Decimal, "date": dt.date, "datetime": dt.datetime}
    exec(compile(source, "<binary COPY test>", "exec"), scope)
    fits: Callable[[Sequence[Row]], bool] = scope["fits"]
    return fits


@contextlib.contextmanager
def _driver_cursor(conn: sa.Connection) -> Iterator[Any]:
    """A psycopg cursor on the connection SQLAlchemy holds, so it shares the transaction.

    SQLAlchemy's transaction is begun first: otherwise `conn.commit()` would not know about
    the work and leave it uncommitted. The driver's errors leave wrapped as SQLAlchemy
    wraps those of its own statements, so callers handle one kind.
    """
    if not conn.in_transaction():
        conn.begin()
    try:
        with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            yield cursor
    except psycopg.Error as error:
        raise sa.exc.DBAPIError.instance(
            None, None, error, psycopg.Error, dialect=conn.dialect
        ) from error


class _PostgresCopy:
    """COPY FROM STDIN: PostgreSQL's fastest load path, in the open transaction."""

    def __init__(self, conn: sa.Connection, table: str, names: Sequence[str]) -> None:
        self._conn = conn
        self._copier = _Copier(table, names)

    def write(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        with _driver_cursor(self._conn) as cursor:
            self._copier.copy(cursor, rows)


class _PostgresCopyFirst:
    """A keyed operation that COPYs straight into the table while no key is already there.

    Rows whose keys the table does not hold are inserted alike by ``insert``,
    ``insert_ignore`` and ``upsert``, so each batch is first COPYed into the table itself
    (no staging table, no ``ON CONFLICT``: several times faster into an empty table, the
    usual first copy). A batch that meets an existing key fails with a unique violation as
    a whole; it is rolled back to its savepoint and written by `staged`, as is every later
    batch. The outcome is the staged one in every case.
    """

    _SAVEPOINT = sql.SQL("SAVEPOINT dsdb_copy_first")

    def __init__(self, conn: sa.Connection, staged: _PostgresStaged) -> None:
        self._conn = conn
        self._copier = staged.copier
        self._staged = staged
        self._direct = True

    def write(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        if self._direct:
            with _driver_cursor(self._conn) as cursor:
                cursor.execute(self._SAVEPOINT)
                try:
                    self._copier.copy(cursor, rows)
                except psycopg.errors.UniqueViolation:
                    cursor.execute(sql.SQL("ROLLBACK TO SAVEPOINT dsdb_copy_first"))
                    self._direct = False
                else:
                    cursor.execute(sql.SQL("RELEASE SAVEPOINT dsdb_copy_first"))
                    return
        self._staged.write(rows)


class _PostgresStaged:
    """COPY into a temporary table, then one INSERT … SELECT … ON CONFLICT per batch.

    The staging table takes the target's column types (`CREATE … AS … WITH NO DATA`, which
    copies no NOT NULL constraint) and lives as long as the session; it is emptied after each
    batch. `IF NOT EXISTS` recreates it when a rolled-back transaction took it away.
    """

    def __init__(
        self,
        conn: sa.Connection,
        table: str,
        names: Sequence[str],
        key: Sequence[str],
        operation: Operation,
    ) -> None:
        self._conn = conn
        stage = _stage_name(table)
        columns = sql.SQL(", ").join(map(sql.Identifier, names))
        self._create = sql.SQL(
            "CREATE TEMPORARY TABLE IF NOT EXISTS {} AS SELECT {} FROM {} WITH NO DATA"
        ).format(sql.Identifier(stage), columns, sql.Identifier(table))
        self._stage = stage
        #: Shared with `_PostgresCopyFirst`; the staging table has the target's column types.
        self.copier = _Copier(table, names)
        updates = [name for name in names if name not in key]
        conflict = sql.SQL(", ").join(map(sql.Identifier, key))
        action: sql.Composable
        if operation == "insert_ignore" or not updates:
            action = sql.SQL("DO NOTHING")
        else:
            action = sql.SQL("DO UPDATE SET {}").format(
                sql.SQL(", ").join(
                    sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(n), sql.Identifier(n))
                    for n in updates
                )
            )
        self._merge = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) {}").format(
            sql.Identifier(table), columns, columns, sql.Identifier(stage), conflict, action
        )
        self._truncate = sql.SQL("TRUNCATE {}").format(sql.Identifier(stage))

    def write(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        with _driver_cursor(self._conn) as cursor:
            cursor.execute(self._create)
            self.copier.copy(cursor, rows, into=self._stage)
            cursor.execute(self._merge)
            cursor.execute(self._truncate)


class _GenericWriter:
    """Any SQLAlchemy dialect: typed executemany; keyed operations look existing keys up."""

    def __init__(
        self,
        conn: sa.Connection,
        table: str,
        columns: Sequence[ColumnSchema],
        key: Sequence[str],
        operation: Operation,
    ) -> None:
        self._conn = conn
        self._operation = operation
        self._names = [column.name for column in columns]
        self._key_positions = [self._names.index(name) for name in key]
        keyed = frozenset(key)
        self._table = sa.table(
            table,
            *(
                sa.column(c.name, target_type(c, conn.dialect.name, keyed=c.name in keyed))
                for c in columns
            ),
        )
        binds: dict[Any, Any] = {
            self._table.c[n]: sa.bindparam(f"p{i}") for i, n in enumerate(self._names)
        }
        self._insert = sa.insert(self._table).values(binds)
        updates = [i for i, name in enumerate(self._names) if name not in keyed]
        self._update_positions = updates
        self._update = (
            sa.update(self._table)
            .where(*(self._table.c[n] == sa.bindparam(f"k{i}") for i, n in enumerate(key)))
            .values({self._table.c[self._names[i]]: sa.bindparam(f"p{i}") for i in updates})
        )

    def write(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        if self._operation == "insert":
            self._conn.execute(self._insert, [self._params(row) for row in rows])
            return
        existing = self._existing_keys(rows)
        fresh = [row for row in rows if self._key(row) not in existing]
        if fresh:
            self._conn.execute(self._insert, [self._params(row) for row in fresh])
        if self._operation == "upsert" and self._update_positions:
            stale = [row for row in rows if self._key(row) in existing]
            if stale:
                self._conn.execute(self._update, [self._update_params(row) for row in stale])

    def _key(self, row: Row) -> Row:
        return tuple(row[i] for i in self._key_positions)

    def _params(self, row: Row) -> dict[str, Any]:
        return {f"p{i}": value for i, value in enumerate(row)}

    def _update_params(self, row: Row) -> dict[str, Any]:
        params = {f"p{i}": row[i] for i in self._update_positions}
        params.update({f"k{i}": row[p] for i, p in enumerate(self._key_positions)})
        return params

    def _existing_keys(self, rows: Sequence[Row]) -> set[Row]:
        columns = [self._table.c[self._names[i]] for i in self._key_positions]
        found: set[Row] = set()
        keys = list(dict.fromkeys(self._key(row) for row in rows))
        for start in range(0, len(keys), _LOOKUP_KEYS):
            chunk = keys[start : start + _LOOKUP_KEYS]
            condition: sa.ColumnElement[bool]
            if len(columns) == 1:
                condition = columns[0].in_([key[0] for key in chunk])
            else:
                condition = sa.or_(
                    *(
                        sa.and_(*(c == v for c, v in zip(columns, key, strict=True)))
                        for key in chunk
                    )
                )
            query = sa.select(*columns).where(condition)
            found.update(tuple(row) for row in self._conn.execute(query))
        return found
