"""Write a backup: one consistent snapshot of the tables, streamed to compressed files.

The backup is built in `<root>/.<id>.tmp/` and renamed to `<root>/<id>/` only once every data
file and `backup.json` are fsynced, so a backup folder without the dot is always complete.
A backup asked to stop does so after its next batch, and its temporary folder is removed.
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
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dsdb_plan.archive.datafile import VERSIONS, DataFormat, new_writer
from dsdb_plan.archive.format import fsync_dir
from dsdb_plan.archive.info import MANIFEST_NAME, BackupFile, BackupInfo
from dsdb_plan.dbschema import TableSchema, reflect_tables
from dsdb_plan.engines import engine_for
from dsdb_plan.errors import BackupError, Interrupted
from dsdb_plan.migrate.snapshot import consistent_snapshot

Progress = Callable[[str, int], None]
#: Called with each batch of a table's rows as read: every column, as the driver returns them.
RowHook = Callable[[str, Sequence[tuple[Any, ...]]], None]
#: Rows fetched per round trip and written per batch: bounded memory whatever the table size.
BATCH_ROWS = 5000
_OWNER_NAME = "owner.json"


def write_backup(
    engine: sa.Engine,
    root: Path,
    backup_id: str,
    tables: Collection[str] | None = None,
    progress: Progress | None = None,
    on_rows: RowHook | None = None,
    cancel: threading.Event | None = None,
    data_format: DataFormat = "parquet",
) -> BackupInfo:
    """Back up `tables` (default: all) of `engine` to `<root>/<backup_id>/`.

    `progress(table, rows_so_far)` is called after every batch, `on_rows(table, rows)` with
    every batch (to fingerprint the rows without reading them again). Stale temporary folders
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
        with consistent_snapshot(engine, read_only=True) as conn:
            schemas = reflect_tables(conn, tables)
            files = [
                _write_table(conn, schema, temporary, index, progress, on_rows, cancel, data_format)
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


def _write_table(
    conn: sa.Connection,
    schema: TableSchema,
    folder: Path,
    index: int,
    progress: Progress | None,
    on_rows: RowHook | None,
    cancel: threading.Event | None,
    data_format: DataFormat,
) -> BackupFile:
    writer = new_writer(folder, _file_stem(index, schema.name), schema, data_format)
    try:
        for rows in _batches(conn, _select(conn, schema)):
            writer.write_rows(rows)
            if on_rows is not None:
                on_rows(schema.name, rows)
            if progress is not None:
                progress(schema.name, writer.rows)
            if cancel is not None and cancel.is_set():
                raise Interrupted(
                    f"table {schema.name!r}: stopped; the unfinished backup was discarded, "
                    "the next apply takes it again"
                )
    except BaseException:
        writer.abort()
        raise
    size, sha256 = writer.close()
    if progress is not None and writer.rows == 0:
        progress(schema.name, 0)
    return BackupFile(writer.path.name, schema.name, writer.rows, size, sha256)


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
