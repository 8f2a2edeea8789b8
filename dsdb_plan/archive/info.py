"""What a backup says about itself: `backup.json`, as `BackupInfo` and `BackupFile`."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsdb_plan.dbschema import TableSchema
from dsdb_plan.errors import BackupError

MANIFEST_NAME = "backup.json"
FORMAT_NAME = "dsdb-backup"


def new_backup_id(now: dt.datetime) -> str:
    """A sortable, unique id: UTC time to the microsecond plus 6 random hex digits (two
    backups in one second still sort by time).

    A naive `now` is taken as UTC.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{stamp}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class BackupFile:
    """One table's data file, with what it must hold to be intact."""

    name: str
    table: str
    rows: int
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "table": self.table,
            "rows": self.rows,
            "size": self.size,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BackupFile:
        name = str(data["name"])
        if "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"unsafe data file name {name!r}")  # never read outside the folder
        return cls(
            name, str(data["table"]), int(data["rows"]), int(data["size"]), str(data["sha256"])
        )


@dataclass(frozen=True)
class BackupInfo:
    """A backup's metadata: where it is, when and from what it was taken, and its files."""

    id: str
    path: Path
    created_at: dt.datetime
    source_dialect: str
    tables: tuple[TableSchema, ...]  # parents first
    files: tuple[BackupFile, ...]
    format_version: int = 1

    @property
    def total_rows(self) -> int:
        return sum(file.rows for file in self.files)

    @property
    def total_bytes(self) -> int:
        return sum(file.size for file in self.files)

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(table.name for table in self.tables)

    def table(self, name: str) -> TableSchema:
        for table in self.tables:
            if table.name == name:
                return table
        raise BackupError(f"backup {self.id} has no table {name!r}")

    def file_for(self, table: str) -> BackupFile:
        for file in self.files:
            if file.table == table:
                return file
        raise BackupError(f"backup {self.id} has no data file for table {table!r}")

    def to_dict(self) -> dict[str, Any]:
        """The content of `backup.json` (the path is where it lies, so it is not stored)."""
        return {
            "format": FORMAT_NAME,
            "format_version": self.format_version,
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "source_dialect": self.source_dialect,
            "tables": [table.to_dict() for table in self.tables],
            "files": [file.to_dict() for file in self.files],
            "total_rows": self.total_rows,
            "total_bytes": self.total_bytes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: Path) -> BackupInfo:
        if data.get("format") != FORMAT_NAME:
            raise ValueError(f"not a dsdb backup (format {data.get('format')!r})")
        return cls(
            id=str(data["id"]),
            path=path,
            created_at=dt.datetime.fromisoformat(data["created_at"]),
            source_dialect=str(data["source_dialect"]),
            tables=tuple(TableSchema.from_dict(table) for table in data["tables"]),
            files=tuple(BackupFile.from_dict(file) for file in data["files"]),
            format_version=int(data["format_version"]),
        )
