"""A restore's table loaded in whole Arrow columns (issue 15, aim 4).

The row path (`restore._load`) turns every value of the Parquet file into Python and writes
it back with `write_row`. Here each batch of the file stays in Arrow: its columns are given
the Arrow type their target column takes in binary COPY (`arrow_copy`: the same typing the
SQLite → PostgreSQL copy proves exact, for the values SQLite's driver reads; plain casts for
the typed values of other sources) and the engine's ADBC driver writes the batch with binary
COPY in C++, on its own connection, in one transaction for the table.

A column takes this path only where its stored Arrow type and portable type give each value
exactly what the row path lands (`values.column_converter`): integers, doubles, text, blobs,
0/1 and real booleans, ISO and typed dates and timestamps, exact decimals. A batch holding
anything else (a tagged value other than a plain number, a UUID, a text in an integer
column) raises `Unfit` before it is written, and the caller loads the table row by row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import adbc_driver_manager
import pyarrow as pa
import sqlalchemy as sa

from dsdb_plan.archive.columnar import read_batches, text_kind
from dsdb_plan.archive.datafile import PARQUET_SUFFIX
from dsdb_plan.archive.info import BackupInfo
from dsdb_plan.dbschema import ColumnSchema, TableSchema
from dsdb_plan.engines import engine_for
from dsdb_plan.errors import BackupError
from dsdb_plan.migrate.arrow_copy import (
    append_columns,
    arrow_connection,
    exact_decimals,
    supported,
    target_types,
    typed_column,
)
from dsdb_plan.migrate.sqlite_arrow import Unfit
from dsdb_plan.sigint import python_keeps_ctrl_c

with python_keeps_ctrl_c():
    import polars as pl

#: Rows written per binary COPY: large enough that a statement's cost does not show, small
#: enough to bound memory (polars keeps what a batch allocated).
BATCH_ROWS = 10_000
#: A number as `columnar._tagged` writes an integer's or a finite double's repr without an
#: exponent: the text `Decimal(repr(value))` reads, so `exact_decimals` gives the same.
_PLAIN_NUMBER = r"^-?\d+(\.\d+)?$"
#: Typed (non-text) Arrow values written as they are, per portable type.
_TYPED: dict[str, tuple[pa.DataType, ...]] = {
    "boolean": (pa.bool_(),),
    "date": (pa.date32(),),
}

Report = Callable[[int], None]


def fits(info: BackupInfo, table: str, engine: sa.Engine) -> bool:
    """Whether `table` of the backup can be loaded in columns into `engine`: a Parquet file,
    and a target engine whose driver loads Arrow batches."""
    return engine_for(engine.dialect).capabilities.loads_columns and info.file_for(
        table
    ).name.endswith(PARQUET_SUFFIX)


def load(
    engine: sa.Engine,
    path: Path,
    table: TableSchema,
    kept: Sequence[bool] | None,
    report: Report,
) -> int | None:
    """Load the rows of Parquet file `path` (those `kept` marks, when given) into the empty,
    committed `table`, in one transaction of the engine's ADBC driver; the rows loaded, or
    None where a column or a batch does not fit (then nothing is written). `report(rows)`
    runs after each batch, and may raise to stop: the transaction is rolled back."""
    names = [column.name for column in table.columns]
    with engine.connect() as conn:
        kinds = target_types(conn, table.name, names)
        if not supported(table, names, kinds):
            return None
        target = arrow_connection(conn)
    if target is None:
        return None
    connection, database = target
    count = 0
    typed = (
        typed_batch(batch, table.columns, kinds)
        for batch in _kept(read_batches(path, BATCH_ROWS), kept)
    )
    try:
        # Typing a batch takes a fraction of its COPY, which waits on the server: reading
        # the next one ahead in a thread saved little and held 16 MB more.
        for frame in typed:
            append_columns(connection, table.name, frame)
            count += frame.height
            report(count)
        connection.commit()
    except Unfit:
        connection.rollback()
        return None
    except adbc_driver_manager.DatabaseError as error:
        connection.rollback()
        raise BackupError(f"restoring table {table.name!r} failed: {error}") from error
    except BaseException:
        connection.rollback()
        raise
    finally:
        connection.close()
        database.close()
    return count


def _kept(
    batches: Iterator[pa.RecordBatch], kept: Sequence[bool] | None
) -> Iterator[pa.RecordBatch]:
    """The batches with only the rows `kept` marks (all, without it)."""
    if kept is None:
        yield from batches
        return
    start = 0
    for batch in batches:
        mask = pa.array(kept[start : start + batch.num_rows], pa.bool_())
        start += batch.num_rows
        yield batch.filter(mask)


def typed_batch(
    batch: pa.RecordBatch, columns: Sequence[ColumnSchema], kinds: Sequence[str]
) -> pl.DataFrame:
    """The batch's columns each of the Arrow type its target column (PostgreSQL type `kind`)
    takes in binary COPY, holding what the row path lands; `Unfit` where one cannot."""
    typed = [
        _typed(batch.schema.field(index), batch.column(index), column, kind)
        for index, (column, kind) in enumerate(zip(columns, kinds, strict=True))
    ]
    return pl.DataFrame(typed)


def _typed(field: pa.Field, array: pa.Array, column: ColumnSchema, kind: str) -> pl.Series:
    portable, label = column.type, text_kind(field)
    if array.null_count == len(array):
        return typed_column(_series(field.name, array), column, kind)
    if label is not None:
        if label == "tagged" and portable == "decimal":
            return _tagged_decimals(field.name, array)
        raise Unfit(f"column {field.name!r} is stored as {label} text")
    arrow = array.type
    if pa.types.is_timestamp(arrow) and portable == "datetime":
        return _series(field.name, _timestamps(array, zoned=kind == "timestamptz"))
    if pa.types.is_decimal128(arrow) and portable == "decimal":
        return _series(field.name, array)
    if arrow in _TYPED.get(portable, ()):
        return _series(field.name, array)
    series = _series(field.name, array)
    if arrow == pa.int64() and portable in ("decimal", "double"):
        # Python reads these integers as `Decimal(int)` and `float(int)`: the same values.
        if portable == "double":
            return series.cast(pl.Float64)
        return exact_decimals(series.cast(pl.String))
    return typed_column(series, column, kind)


def _tagged_decimals(name: str, texts: pa.Array) -> pl.Series:
    """A decimal column stored as tagged text (a SQLite column holding integers and reals):
    exact where every value is a plain number's repr, else `Unfit`."""
    series = _series(name, texts)
    if not series.drop_nulls().str.contains(_PLAIN_NUMBER).all():
        raise Unfit(f"column {name!r} holds a value other than a plain number")
    try:
        return exact_decimals(series)
    except pl.exceptions.PolarsError as error:
        raise Unfit(str(error)) from error


def _timestamps(array: pa.Array, zoned: bool) -> pa.Array:
    """Microsecond timestamps as the row path lands them: into a zone-aware column, a naive
    value is UTC; into a naive one, an aware value is its UTC wall time. Arrow holds every
    timestamp as UTC microseconds, so each is a change of label, not of value."""
    return array.cast(pa.timestamp("us", "UTC" if zoned else None))


def _series(name: str, array: pa.Array) -> pl.Series:
    series = pl.from_arrow(array)
    assert isinstance(series, pl.Series)
    return series.alias(name)
