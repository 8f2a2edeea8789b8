"""What a backup says about itself: `backup.json`, as `BackupInfo` and `BackupFile`."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dsdb_plan.dbschema import TableSchema
from dsdb_plan.errors import BackupError, DsdbError

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


@dataclass(frozen=True, repr=False)
class BackupInfo:
    """A backup's metadata: where it is, when and from what it was taken, and its files."""

    id: str
    path: Path
    created_at: dt.datetime
    source_dialect: str
    tables: tuple[TableSchema, ...]  # parents first
    files: tuple[BackupFile, ...]
    format_version: int = 1

    def __repr__(self) -> str:
        # A summary: the tables' whole schemas would fill a notebook cell.
        return (
            f"BackupInfo(id={self.id!r}, created_at={self.created_at.isoformat()!r}, "
            f"source_dialect={self.source_dialect!r}, tables={list(self.table_names)!r}, "
            f"rows={self.total_rows}, bytes={self.total_bytes}, path={str(self.path)!r})"
        )

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
    def from_dict(cls, data: Any, path: Path) -> BackupInfo:
        """The backup that `data` (the content of `backup.json`, or the state's record of it)
        describes; what is missing or of the wrong type raises `ValueError` saying where."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT_NAME:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise ValueError(f"not a dsdb backup (format {found!r})")
        try:
            metadata = _Metadata.model_validate(data)
        except ValidationError as error:
            raise ValueError(_first_problem(error)) from None
        try:
            created_at = dt.datetime.fromisoformat(metadata.created_at)
        except ValueError:
            raise ValueError(f"created_at: not a time: {metadata.created_at!r}") from None
        return cls(
            id=metadata.id,
            path=path,
            created_at=created_at,
            source_dialect=metadata.source_dialect,
            tables=tuple(_table(index, table) for index, table in enumerate(metadata.tables)),
            files=tuple(
                BackupFile(file.name, file.table, file.rows, file.size, file.sha256)
                for file in metadata.files
            ),
            format_version=metadata.format_version,
        )


class _FileEntry(BaseModel):
    """One entry of `backup.json`'s files, as it must be written."""

    model_config = ConfigDict(strict=True, frozen=True)

    name: str
    table: str
    rows: int = Field(ge=0)
    size: int = Field(ge=0)
    sha256: str = Field(pattern="^[0-9a-f]{64}$")

    @field_validator("name")
    @classmethod
    def _inside_the_folder(cls, name: str) -> str:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"unsafe data file name {name!r}")  # never read outside the folder
        return name


class _Metadata(BaseModel):
    """`backup.json`'s fields that a restore relies on (totals and the like are derived)."""

    model_config = ConfigDict(strict=True, frozen=True)

    format_version: int
    id: str
    created_at: str
    source_dialect: str
    tables: list[dict[str, Any]]
    files: list[_FileEntry]


def _first_problem(error: ValidationError) -> str:
    """The first thing wrong, located: `files.2: lacks field 'sha256'`."""
    first = error.errors(include_url=False, include_input=False)[0]
    *parents, last = first["loc"] or ("",)
    where = ".".join(str(part) for part in parents)
    if first["type"] == "missing":
        return (f"{where}: " if where else "") + f"lacks field {last!r}"
    message = str(first["msg"]).removeprefix("Value error, ")
    return ".".join(str(part) for part in first["loc"]) + f": {message}"


def _table(index: int, data: dict[str, Any]) -> TableSchema:
    try:
        return TableSchema.from_dict(data)
    except KeyError as error:
        raise ValueError(f"tables.{index}: lacks field {error.args[0]!r}") from None
    except (DsdbError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"tables.{index}: {error}") from None
