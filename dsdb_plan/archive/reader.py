"""Read and list backups. Nothing here writes."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import Any

from dsdb_plan.archive.datafile import DATA_SUFFIXES, FORMAT_VERSION, PARQUET_SUFFIX, read_blocks
from dsdb_plan.archive.format import Block
from dsdb_plan.archive.info import MANIFEST_NAME, BackupInfo
from dsdb_plan.errors import BackupError


def _folder(path: Path) -> Path:
    path = Path(path)
    return path.parent if path.name == MANIFEST_NAME else path


def read_backup_info(path: Path) -> BackupInfo:
    """The metadata of the backup in folder `path` (or its `backup.json`); files unread.

    A missing or garbled `backup.json` raises `BackupError` naming it and what is wrong.
    """
    folder = _folder(path)
    manifest = folder / MANIFEST_NAME
    try:
        data = json.loads(manifest.read_bytes())
    except FileNotFoundError:
        raise BackupError(f"not a backup: {manifest} is missing") from None
    except OSError as error:
        raise BackupError(f"backup metadata {manifest} is unreadable: {error.strerror}") from None
    except ValueError as error:  # UnicodeDecodeError is one, too
        raise BackupError(f"backup metadata {manifest} is not JSON: {error}") from None
    try:
        info = BackupInfo.from_dict(data, folder)
    except ValueError as error:
        raise BackupError(f"backup metadata {manifest} is garbled: {error}") from None
    if not 1 <= info.format_version <= FORMAT_VERSION:
        raise BackupError(
            f"backup {folder} has format version {info.format_version}; this dsdb reads "
            f"versions 1 to {FORMAT_VERSION} (a newer dsdb wrote it?)"
        )
    return info


def list_backups(root: Path) -> list[BackupInfo]:
    """Every backup under `root`, newest first; temporary (`.`-prefixed) folders ignored.

    Folders with neither `backup.json` nor data files are not backups and are skipped; a
    missing or garbled `backup.json` beside data files raises, so a damaged backup is never
    silently passed over (for an older one).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = [
        read_backup_info(folder)
        for folder in root.iterdir()
        if folder.is_dir() and not folder.name.startswith(".") and _looks_like_a_backup(folder)
    ]
    return sorted(found, key=lambda info: (info.created_at, info.id), reverse=True)


def _looks_like_a_backup(folder: Path) -> bool:
    return (folder / MANIFEST_NAME).exists() or any(
        entry.name.endswith(DATA_SUFFIXES) for entry in folder.iterdir()
    )


def iter_rows(info: BackupInfo, table: str) -> Iterator[list[Any]]:
    """The rows of `table`, decoded, streaming; a row count off from `backup.json` raises."""
    return chain.from_iterable(block.row_lists() for block in iter_blocks(info, table))


def iter_blocks(info: BackupInfo, table: str) -> Iterator[Block]:
    """The rows of `table` as `iter_rows` gives them, column by column, a block of the file
    at a time."""
    file = info.file_for(table)
    count = 0
    for block in read_blocks(info.path / file.name, info.format_version):
        count += block.rows
        yield block
    if count != file.rows:
        raise BackupError(
            f"backup {info.id}: data file {info.path / file.name} holds {count} rows, "
            f"expected {file.rows}"
        )


def iter_columns(
    info: BackupInfo, table: str, names: Sequence[str]
) -> Iterator[list[Sequence[Any]]]:
    """The values of `table`'s columns `names`, decoded as `iter_blocks` decodes them, a
    batch of rows at a time: a Parquet file reads only those columns."""
    file = info.file_for(table)
    path = info.path / file.name
    if file.name.endswith(PARQUET_SUFFIX):
        from dsdb_plan.archive import columnar

        yield from columnar.read_columns(path, names)
        return
    positions = [info.table(table).column_names.index(name) for name in names]
    for block in read_blocks(path, info.format_version):
        yield [block.columns[position] for position in positions]
