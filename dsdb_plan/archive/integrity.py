"""Is a backup what `backup.json` and the state say it is? Asked before a restore writes.

Two depths. `check_backup` reads metadata only: `backup.json` against the state's record of
the backup (taken when it was written), its schema against its file list, the folder against
the file list, and each file's size; cheap enough for every plan. `verify_data` then reads
each data file once, checking its SHA-256, its structure (the gzip stream, or every Parquet
page against its CRC) and its row count together.
Every problem raises `BackupError` naming the backup and the file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dsdb_plan.archive.datafile import scan_data_file
from dsdb_plan.archive.info import MANIFEST_NAME, BackupFile, BackupInfo
from dsdb_plan.archive.reader import read_backup_info
from dsdb_plan.errors import BackupError

_FILE_FIELDS = ("sha256", "size", "rows", "table")
_BACKUP_FIELDS = ("source_dialect", "created_at", "format_version")


def verify_backup(path: Path, recorded: Mapping[str, Any] | None = None) -> BackupInfo:
    """Check the backup in folder `path` through and through: `check_backup`, then every
    data file's content (`verify_data`)."""
    info = check_backup(path, recorded)
    verify_data(info)
    return info


def check_backup(path: Path, recorded: Mapping[str, Any] | None = None) -> BackupInfo:
    """The backup in folder `path`, once its metadata holds together: `backup.json` matches
    `recorded` (the state's record of the backup, when there is one), lists one data file
    per table of its schema, and the folder holds exactly those files, of those sizes."""
    info = read_backup_info(path)
    if recorded is not None:
        _compare_with_record(info, recorded)
    _check_listing(info)
    _check_folder(info)
    return info


def verify_data(info: BackupInfo, tables: Collection[str] | None = None) -> None:
    """Read the data files of `tables` (default: all) once each: their size, SHA-256,
    structure and row count must be what `backup.json` says."""
    for file in info.files:
        if tables is None or file.table in tables:
            _verify_file(info, file)


def _compare_with_record(info: BackupInfo, recorded: Mapping[str, Any]) -> None:
    try:
        expected = BackupInfo.from_dict(recorded, info.path)
    except ValueError as error:
        raise BackupError(f"the state's record of backup {info.id} is garbled: {error}") from None
    if expected.id != info.id:
        raise BackupError(
            f"backup {expected.id}: {info.path / MANIFEST_NAME} names backup {info.id} "
            "instead: the folder holds another backup than the state recorded"
        )
    _compare_files(info, expected)
    _compare_tables(info, expected)
    for field in _BACKUP_FIELDS:
        if getattr(info, field) != getattr(expected, field):
            raise BackupError(
                f"backup {info.id}: {info.path / MANIFEST_NAME} gives {field} "
                f"{getattr(info, field)}, the state recorded {getattr(expected, field)} when "
                "the backup was taken"
            )


def _compare_files(info: BackupInfo, expected: BackupInfo) -> None:
    manifest = info.path / MANIFEST_NAME
    found = {file.name: file for file in info.files}
    for file in expected.files:
        location = info.path / file.name
        now = found.pop(file.name, None)
        if now is None:
            raise BackupError(
                f"backup {info.id}: data file {location} was recorded in state when the "
                f"backup was taken, but {manifest} no longer lists it"
            )
        for field in _FILE_FIELDS:
            if getattr(now, field) != getattr(file, field):
                raise BackupError(
                    f"backup {info.id}: data file {location}: {manifest} gives {field} "
                    f"{getattr(now, field)}, the state recorded {getattr(file, field)} when "
                    "the backup was taken"
                )
    if found:
        raise BackupError(
            f"backup {info.id}: {manifest} lists data file {info.path / min(found)}, which "
            "the state did not record when the backup was taken"
        )


def _compare_tables(info: BackupInfo, expected: BackupInfo) -> None:
    manifest = info.path / MANIFEST_NAME
    schemas = {table.name: table for table in expected.tables}
    for table in info.tables:
        if table.name not in schemas:
            raise BackupError(
                f"backup {info.id}: {manifest} lists table {table.name!r}, which the state "
                "did not record when the backup was taken"
            )
        if schemas.pop(table.name) != table:
            raise BackupError(
                f"backup {info.id}: {manifest}: the schema of table {table.name!r} is not the "
                "one recorded in state when the backup was taken"
            )
    if schemas:
        raise BackupError(
            f"backup {info.id}: table {min(schemas)!r} was recorded in state when the backup "
            f"was taken, but {manifest} no longer has it"
        )


def _check_listing(info: BackupInfo) -> None:
    """One data file per table of the schema, and no other."""
    manifest = info.path / MANIFEST_NAME
    for name, count in Counter(file.name for file in info.files).items():
        if count > 1:
            raise BackupError(f"backup {info.id}: {manifest} lists data file {name} twice")
    for table, count in Counter(info.table_names).items():
        if count > 1:
            raise BackupError(f"backup {info.id}: {manifest} lists table {table!r} twice")
    schema = set(info.table_names)
    for table, count in Counter(file.table for file in info.files).items():
        if table not in schema:
            raise BackupError(
                f"backup {info.id}: {manifest} lists data file "
                f"{info.path / info.file_for(table).name} for table {table!r}, which its "
                "schema does not have"
            )
        if count > 1:
            raise BackupError(
                f"backup {info.id}: {manifest} lists {count} data files for table {table!r}"
            )
    for table in info.table_names:
        if not any(file.table == table for file in info.files):
            raise BackupError(
                f"backup {info.id}: {manifest} lists table {table!r} but no data file for it"
            )


def _check_folder(info: BackupInfo) -> None:
    """Every listed file present with its size; nothing else beside `backup.json`."""
    for file in info.files:
        location = info.path / file.name
        with _reading(info, location):
            size = location.stat().st_size
        _compare_size(info, file, size)
    listed = {MANIFEST_NAME, *(file.name for file in info.files)}
    extra = sorted(entry for entry in info.path.iterdir() if entry.name not in listed)
    if extra:
        raise BackupError(
            f"backup {info.id}: {extra[0]} is not listed in {info.path / MANIFEST_NAME} "
            "(a file added to the backup, or its entry removed from backup.json)"
        )


def _verify_file(info: BackupInfo, file: BackupFile) -> None:
    location = info.path / file.name
    with _reading(info, location):
        scan = scan_data_file(location, info.format_version)
    _compare_size(info, file, scan.size)
    if scan.sha256 != file.sha256:
        raise BackupError(
            f"backup {info.id}: data file {location} does not match its SHA-256 "
            "(damaged or altered since the backup was taken)"
        )
    if scan.damage is not None:
        raise BackupError(f"backup {info.id}: data file {location} is damaged: {scan.damage}")
    if scan.rows != file.rows:
        raise BackupError(
            f"backup {info.id}: data file {location} holds {scan.rows:,} rows, "
            f"{info.path / MANIFEST_NAME} says {file.rows:,}"
        )


@contextmanager
def _reading(info: BackupInfo, location: Path) -> Iterator[None]:
    """Name the backup and the data file when reading it fails."""
    try:
        yield
    except FileNotFoundError:
        raise BackupError(f"backup {info.id}: data file {location} is missing") from None
    except OSError as error:
        raise BackupError(f"backup {info.id}: data file {location}: {error.strerror}") from None


def _compare_size(info: BackupInfo, file: BackupFile, size: int) -> None:
    if size != file.size:
        raise BackupError(
            f"backup {info.id}: data file {info.path / file.name} has {size:,} bytes, "
            f"{info.path / MANIFEST_NAME} says {file.size:,} (truncated or altered)"
        )
