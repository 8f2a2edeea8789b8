"""Write a backup: one consistent snapshot of the tables, streamed to compressed files.

The backup is built in `<root>/.<id>.tmp/` and renamed to `<root>/<id>/` only once every data
file and `backup.json` are fsynced, so a backup folder without the dot is always complete.
A backup asked to stop does so after its next batch, and its temporary folder is removed.

Rows are fetched through the driver, or, where the source's tables read as whole Arrow
columns exactly (`column_reader`: SQLite) and nobody needs them as Python values, written
to Parquet as the driver read them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import socket
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from dsdb_plan.archive.datafile import (
    PARQUET_SUFFIX,
    VERSIONS,
    DataFormat,
    DataWriter,
    new_writer,
)
from dsdb_plan.archive.format import fsync_dir
from dsdb_plan.archive.info import MANIFEST_NAME, BackupFile, BackupInfo
from dsdb_plan.dbschema import TableSchema, reflect_tables
from dsdb_plan.engines import engine_for
from dsdb_plan.errors import BackupError, Interrupted
from dsdb_plan.fingerprint import change_token
from dsdb_plan.migrate.read_ahead import read_ahead_of
from dsdb_plan.migrate.snapshot import consistent_snapshot
from dsdb_plan.typeless import observe

if TYPE_CHECKING:
    from dsdb_plan.archive.column_reader import ColumnReader

Progress = Callable[[str, int], None]


class RowObserver(Protocol):
    """Sees the rows of each table a backup reads (to fingerprint them without reading them
    again)."""

    def needs_rows(self, conn: sa.Connection, table: str, columns: Sequence[str]) -> bool:
        """Whether `add` must see `table`'s rows; asked before it is read, in `conn`'s
        snapshot, which the observer may read itself."""

    def add(self, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """A batch of `table`'s rows as read: every column, as the driver returns them."""


#: Rows fetched per round trip and written per batch: bounded memory whatever the table size.
BATCH_ROWS = 5000
#: The most rows read at a time as Arrow columns (`column_reader` takes fewer of large values).
COLUMN_BATCH_ROWS = 50_000
_OWNER_NAME = "owner.json"


def write_backup(
    engine: sa.Engine,
    root: Path,
    backup_id: str,
    tables: Collection[str] | None = None,
    progress: Progress | None = None,
    observer: RowObserver | None = None,
    cancel: threading.Event | None = None,
    data_format: DataFormat = "parquet",
) -> BackupInfo:
    """Back up `tables` (default: all) of `engine` to `<root>/<backup_id>/`.

    `progress(table, rows_so_far)` is called after every batch; `observer` sees the rows of
    each table it needs (`RowObserver.needs_rows`). Stale temporary folders
    of killed runs are removed first. Once `cancel` is set, the next batch written raises
    `Interrupted` and nothing of the backup is left. `data_format` "jsonl" writes the gzip'd
    JSON lines of format version 2 instead of Parquet.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(root)
    final = root / backup_id
    if final.exists():
        raise BackupError(f"backup {final} already exists")
    temporary = root / f".{backup_id}.tmp"
    temporary.mkdir()
    try:
        (temporary / _OWNER_NAME).write_text(
            json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        )
        token = change_token(engine)  # before the snapshot begins (`column_reader`)
        with consistent_snapshot(engine, read_only=True) as conn:
            # What typeless columns hold is recorded: a restore into a typed engine types them.
            schemas = [observe(conn, schema) for schema in reflect_tables(conn, tables)]
            with _column_reader(conn, token, data_format) as columns:
                files = [
                    _write_table(
                        conn,
                        columns,
                        schema,
                        temporary,
                        index,
                        progress,
                        observer,
                        cancel,
                        data_format,
                    )
                    for index, schema in enumerate(schemas, start=1)
                ]
        info = BackupInfo(
            id=backup_id,
            path=final,
            created_at=dt.datetime.now(dt.UTC),
            source_dialect=engine.dialect.name,
            tables=tuple(schemas),
            files=tuple(files),
            format_version=VERSIONS[data_format],
        )
        _write_manifest(temporary / MANIFEST_NAME, info)
        (temporary / _OWNER_NAME).unlink()
        fsync_dir(temporary)
        os.rename(temporary, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return info


def remove_stale_temporaries(root: Path) -> list[Path]:
    """Remove `.<id>.tmp` folders left by killed runs; spare those of a live process here."""
    removed = []
    for path in sorted(Path(root).glob(".*.tmp")):
        if path.is_dir() and not _owner_alive(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _owner_alive(temporary: Path) -> bool:
    """Whether the run that owns a temporary folder may still be writing it."""
    try:
        owner = json.loads((temporary / _OWNER_NAME).read_text())
        pid = int(owner["pid"])
        host = owner["host"]
    except (OSError, ValueError, KeyError, TypeError):
        return False  # killed before it could even say who it was
    if host != socket.gethostname():
        return True  # another machine's process cannot be checked: leave it alone
    if pid == os.getpid():
        return True  # another backup of this very process, in another thread
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, but belongs to another user
    return True


def _file_stem(index: int, table: str) -> str:
    """A safe, unique file name, less its suffix; the table's real name is in backup.json."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", table).strip("_")[:40] or "table"
    return f"{index:04d}-{slug}"


