"""The portable description of a table, shared by every engine and by backups.

A `TableSchema` describes a table with portable type names (`integer`, `double`, `decimal`,
`datetime`, ...) so that a backup or a migration can carry it from one engine to another.
Each engine (`dsdb_plan.engines`) maps these types to its own and back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dsdb_plan.errors import DsdbError

#: Every portable type name a `ColumnSchema.type` may hold.
PORTABLE_TYPES = frozenset(
    {
        "smallint",
        "integer",
        "bigint",
        "boolean",
        "float",  # single precision, only when the source really was (PostgreSQL real, FLOAT)
        "double",
        "decimal",
        "varchar",
        "text",
        "binary",
        "date",
        "time",
        "datetime",
        "json",
        "uuid",
        "typeless",  # a SQLite column declared without a type: each value keeps its class
    }
)
INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})
#: SQLite's storage classes of non-NULL values, as `typeof()` names them.
STORAGE_CLASSES = ("integer", "real", "text", "blob")


#: The integers a double holds exactly: those within +-2**53.
DOUBLE_EXACT_INTEGERS = 2**53

#: The texts a boolean is read from, whatever their case and surrounding space.
TRUE_TEXTS = frozenset({"1", "true", "t", "yes", "y", "on"})
FALSE_TEXTS = frozenset({"0", "false", "f", "no", "n", "off"})
BOOLEAN_TEXTS = TRUE_TEXTS | FALSE_TEXTS


@dataclass(frozen=True)
class StoredClasses:
    """What a typeless column's values are: the storage classes found among them
    (`STORAGE_CLASSES`, NULL left out) and whether every integer is exact in a double."""

    classes: frozenset[str]
    #: Every integer lies within +-2**53, where a double holds each exactly.
    integers_fit_double: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"classes": sorted(self.classes), "integers_fit_double": self.integers_fit_double}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StoredClasses:
        classes = frozenset(str(kind) for kind in data.get("classes", ()))
        unknown = classes - set(STORAGE_CLASSES)
        if unknown:
            raise DsdbError(f"unknown storage class {sorted(unknown)[0]!r}")
        return cls(classes, bool(data.get("integers_fit_double", True)))


@dataclass(frozen=True)
class ColumnSchema:
    """One column with a portable type and the details that type needs."""

    name: str
    type: str
    nullable: bool = True
    #: A portable default: a number (`1`, `-2.5`), a quoted string (`'x'`), `true` or
    #: `false`, or `CURRENT_TIMESTAMP`; each engine writes it its own way.
    default: str | None = None
    autoincrement: bool = False  # identity / serial / AUTO_INCREMENT / SQLite rowid alias
    length: int | None = None  # varchar
    precision: int | None = None  # decimal
    scale: int | None = None  # decimal
    timezone: bool = False  # datetime, time
    #: typeless: the storage classes its values hold (`typeless.StoredClasses`), once
    #: observed; None before. What a typed engine can create it as is decided from them.
    stored: StoredClasses | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "nullable": self.nullable,
            "default": self.default,
            "autoincrement": self.autoincrement,
            "length": self.length,
            "precision": self.precision,
            "scale": self.scale,
            "timezone": self.timezone,
            **({"stored": self.stored.to_dict()} if self.stored is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSchema:
        if data["type"] not in PORTABLE_TYPES:
            raise DsdbError(f"column {data['name']!r}: unknown portable type {data['type']!r}")
        return cls(
            name=str(data["name"]),
            type=str(data["type"]),
            nullable=bool(data.get("nullable", True)),
            default=data.get("default"),
            autoincrement=bool(data.get("autoincrement", False)),
            length=data.get("length"),
            precision=data.get("precision"),
            scale=data.get("scale"),
            timezone=bool(data.get("timezone", False)),
            stored=StoredClasses.from_dict(data["stored"]) if data.get("stored") else None,
        )


@dataclass(frozen=True)
class IndexSchema:
    """A secondary index (unique constraints are kept as unique indexes)."""

    name: str | None
    columns: tuple[str, ...]
    unique: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "columns": list(self.columns), "unique": self.unique}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexSchema:
        return cls(data.get("name"), tuple(data["columns"]), bool(data.get("unique", False)))


@dataclass(frozen=True)
class ForeignKeySchema:
    """A foreign key from `columns` to `ref_columns` of `ref_table`."""

    name: str | None
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": list(self.columns),
            "ref_table": self.ref_table,
            "ref_columns": list(self.ref_columns),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ForeignKeySchema:
        return cls(
            data.get("name"),
            tuple(data["columns"]),
            str(data["ref_table"]),
            tuple(data["ref_columns"]),
        )


@dataclass(frozen=True)
class TableSchema:
    """A table: columns in order, primary key, foreign keys and indexes."""

    name: str
    columns: tuple[ColumnSchema, ...]
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKeySchema, ...] = ()
    indexes: tuple[IndexSchema, ...] = field(default=())

    def column(self, name: str) -> ColumnSchema:
        for column in self.columns:
            if column.name == name:
                return column
        raise DsdbError(f"table {self.name!r} has no column {name!r}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def keyed_columns(self) -> frozenset[str]:
        """Columns that sit in a key or an index (MariaDB needs a bounded type for them)."""
        names = set(self.primary_key)
        for fk in self.foreign_keys:
            names.update(fk.columns)
        for index in self.indexes:
            names.update(index.columns)
        return frozenset(names)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": [column.to_dict() for column in self.columns],
            "primary_key": list(self.primary_key),
            "foreign_keys": [fk.to_dict() for fk in self.foreign_keys],
            "indexes": [index.to_dict() for index in self.indexes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableSchema:
        return cls(
            name=str(data["name"]),
            columns=tuple(ColumnSchema.from_dict(c) for c in data["columns"]),
            primary_key=tuple(data.get("primary_key", ())),
            foreign_keys=tuple(ForeignKeySchema.from_dict(f) for f in data.get("foreign_keys", ())),
            indexes=tuple(IndexSchema.from_dict(i) for i in data.get("indexes", ())),
        )
