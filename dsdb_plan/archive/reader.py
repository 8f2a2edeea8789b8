"""Read, verify and list backups. Nothing here writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

from dsdb_plan.archive.format import FORMAT_VERSION, Block, file_digest, read_blocks
from dsdb_plan.archive.info import MANIFEST_NAME, BackupInfo
from dsdb_plan.errors import BackupError


def _folder(path: Path) -> Path:
    path = Path(path)
    return path.parent if path.name == MANIFEST_NAME else path


def read_backup_info(path: Path) -> BackupInfo:
    """The metadata of the backup in folder `path` (or its `backup.json`); files unread.

    A missing or garbled `backup.json` raises `BackupError` naming it.
    """
    folder = _folder(path)
    manifest = folder / MANIFEST_NAME
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"not a backup: {manifest} is missing") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise BackupError(f"backup metadata {manifest} is unreadable: {error}") from None
    try:
        info = BackupInfo.from_dict(data, folder)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise BackupError(f"backup metadata {manifest} is garbled: {error!r}") from None
    if not 1 <= info.format_version <= FORMAT_VERSION:
        raise BackupError(
            f"backup {folder} has format version {info.format_version}; this dsdb reads "
            f"versions 1 to {FORMAT_VERSION} (a newer dsdb wrote it?)"
        )
    return info


def verify_backup(path: Path) -> BackupInfo:
    """Check every data file's size and SHA-256 against `backup.json`.

    Raises `BackupError` naming the first missing, truncated or altered file.
    """
    info = read_backup_info(path)
    for file in info.files:
        location = info.path / file.name
        try:
            size, sha256 = file_digest(location)
        except FileNotFoundError:
            raise BackupError(f"backup {info.id}: data file {location} is missing") from None
        except OSError as error:
            raise BackupError(f"backup {info.id}: data file {location}: {error}") from None
        if size != file.size:
            raise BackupError(
                f"backup {info.id}: data file {location} has {size} bytes, "
                f"expected {file.size} (truncated or altered)"
            )
        if sha256 != file.sha256:
            raise BackupError(
                f"backup {info.id}: data file {location} is corrupted (SHA-256 mismatch)"
            )
    return info


def list_backups(root: Path) -> list[BackupInfo]:
    """Every backup under `root`, newest first; temporary (`.`-prefixed) folders ignored.

    Folders without `backup.json` are not backups and are skipped; a garbled `backup.json`
    raises, so a damaged backup is never silently passed over.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = [
        read_backup_info(folder)
        for folder in root.iterdir()
        if folder.is_dir() and not folder.name.startswith(".") and (folder / MANIFEST_NAME).exists()
    ]
    return sorted(found, key=lambda info: (info.created_at, info.id), reverse=True)


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