def _select(conn: sa.Connection, schema: TableSchema) -> sa.Select[Any]:
    """All rows, raw driver values (no SQLAlchemy type processing), in primary-key order.

    The key order makes a backup of unchanged data byte-identical. Each engine says how a
    column is read (PostgreSQL's JSON and arrays as JSON text, so a JSON string scalar cannot
    be confused with text).
    """
    table = sa.table(schema.name, *(sa.column(name) for name in schema.column_names))
    engine = engine_for(conn.dialect)
    columns = [engine.read_expression(table.c[column.name], column) for column in schema.columns]
    statement = sa.select(*columns)
    if schema.primary_key:
        statement = statement.order_by(*(table.c[name] for name in schema.primary_key))
    return statement


def _column_reader(
    conn: sa.Connection, token: str | None, data_format: DataFormat
) -> AbstractContextManager[ColumnReader | None]:
    if data_format != "parquet" or not engine_for(conn.dialect).capabilities.reads_columns:
        return nullcontext()
    from dsdb_plan.archive.column_reader import column_reader  # loads pyarrow

    return column_reader(conn, token)


def _write_table(
    conn: sa.Connection,
    columns: ColumnReader | None,
    schema: TableSchema,
    folder: Path,
    index: int,
    progress: Progress | None,
    observer: RowObserver | None,
    cancel: threading.Event | None,
    data_format: DataFormat,
) -> BackupFile:
    stem = _file_stem(index, schema.name)
    if columns is not None and (
        observer is None or not observer.needs_rows(conn, schema.name, schema.column_names)
    ):
        written = _write_columns(columns, schema, folder, stem, progress, cancel)
        if written is not None:
            return written
    writer = new_writer(folder, stem, schema, data_format)
    try:
        for rows in _batches(conn, _select(conn, schema)):
            writer.write_rows(rows)
            if observer is not None:
                observer.add(schema.name, rows)
            _report(schema.name, writer.rows, progress, cancel)
    except BaseException:
        writer.abort()
        raise
    return _closed(writer, schema.name, progress)


def _write_columns(
    columns: ColumnReader,
    schema: TableSchema,
    folder: Path,
    stem: str,
    progress: Progress | None,
    cancel: threading.Event | None,
) -> BackupFile | None:
    """Write the table from its Arrow columns; None where it cannot be read so (nothing is
    left of the file then), for the caller to read it row by row."""
    from dsdb_plan.archive.columnar import ParquetWriter
    from dsdb_plan.migrate.sqlite_arrow import Unfit

    batches = columns.batches(schema, COLUMN_BATCH_ROWS)
    if batches is None:
        return None
    writer = ParquetWriter(folder / f"{stem}{PARQUET_SUFFIX}", schema)
    try:
        for batch in read_ahead_of(batches):
            writer.write_columns(batch)
            _report(schema.name, writer.rows, progress, cancel)
    except Unfit:
        writer.abort()
        writer.path.unlink()
        return None
    except BaseException:
        writer.abort()
        raise
    return _closed(writer, schema.name, progress)


def _report(
    table: str, rows: int, progress: Progress | None, cancel: threading.Event | None
) -> None:
    if progress is not None:
        progress(table, rows)
    if cancel is not None and cancel.is_set():
        raise Interrupted(
            f"table {table!r}: stopped; the unfinished backup was discarded, "
            "the next apply takes it again"
        )


def _closed(writer: DataWriter, table: str, progress: Progress | None) -> BackupFile:
    size, sha256 = writer.close()
    if progress is not None and writer.rows == 0:
        progress(table, 0)
    return BackupFile(writer.path.name, table, writer.rows, size, sha256)


def _batches(conn: sa.Connection, query: sa.Select[Any]) -> Iterator[Sequence[tuple[Any, ...]]]:
    """The query's rows as tuples of the driver's values, `BATCH_ROWS` at a time."""
    if engine_for(conn.dialect).registration.embedded:
        # An embedded driver (pysqlite) steps the statement as rows are fetched, so its
        # cursor is bounded already; reading it directly skips building a SQLAlchemy Row per
        # row. The columns are untyped (`sa.column`), so a Row would hold the very same values.
        cursor = conn.execute(query).cursor
        while rows := cursor.fetchmany(BATCH_ROWS):
            yield rows
        return
    # Elsewhere a server-side cursor keeps memory bounded (yield_per implies stream_results).
    for rows in conn.execute(query.execution_options(yield_per=BATCH_ROWS)).partitions():
        yield list(map(tuple, rows))


def _write_manifest(path: Path, info: BackupInfo) -> None:
    with open(path, "x", encoding="utf-8") as handle:
        json.dump(info.to_dict(), handle, ensure_ascii=False, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
