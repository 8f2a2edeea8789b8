"""SQLite read as Arrow through its ADBC driver: what the migration's column path
(`arrow_copy.py`) and the backup's column reader (`archive/column_reader.py`) share.

Nothing here imports polars: a backup reads through this module with pyarrow alone, and
polars with its hashing plugin costs about 25 MB of memory before the first row (issue 15,
aim 7: under 200 MB at 10,000,000 rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import adbc_driver_manager
import sqlalchemy as sa

#: The SQLite storage classes a column of each type holds when it is read whole. The driver
#: reads values of some other classes silently as the class it expects (an integer as a
#: double, a number as text), so each reader counts, per row, the values of any other class.
STORED_AS: dict[str, tuple[str, ...]] = {
    "smallint": ("integer",),
    "integer": ("integer",),
    "bigint": ("integer",),
    "boolean": ("integer",),
    "double": ("real",),
    "float": ("real",),
    "decimal": ("integer", "real"),
    "varchar": ("text",),
    "text": ("text",),
    "binary": ("blob",),
    "date": ("text",),
    "datetime": ("text",),
    "time": ("text",),
    "json": ("text",),
    "uuid": ("text",),
}
_BATCH_ROWS = "adbc.sqlite.query.batch_rows"


class Unfit(Exception):
    """A batch holds a value the column path cannot copy exactly, or the target refused it:
    the row-by-row path takes over."""


def quoted(name: str) -> str:
    """A SQLite identifier, quoted, for the SQL the driver runs."""
    return '"' + name.replace('"', '""') + '"'


def database_file(src: sa.Connection) -> str | None:
    """The file a SQLite connection reads, where it is a plain path."""
    database = src.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


@contextmanager
def executed(connection: Any, query: str, parameters: Any, rows: int) -> Iterator[Any]:
    """The stream of one statement's rows, read in one Arrow batch of up to `rows`:
    `parameters` is None or one row of Arrow data (anything with `__arrow_c_stream__`) bound
    to the statement's parameters. The driver takes a column's class from its first batch
    (the others it refuses, or turns into that class, which the caller must rule out). What
    the driver refuses, in the statement or while the block reads the stream, raises
    `Unfit`."""
    statement = adbc_driver_manager.AdbcStatement(connection)
    try:
        statement.set_options(**{_BATCH_ROWS: str(rows)})
        statement.set_sql_query(query)
        if parameters is not None:
            statement.bind_stream(parameters)
        stream, _ = statement.execute_query()
        yield stream
    except (adbc_driver_manager.Error, OSError) as error:
        raise Unfit(str(error)) from error
    finally:
        statement.close()
