"""SQLite to PostgreSQL in whole columns: read as Arrow, converted and digested in polars,
written with one binary COPY per batch (issue 15, aim 1).

The row-by-row path (`copier._load_batches`) spends most of its time in Python per value:
reading tuples, converting (`convert.py`), `write_row` and the portable digest
(`digest.SubsetDigest`). Here the ADBC SQLite driver reads each batch into Arrow columns in
C, polars (Rust) gives each column the Arrow type of its target column and writes it as the
portable digest writes it, hashes the rows' digest text with MD5, and the ADBC PostgreSQL
driver writes the batch with binary COPY (C++), which the server stores without parsing
text.

SQLite stores any value in any column, so a column takes this path only where every value
of the batch is of the storage class its portable type expects and reads back exactly as
`values` would make it: integers, REAL doubles, text, blobs, 0/1 booleans, ISO dates and
ISO timestamps in UTC or without a zone, numbers into decimals, each into the PostgreSQL
type dsdb creates for it. A batch that holds anything else (a text in an integer column, a
timestamp with another offset, a 30 February) stops this path before it is written: the
batches before it are committed and checkpointed, and the row-by-row path carries on from
the last key, exactly as a resume does. The digest of every row copied here is the one
`SubsetDigest` computes (the tests compare them on awkward values).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import adbc_driver_manager
import adbc_driver_sqlite
import sqlalchemy as sa

from dsdb_plan.dbschema import ColumnSchema, TableSchema
from dsdb_plan.engines import engine_for
from dsdb_plan.migrate.digest import ESCAPED_TYPES, MODULUS, NULL, SEPARATOR, float_text
from dsdb_plan.migrate.load import COMMIT_SECONDS
from dsdb_plan.migrate.read_ahead import read_ahead_of
from dsdb_plan.migrate.sqlite_arrow import STORED_AS, Unfit, database_file, executed, quoted
from dsdb_plan.migrate.subset import TableSelection
from dsdb_plan.portable import DOUBLE_EXACT_INTEGERS
from dsdb_plan.sigint import python_keeps_ctrl_c

with python_keeps_ctrl_c():
    import polars as pl
    import polars_hash  # noqa: F401  (registers the `nchash` namespace on expressions)

#: Column types this path writes, with the PostgreSQL column types (pg_type.typname) each
#: may land in: those dsdb creates, and whose text input reads what is written exactly.
_TARGET_TYPES: dict[str, frozenset[str]] = {
    "smallint": frozenset({"int2", "int4", "int8"}),
    "integer": frozenset({"int4", "int8"}),
    "bigint": frozenset({"int8"}),
    "double": frozenset({"float8"}),
    "decimal": frozenset({"numeric"}),
    "boolean": frozenset({"bool"}),
    "varchar": frozenset({"varchar", "text"}),
    "text": frozenset({"text"}),
    "binary": frozenset({"bytea"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"timestamp", "timestamptz"}),
}
#: The Arrow type (as polars names it) each PostgreSQL column type is written from: binary
#: COPY takes each value in its column's own format. Decimals' scale is each batch's.
_WRITTEN_AS: dict[str, pl.DataType] = {
    "int2": pl.Int16(),
    "int4": pl.Int32(),
    "int8": pl.Int64(),
    "float8": pl.Float64(),
    "numeric": pl.Decimal(38, 0),
    "bool": pl.Boolean(),
    "varchar": pl.String(),
    "text": pl.String(),
    "bytea": pl.Binary(),
    "date": pl.Date(),
    "timestamp": pl.Datetime("us"),
    "timestamptz": pl.Datetime("us", "UTC"),
}
#: The most digits a decimal of Arrow (and polars) holds.
_DECIMAL_DIGITS = 38
#: How the driver reads the values each type takes this path from (decimals as doubles:
#: `_read_query`); a column of NULLs only may read as anything.
_READ_AS: dict[str, frozenset[type[pl.DataType]]] = {
    "smallint": frozenset({pl.Int64}),
    "integer": frozenset({pl.Int64}),
    "bigint": frozenset({pl.Int64}),
    "double": frozenset({pl.Float64}),
    "decimal": frozenset({pl.Float64}),
    "boolean": frozenset({pl.Int64}),
    "varchar": frozenset({pl.String}),
    "text": frozenset({pl.String}),
    "binary": frozenset({pl.Binary}),
    "date": frozenset({pl.String}),
    "datetime": frozenset({pl.String}),
}
#: ISO layouts whose instant is the text's wall time (UTC, or no zone, which dsdb reads as
#: UTC), with 0 to 6 digits of a second: Python's `fromisoformat` reads each as written.
_DATETIME = r"^\d{4}-\d{2}-\d{2}[ T]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?(\+00:00|Z)?$"
_DATE = r"^\d{4}-\d{2}-\d{2}$"


@dataclass(frozen=True)
class Batch:
    """One batch of source rows, ready to write, with its digest and last key."""

    #: The columns, each of the Arrow type its target column takes in binary COPY.
    columns: pl.DataFrame
    rows: int
    hash_sum: int
    #: The key of its last row, as SQLite returns it (None without a key).
    last_key: tuple[Any, ...] | None


@dataclass(frozen=True)
class Committed:
    """The batches one commit wrote: their rows, digest and last key."""

    rows: int
    hash_sum: int
    last_key: tuple[Any, ...] | None

    def then(self, batch: Batch) -> Committed:
        """These batches and `batch` after them."""
        return Committed(
            self.rows + batch.rows, (self.hash_sum + batch.hash_sum) % MODULUS, batch.last_key
        )


def copy_columns(
    src: sa.Connection,
    dst: sa.Connection,
    selection: TableSelection,
    into: str,
    batch_rows: int,
    on_commit: Callable[[Committed], None],
    cancel: threading.Event | None = None,
) -> None:
    """Copy the selected columns of every source row into `into`, in key order, where both
    engines take whole columns and `into` is empty: batches committed every `COMMIT_SECONDS`,
    at once when `cancel` is set, and at the end, each commit then given to `on_commit`
    (which stops the copy by raising). Returns once every row is copied, or at once, or at
    the first batch that does not fit (`Unfit`) with the batches before it committed, or at
    one the target refuses with the batches since the last commit rolled back: the row-by-row
    path goes on from the last committed key."""
    if not (
        engine_for(src.dialect).capabilities.reads_columns
        and engine_for(dst.dialect).capabilities.loads_columns
        and selection.key
    ):
        return
    source_file = database_file(src)
    if source_file is None or not _empty(dst, into):
        return
    columns, table = selection.columns, selection.schema
    kinds = target_types(dst, into, columns)
    if not supported(table, columns, kinds):
        return
    schemas = [table.column(name) for name in columns]
    target = arrow_connection(dst)
    if target is None:
        return
    connection, target_database = target
    database = adbc_driver_sqlite.connect(source_file)
    pending = Committed(0, 0, None)
    since = -math.inf
    try:
        prepared = _prepared(database, selection, schemas, kinds, batch_rows)
        try:
            for batch in read_ahead_of(prepared):
                append_columns(connection, into, batch.columns)
                pending = pending.then(batch)
                stopping = cancel is not None and cancel.is_set()
                if stopping or time.monotonic() - since >= COMMIT_SECONDS:
                    _commit(connection, pending, on_commit)
                    pending, since = Committed(0, 0, None), time.monotonic()
        except Unfit:
            pass  # the batches appended before it fit: committed below
        _commit(connection, pending, on_commit)
    except adbc_driver_manager.DatabaseError:
        # The row path writes the batches again and reports what the database says.
        connection.rollback()
    finally:
        connection.close()
        target_database.close()
        database.close()


def _commit(connection: Any, pending: Committed, on_commit: Callable[[Committed], None]) -> None:
    if pending.rows:
        connection.commit()
        on_commit(pending)


def arrow_connection(dst: sa.Connection) -> tuple[Any, Any] | None:
    """A connection of the target engine's ADBC driver (and its database) to `dst`'s
    database, in a transaction; None where the driver cannot connect with what SQLAlchemy
    connects with (an option only its driver knows): the row path copies then.

    The driver manager's own API, as for reading: its DB-API layer would load pyarrow."""
    try:
        database = engine_for(dst.dialect).arrow_database(dst)
    except adbc_driver_manager.Error:
        return None
    try:
        connection = adbc_driver_manager.AdbcConnection(database)
        connection.set_autocommit(False)
    except adbc_driver_manager.Error:
        database.close()
        return None
    return connection, database


