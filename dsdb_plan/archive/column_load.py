"""Restore a table of a SQLite backup in whole columns (issue 15, aim 4): its Parquet batches
written as CSV by polars and loaded with one COPY each, as `migrate/arrow_copy.py` copies a
SQLite table into PostgreSQL.

A restore spent most of its time in Python per value: decoding each value, converting it for
the target (`convert.py`) and psycopg's `write_row`. A backup of a SQLite source holds what
SQLite's driver returned, column by column: integers, doubles, text and blobs, in the very
Arrow types its ADBC driver reads them as, so `arrow_copy.prepare` turns each batch into the
CSV that COPY loads, with the same rules and the same refusals. A decimal column is read as
doubles, as there (its integers stored apart, or in tagged text beside its reals, within
2**53). Any batch it refuses (`Unfit`) rolls the table back to before its first row, and the
table is loaded row by row instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa
import sqlalchemy as sa

from dsdb_plan.archive.columnar import is_plain, read_batches
from dsdb_plan.archive.info import BackupInfo
from dsdb_plan.dbschema import ColumnSchema, TableSchema
from dsdb_plan.engines import engine_for
from dsdb_plan.errors import BackupError
from dsdb_plan.migrate.arrow_copy import Unfit, prepare, supported, target_types
from dsdb_plan.migrate.load import copy_csv, read_ahead_of
from dsdb_plan.sigint import python_keeps_ctrl_c

with python_keeps_ctrl_c():
    import polars as pl

#: Rows per COPY. Polars keeps what a batch allocated: restoring the benchmark's backup
#: peaked at 349 MB in batches of 50,000 rows, 255 MB in 10,000, 230 MB in 5,000 and 2,000
#: (row by row: 203 MB, polars loaded), in about the same time.
BATCH_ROWS = 5000
#: Integers a double holds exactly (`arrow_copy` reads a decimal column's integers so too).
_EXACT_INTEGER = 2**53
#: A tagged text that is a JSON number: an integer's or a finite double's repr.
_NUMBER = r"^-?\d+(\.\d+)?(e[+-]?\d+)?$"


def load_columns(
    conn: sa.Connection,
    info: BackupInfo,
    table: TableSchema,
    progress: Callable[[int], None],
) -> int | None:
    """Load `table` (created empty in `conn`'s transaction) from its data file in whole
    columns; the rows loaded, or None where it cannot be done so (nothing loaded then)."""
    file = info.file_for(table.name)
    if not (
        file.name.endswith(".parquet")
        and engine_for(info.source_dialect).capabilities.reads_columns
        and engine_for(conn.dialect).capabilities.loads_csv
        and table.columns
    ):
        return None
    names = list(table.column_names)
    kinds = target_types(conn, table.name, names)
    if not supported(table, names, kinds):
        return None
    savepoint = conn.begin_nested()
    count = 0
    try:
        prepared = (
            prepare(f, table.columns, (), kinds, digest=False) for f in _frames(info, table)
        )
        for batch in read_ahead_of(prepared):  # the next batch made ready during each COPY
            copy_csv(conn, table.name, names, batch.csv)
            count += batch.rows
            progress(count)
    except Unfit:
        savepoint.rollback()
        return None
    savepoint.commit()
    if count != file.rows:
        raise BackupError(
            f"backup {info.id}: data file {info.path / file.name} holds {count} rows, "
            f"expected {file.rows}"
        )
    return count


def _frames(info: BackupInfo, table: TableSchema) -> Iterator[pl.DataFrame]:
    """The table's rows as `arrow_copy` reads them from SQLite, a batch at a time."""
    for batch in read_batches(info.path / info.file_for(table.name).name, BATCH_ROWS):
        yield pl.DataFrame(
            [
                _as_read(pl.Series(field.name, array), field, column)
                for field, array, column in zip(
                    batch.schema, batch.columns, table.columns, strict=True
                )
            ]
        )


def _as_read(series: pl.Series, field: pa.Field, column: ColumnSchema) -> pl.Series:
    """A stored column as the driver reads it for `arrow_copy`: a decimal column as doubles,
    where its integers land as the same value (a scale rounds 7.0 and 7 alike; without one,
    PostgreSQL keeps the text's digits, and the rows path writes 7)."""
    if series.null_count() == len(series):
        return series
    if column.type != "decimal":
        if not is_plain(field):
            raise Unfit(f"column {field.name!r} holds values of several classes")
        return series
    if not is_plain(field):  # integers and reals, in tagged text
        if not series.str.contains(_NUMBER).fill_null(True).all():
            raise Unfit(f"column {field.name!r} holds values other than numbers")
        integers = series.filter(~series.str.contains(r"[.e]").fill_null(True))
        _within_doubles(integers.cast(pl.Int64), field, column)
        return series.cast(pl.Float64)
    if series.dtype == pl.Int64:
        _within_doubles(series, field, column)
        return series.cast(pl.Float64)
    return series


def _within_doubles(integers: pl.Series, field: pa.Field, column: ColumnSchema) -> None:
    if len(integers) and column.scale is None:
        raise Unfit(f"column {field.name!r} holds integers and has no scale")
    if ((integers > _EXACT_INTEGER) | (integers < -_EXACT_INTEGER)).any():
        raise Unfit(f"column {field.name!r} holds an integer no double holds")