def append_columns(connection: Any, table: str, columns: pl.DataFrame) -> None:
    """Append `columns` to `table` (matched by name) in the open transaction."""
    statement = adbc_driver_manager.AdbcStatement(connection)
    try:
        statement.set_options(**{_INGEST_TABLE: table, _INGEST_MODE: _APPEND})
        statement.bind_stream(columns)
        statement.execute_update()
    finally:
        statement.close()


def _empty(dst: sa.Connection, table: str) -> bool:
    found = dst.execute(sa.select(sa.literal(1)).select_from(sa.table(table)).limit(1)).first()
    dst.rollback()
    return found is None


#: The column of each row's count of values of another storage class than its column's
#: (`sqlite_arrow.STORED_AS`): the driver would turn them into that class silently.
_MISFIT = "dsdb_misfit"
_INGEST_TABLE, _INGEST_MODE = "adbc.ingest.target_table", "adbc.ingest.mode"
_APPEND = "adbc.ingest.mode.append"
#: Types whose integers are read as doubles: a decimal's, and a double's (a SQLite column
#: without a declared type holding integers and reals lands as a double: `typeless.py`).
_INTEGERS_AS_DOUBLES = frozenset({"decimal", "double"})


def supported(table: TableSchema, columns: Sequence[str], target_types: Sequence[str]) -> bool:
    """Whether every column of `columns` (landing as `target_types`) can take this path."""
    return all(
        kind in _TARGET_TYPES.get(table.column(name).type, ())
        for name, kind in zip(columns, target_types, strict=True)
    )


def _read_query(
    table: str, columns: Sequence[ColumnSchema], key: Sequence[str], after: bool, rows: int
) -> str:
    """The SELECT of the first `rows` rows in key order (`after` a key given as parameters),
    with the count of each row's values of another storage class than its column's; decimal
    and double columns as doubles throughout (SQLite keeps whole numbers as integers in
    decimals and in columns without a declared type)."""

    def selected(column: ColumnSchema) -> str:
        name = quoted(column.name)
        if column.type not in _INTEGERS_AS_DOUBLES:
            return name
        return f"CASE WHEN typeof({name}) = 'integer' THEN CAST({name} AS REAL) ELSE {name} END"

    def misfit(column: ColumnSchema) -> str:
        name = quoted(column.name)
        stored = STORED_AS[column.type]
        # A decimal's (or a double's) integers are read as doubles, which write the same
        # digits only within +-2**53: larger ones end this path.
        wide = ""
        if column.type in _INTEGERS_AS_DOUBLES:
            stored = tuple(sorted({*stored, "integer"}))
            wide = (
                f" OR (typeof({name}) = 'integer' AND {name} NOT BETWEEN "
                f"-{DOUBLE_EXACT_INTEGERS} AND {DOUBLE_EXACT_INTEGERS})"
            )
        classes = ", ".join(f"'{kind}'" for kind in stored)
        return f"(typeof({name}) NOT IN ('null', {classes}){wide})"

    selects = [f"{selected(column)} AS {quoted(column.name)}" for column in columns]
    selects.append(f"{' + '.join(map(misfit, columns))} AS {_MISFIT}")
    keys = ", ".join(map(quoted, key))
    where = f" WHERE ({keys}) > ({', '.join('?' * len(key))})" if after else ""
    order = f" ORDER BY {keys} LIMIT {int(rows)}"
    return f"SELECT {', '.join(selects)} FROM {quoted(table)}{where}{order}"


def _prepared(
    database: Any,
    selection: TableSelection,
    schemas: Sequence[ColumnSchema],
    target_types: Sequence[str],
    batch_rows: int,
) -> Iterator[Batch]:
    """Each batch of the source rows typed for binary COPY with its digest; stops with
    `Unfit` at the first batch that does not fit. The next batch is read (in C, by the
    driver) in a worker thread while one is prepared (in Rust, by polars): both let go of
    the GIL."""
    at_key = [list(selection.columns).index(name) for name in selection.key]
    for frame in read_ahead_of(_frames(database, selection, schemas, batch_rows)):
        yield prepare(frame, schemas, at_key, target_types)


def _frames(
    database: Any, selection: TableSelection, schemas: Sequence[ColumnSchema], batch_rows: int
) -> Iterator[pl.DataFrame]:
    """The source rows, `batch_rows` at a time, as the driver reads them; `Unfit` at the
    first batch holding a value of another storage class than its column's.

    Each batch is one statement from the last key on, read whole: memory holds one batch,
    and the driver takes each column's class from that batch alone. One read transaction
    spans them all, so every batch reads the snapshot the first one read."""
    table, key = selection.source.name, selection.key
    at_key = [list(selection.columns).index(name) for name in key]
    first, after = (_read_query(table, schemas, key, a, batch_rows) for a in (False, True))
    connection = adbc_driver_manager.AdbcConnection(database)
    connection.set_autocommit(False)
    last_key: tuple[Any, ...] | None = None
    try:
        while True:
            frame = _read(connection, after if last_key else first, last_key, batch_rows)
            if frame.height == 0:
                return
            if frame.get_column(_MISFIT).sum():
                raise Unfit("a value of another storage class than its column's")
            last = frame.row(frame.height - 1)
            last_key = tuple(last[i] for i in at_key)
            if None in last_key:
                raise Unfit("a NULL in the key: no next batch to read after it")
            yield frame.drop(_MISFIT)
            if frame.height < batch_rows:
                return
    finally:
        connection.rollback()
        connection.close()


def _read(connection: Any, query: str, after: tuple[Any, ...] | None, rows: int) -> pl.DataFrame:
    """One statement's rows as read by the driver, in one Arrow batch (`executed`), the
    values it turned into their column's class counted by `_MISFIT`."""
    bound = None if after is None else pl.DataFrame({f"k{i}": [v] for i, v in enumerate(after)})
    with executed(connection, query, bound, rows) as stream:
        try:
            read = pl.from_arrow(stream)
        except pl.exceptions.PolarsError as error:
            raise Unfit(str(error)) from error
    return read.struct.unnest() if isinstance(read, pl.Series) else read


def prepare(
    frame: pl.DataFrame,
    schemas: Sequence[ColumnSchema],
    at_key: Sequence[int],
    target_types: Sequence[str],
) -> Batch:
    """`frame` (the source columns, as read) typed for binary COPY with its digest, or
    `Unfit`."""
    written: list[pl.Series] = []
    texts: list[pl.Series] = []
    for series, column, kind in zip(frame.get_columns(), schemas, target_types, strict=True):
        if series.null_count() == len(series):
            nulls = pl.repeat(None, len(series), dtype=_WRITTEN_AS[kind], eager=True)
            written.append(nulls.alias(series.name))
            texts.append(pl.repeat(NULL, len(series), eager=True))
            continue
        if series.dtype.base_type() not in _READ_AS[column.type]:
            raise Unfit(f"column {series.name!r} holds {series.dtype}")
        try:
            copy, text = _column(series, column, kind)
        except pl.exceptions.PolarsError as error:  # a date that is no date, ...
            raise Unfit(str(error)) from error
        written.append(copy.alias(series.name))
        texts.append(text.fill_null(NULL))
    return Batch(
        pl.DataFrame(written),
        frame.height,
        _hash_sum(texts),
        tuple(frame.row(frame.height - 1)[i] for i in at_key) if at_key else None,
    )


#: Portable types whose values `_column` writes as read (integers cast to their column's).
_AS_READ = frozenset(("smallint", "integer", "bigint", "double", "varchar", "text", "binary"))


def typed_column(series: pl.Series, column: ColumnSchema, kind: str) -> pl.Series:
    """One column of values as the source's driver read them (`_READ_AS`), typed for binary
    COPY into a `kind` column as `prepare` types it, without its digest text; or `Unfit`."""
    if series.null_count() == len(series):
        return pl.repeat(None, len(series), dtype=_WRITTEN_AS[kind], eager=True).alias(series.name)
    if series.dtype.base_type() not in _READ_AS.get(column.type, ()):
        raise Unfit(f"column {series.name!r} holds {series.dtype}")
    try:
        if column.type in _AS_READ:  # written as read: no digest text to make
            return series.cast(_WRITTEN_AS[kind], strict=True).alias(series.name)
        return _column(series, column, kind)[0].alias(series.name)
    except pl.exceptions.PolarsError as error:
        raise Unfit(str(error)) from error


def _hash_sum(texts: Sequence[pl.Series]) -> int:
    """The sum modulo 2**64 of the rows' hashes: the first 64 bits of the MD5 of each row's
    text, taken as two 32-bit halves so the sums stay exact in 64-bit integers."""
    framed = pl.DataFrame({f"c{index}": series for index, series in enumerate(texts)})
    row_text = pl.concat_str(pl.all(), separator=SEPARATOR)
    md5 = row_text.nchash.md5()  # type: ignore[attr-defined]
    hashed = framed.select(md5.alias("md5")).select(
        pl.col("md5").str.slice(0, 8).str.to_integer(base=16, dtype=pl.UInt64).sum().alias("hi"),
        pl.col("md5").str.slice(8, 8).str.to_integer(base=16, dtype=pl.UInt64).sum().alias("lo"),
    )
    high, low = hashed.row(0)
    return ((int(high) << 32) + int(low)) % MODULUS


def _column(series: pl.Series, column: ColumnSchema, kind: str) -> tuple[pl.Series, pl.Series]:
    """One column as written for binary COPY into a `kind` column and as the digest writes
    it, or `Unfit`."""
    portable = column.type
    if portable in ("smallint", "integer", "bigint"):
        return series.cast(_WRITTEN_AS[kind], strict=True), series.cast(pl.String)
    if portable == "boolean":
        if not series.drop_nulls().is_in([0, 1]).all():
            raise Unfit(f"column {series.name!r} holds a boolean other than 0 and 1")
        flag = series.replace_strict({0: "false", 1: "true"}, default=None, return_dtype=pl.String)
        return series.cast(pl.Boolean), flag
    if portable == "double":
        return series, _float_texts(series)
    if portable == "decimal":
        if not series.drop_nulls().is_finite().all():
            raise Unfit(f"column {series.name!r} holds a number no decimal holds")
        text = _float_texts(series).alias(series.name)
        return exact_decimals(text), text
    if portable in ESCAPED_TYPES:
        escaped = series.str.replace_all("\\", "\\\\", literal=True).str.replace_all(
            SEPARATOR, "\\" + SEPARATOR, literal=True
        )
        return series, escaped
    if portable == "binary":
        return series, series.bin.encode("hex")
    if portable == "date":
        _all_match(series, _DATE)
        _no_year_zero(series)
        # Refuses a 30 February, as Python does.
        return series.str.to_date("%Y-%m-%d", strict=True), series
    if portable == "datetime":
        _all_match(series, _DATETIME)
        _no_year_zero(series)
        rest = series.str.slice(19).str.strip_suffix("+00:00").str.strip_suffix("Z")
        fraction = rest.str.strip_prefix(".").str.pad_end(6, "0")
        text = series.str.slice(0, 10) + "T" + series.str.slice(11, 8) + "." + fraction
        instant = text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=True)
        return instant.dt.replace_time_zone("UTC") if kind == "timestamptz" else instant, text
    raise Unfit(f"column {series.name!r}: no column path for {portable}")


def exact_decimals(text: pl.Series) -> pl.Series:
    """The digest's texts of numbers as exact decimals, at the largest scale among them (the
    server rounds each to its column's scale, as it rounds the same text), or `Unfit`."""
    unsigned = text.str.strip_prefix("-")
    point = unsigned.str.find(".", literal=True)
    scale = cast(int, (unsigned.str.len_bytes() - point - 1).max() or 0)
    whole = cast(int, point.fill_null(unsigned.str.len_bytes()).max() or 0)
    if whole + scale > _DECIMAL_DIGITS:  # 1e300, 5e-324: the row path writes them
        raise Unfit(f"column {text.name!r} holds a number of more digits than Arrow's decimal")
    decimals = text.str.to_decimal(scale=scale)
    if decimals.null_count() != text.null_count():
        raise Unfit(f"column {text.name!r} holds a number Arrow's decimal does not")
    return decimals


def _no_year_zero(series: pl.Series) -> None:
    # Year 0 is no year in Python or PostgreSQL's text input: binary input would take it.
    if series.str.starts_with("0000").any():
        raise Unfit(f"column {series.name!r} holds the year 0")


def _all_match(series: pl.Series, pattern: str) -> None:
    if not series.drop_nulls().str.contains(pattern).all():
        raise Unfit(f"column {series.name!r} holds text of another layout")


def _float_texts(series: pl.Series) -> pl.Series:
    """Doubles as the digest writes them (`digest.float_text`): where polars writes the
    same shortest digits without an exponent, less a trailing ``.0`` and a negative zero's
    sign, with NaN as ``nan``; the few it writes with an exponent, by Python."""
    text = series.cast(pl.String)
    plain = text.str.strip_suffix(".0")
    plain = pl.select(
        pl.when(series.is_nan())
        .then(pl.lit("nan"))
        .when(plain == "-0")
        .then(pl.lit("0"))
        .otherwise(plain)
    ).to_series()
    exponent = text.str.contains("e", literal=True)
    if not exponent.any():
        return plain
    where = exponent.arg_true()
    values = series.gather(where).to_list()
    return plain.scatter(where, [float_text(value) for value in values])


def target_types(conn: sa.Connection, table: str, columns: Sequence[str]) -> list[str]:
    """The PostgreSQL type name of each of `columns` in `table` ('' for one not there)."""
    rows = conn.exec_driver_sql(
        "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = to_regclass(quote_ident(%(t)s)) AND a.attnum > 0 "
        "AND NOT a.attisdropped",
        {"t": table},
    ).all()
    found = {str(name): str(kind) for name, kind in rows}
    return [found.get(name, "") for name in columns]
