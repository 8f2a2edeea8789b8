"""Portable table schemas: reflect them from any database, create them in any other.

A `TableSchema` describes a table with portable type names (`integer`, `double`, `decimal`,
`datetime`, ...) so that a backup or a migration can carry it from SQLite to PostgreSQL or
MariaDB and back. The mapping avoids the traps of naive copies (issue 4, item 4): SQLite `REAL`
is a double and must never become PostgreSQL's single-precision `real`; MariaDB cannot index
`TEXT`; `DATETIME` without a precision drops microseconds; identity sequences must continue
after the copied keys. Every identifier goes through SQLAlchemy's quoting, so hostile names
(spaces, quotes, semicolons, reserved words, unicode) work everywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import warnings
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine.interfaces import ReflectedColumn
from sqlalchemy.types import UserDefinedType

from dsdb_plan.errors import DsdbError

Bind = sa.Engine | sa.Connection

# Columns of types SQLAlchemy does not know (point, xml, ...) are carried by their text; its
# warning about each, on every reflection dsdb makes, says nothing a user could act on.
warnings.filterwarnings(
    "ignore", "Did not recognize type", category=sa.exc.SAWarning, module=r"dsdb_plan\."
)

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
    }
)
_INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})
#: Length given to unbounded text that MariaDB must index: 255 characters of utf8mb4 are
#: 1,020 bytes, so three such columns still fit InnoDB's 3,072-byte index key limit.
MYSQL_KEY_TEXT_LENGTH = 255


@dataclass(frozen=True)
class ColumnSchema:
    """One column with a portable type and the details that type needs."""

    name: str
    type: str
    nullable: bool = True
    default: str | None = None  # a portable SQL literal, or CURRENT_TIMESTAMP
    autoincrement: bool = False  # identity / serial / AUTO_INCREMENT / SQLite rowid alias
    length: int | None = None  # varchar
    precision: int | None = None  # decimal
    scale: int | None = None  # decimal
    timezone: bool = False  # datetime, time

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


# -- ordering ----------------------------------------------------------------------------


def sort_tables(tables: Iterable[TableSchema]) -> list[TableSchema]:
    """Parents before children; deterministic (name order among equals).

    A cycle cannot be ordered: its tables fall back to name order, and the foreign keys that
    then point forward are reported by `deferred_foreign_keys` to be added after all tables.
    """
    by_name = {table.name: table for table in tables}
    parents = {
        name: {
            fk.ref_table
            for fk in table.foreign_keys
            if fk.ref_table in by_name and fk.ref_table != name  # self-references never block
        }
        for name, table in by_name.items()
    }
    ordered: list[TableSchema] = []
    done: set[str] = set()
    while len(done) < len(by_name):
        remaining = sorted(set(by_name) - done)
        ready = [name for name in remaining if parents[name] <= done]
        # In a cycle nothing is ready: release the first table by name to break it.
        for name in ready or remaining[:1]:
            ordered.append(by_name[name])
            done.add(name)
    return ordered


def deferred_foreign_keys(
    ordered: Sequence[TableSchema],
) -> list[tuple[TableSchema, ForeignKeySchema]]:
    """Foreign keys that point at a table created later in `ordered` (cycles only)."""
    position = {table.name: index for index, table in enumerate(ordered)}
    return [
        (table, fk)
        for index, table in enumerate(ordered)
        for fk in table.foreign_keys
        if position.get(fk.ref_table, -1) > index
    ]


def quote_identifier(dialect: sa.Dialect, name: str) -> str:
    """`name` always quoted, for a bound value or SQL that SQLAlchemy escapes itself
    (`literal_column`).

    SQL given to `exec_driver_sql` needs `quote_for_driver` instead: the pyformat drivers
    substitute parameters even when there are none, so a `%` there must be doubled.
    """
    preparer = dialect.identifier_preparer
    escaped = name.replace(preparer.escape_quote, preparer.escape_to_quote)
    return f"{preparer.initial_quote}{escaped}{preparer.final_quote}"


def quote_for_driver(dialect: sa.Dialect, name: str) -> str:
    """`name` quoted for `exec_driver_sql`, with `%` doubled where the driver needs it."""
    return dialect.identifier_preparer.quote_identifier(name)


# -- reflection --------------------------------------------------------------------------


@contextlib.contextmanager
def transaction(bind: Bind) -> Iterator[sa.Connection]:
    """The caller's connection (and its transaction), or a new transaction committed at the end."""
    if isinstance(bind, sa.Connection):
        yield bind
    else:
        with bind.begin() as conn:
            yield conn


@contextlib.contextmanager
def connection(bind: Bind) -> Iterator[sa.Connection]:
    """The caller's connection (left open), or a new one from an engine (closed after)."""
    if isinstance(bind, sa.Connection):
        yield bind
    else:
        with bind.connect() as conn:
            yield conn


def usable_from_another_thread(conn: sa.Connection) -> bool:
    """Whether a worker thread may use `conn` (one thread at a time): not where the pool keeps
    a connection per thread (SQLite in memory), as its driver refuses every other thread."""
    return not isinstance(conn.engine.pool, sa.pool.SingletonThreadPool)


def reflect_tables(bind: Bind, tables: Collection[str] | None = None) -> list[TableSchema]:
    """The schema of every table (or the listed ones), parents first.

    Unknown requested tables raise `DsdbError` naming them all.
    """
    with transaction(bind) as conn:
        inspector = sa.inspect(conn)
        existing = set(inspector.get_table_names())
        if tables is None:
            names = sorted(existing)
        else:
            missing = sorted(set(tables) - existing)
            if missing:
                raise DsdbError("no such table: " + ", ".join(repr(name) for name in missing))
            names = sorted(set(tables))
        return sort_tables(_reflect_table(conn, inspector, name) for name in names)


def _reflect_table(conn: sa.Connection, inspector: sa.Inspector, name: str) -> TableSchema:
    dialect = conn.dialect.name
    unescape = _mysql_unescape if dialect in ("mysql", "mariadb") else _same
    pk_columns = inspector.get_pk_constraint(name).get("constrained_columns") or ()
    primary_key = tuple(unescape(column) for column in pk_columns)
    declared = _sqlite_declared_types(conn, name) if dialect == "sqlite" else {}
    json_columns = _mysql_json_columns(inspector, name) if dialect in ("mysql", "mariadb") else ()
    columns = []
    for info in reflected_columns(inspector, name):
        column = _portable_column(dialect, info, declared.get(info["name"]))
        if info["name"] in json_columns:
            column = ColumnSchema(column.name, "json", column.nullable, column.default)
        if dialect == "sqlite":
            # A single-column INTEGER primary key is SQLite's rowid alias: it autoincrements.
            rowid_alias = (
                primary_key == (column.name,)
                and (declared.get(column.name) or "").strip().upper() == "INTEGER"
            )
            column = replace(column, autoincrement=rowid_alias)
        if column.name in primary_key:
            column = replace(column, nullable=False)
        columns.append(column)
    foreign_keys = reflect_foreign_keys(conn, name)
    indexes = _reflect_indexes(inspector, name, unescape)
    return TableSchema(name, tuple(columns), primary_key, foreign_keys, indexes)


def reflected_columns(inspector: sa.Inspector, table: str) -> list[ReflectedColumn]:
    """`inspector.get_columns(table)` with every column name as written in the database."""
    columns = inspector.get_columns(table)
    if inspector.dialect.name not in ("mysql", "mariadb"):
        return columns
    # Copies: the inspector caches what it returns.
    return [{**column, "name": _mysql_unescape(column["name"])} for column in columns]


def _same(name: str) -> str:
    return name


def _mysql_unescape(name: str) -> str:
    """SQLAlchemy parses MySQL's SHOW CREATE TABLE without undoubling backticks in names."""
    return name.replace("``", "`")


def reflect_foreign_keys(conn: sa.Connection, table: str) -> tuple[ForeignKeySchema, ...]:
    """The foreign keys of `table` that point into the same schema.

    MySQL's come from information_schema: SQLAlchemy's parser skips keys whose names hold
    a backtick.
    """
    if conn.dialect.name in ("mysql", "mariadb"):
        rows = conn.execute(
            sa.text(
                "SELECT constraint_name, column_name, referenced_table_name, "
                "referenced_column_name FROM information_schema.key_column_usage "
                "WHERE table_schema = DATABASE() AND table_name = :table "
                "AND referenced_table_name IS NOT NULL "
                "AND referenced_table_schema = DATABASE() "
                "ORDER BY constraint_name, ordinal_position"
            ),
            {"table": table},
        ).all()
        grouped: dict[str, list[Any]] = {}
        for row in rows:
            grouped.setdefault(row[0], []).append(row)
        return tuple(
            ForeignKeySchema(
                name,
                tuple(row[1] for row in parts),
                parts[0][2],
                tuple(row[3] for row in parts),
            )
            for name, parts in grouped.items()
        )
    inspector = sa.inspect(conn)
    return tuple(
        ForeignKeySchema(
            fk.get("name") or None,
            tuple(fk["constrained_columns"]),
            fk["referred_table"],
            tuple(fk["referred_columns"]),
        )
        for fk in inspector.get_foreign_keys(table)
        if fk.get("referred_schema") in (None, inspector.default_schema_name)
    )


def _reflect_indexes(inspector: sa.Inspector, name: str, unescape: Any) -> tuple[IndexSchema, ...]:
    indexes: list[IndexSchema] = []
    for index in inspector.get_indexes(name):
        columns = index.get("column_names") or []
        if not columns or any(column is None for column in columns):
            continue  # expression indexes are not portable
        indexes.append(
            IndexSchema(
                unescape(index["name"]) if index.get("name") else None,
                tuple(unescape(column) for column in columns),
                bool(index.get("unique")),
            )
        )
    covered = {(index.columns, index.unique) for index in indexes}
    for constraint in inspector.get_unique_constraints(name):
        unique_columns = tuple(unescape(column) for column in constraint["column_names"])
        if (unique_columns, True) not in covered:
            indexes.append(IndexSchema(constraint.get("name"), unique_columns, unique=True))
            covered.add((unique_columns, True))
    return tuple(indexes)


def _sqlite_declared_types(conn: sa.Connection, table: str) -> dict[str, str]:
    """Declared type text per column: SQLAlchemy's reflection loses names it does not know."""
    quoted = quote_for_driver(conn.dialect, table)
    rows = conn.exec_driver_sql(f"PRAGMA main.table_info({quoted})").fetchall()
    return {row[1]: row[2] or "" for row in rows}


def _mysql_json_columns(inspector: sa.Inspector, table: str) -> frozenset[str]:
    """MariaDB's JSON is LONGTEXT plus a json_valid() check: recognise it by the check."""
    found = set()
    for check in inspector.get_check_constraints(table):
        match = re.fullmatch(r"\s*json_valid\(`((?:[^`]|``)+)`\)\s*", check.get("sqltext") or "")
        if match:
            found.add(_mysql_unescape(match.group(1)))
    return frozenset(found)


_DECIMAL_ARGS = re.compile(r"\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")


def sqlite_portable_type(declared: str) -> ColumnSchema:
    """Map a SQLite declared type (any text, any case) to a portable type.

    SQLite accepts any type name and stores by affinity; names are matched the way users
    write them, then by SQLite's own affinity rules (https://sqlite.org/datatype3.html).
    """
    text = declared.strip().upper()
    base = re.sub(r"\(.*", "", text).strip()
    args = _DECIMAL_ARGS.search(text)
    first = int(args.group(1)) if args else None
    second = int(args.group(2)) if args and args.group(2) else None
    tz = "WITH TIME ZONE" in text or base.endswith("TZ")
    if not text:
        return ColumnSchema("", "text")
    if base in ("BOOLEAN", "BOOL"):
        return ColumnSchema("", "boolean")
    if base in ("BIGINT", "INT8", "UNSIGNED BIG INT"):
        return ColumnSchema("", "bigint")
    if base in ("SMALLINT", "INT2", "TINYINT"):
        return ColumnSchema("", "smallint")
    if base in ("DATE",):
        return ColumnSchema("", "date")
    if base.startswith("TIMESTAMP") or base.startswith("DATETIME"):
        return ColumnSchema("", "datetime", timezone=tz)
    if base.startswith("TIME"):
        return ColumnSchema("", "time", timezone=tz)
    if base in ("JSON", "JSONB"):
        return ColumnSchema("", "json")
    if base == "UUID":
        return ColumnSchema("", "uuid")
    if base in ("DECIMAL", "NUMERIC", "NUMBER", "MONEY"):
        return ColumnSchema("", "decimal", precision=first, scale=second)
    if "INT" in base:
        return ColumnSchema("", "bigint")  # every SQLite integer may use 8 bytes
    if "CHAR" in base or "CLOB" in base or "TEXT" in base:
        if first is not None and "CLOB" not in base and "TEXT" not in base:
            return ColumnSchema("", "varchar", length=first)
        return ColumnSchema("", "text")
    if "BLOB" in base or "BINARY" in base or base == "BYTEA":
        return ColumnSchema("", "binary")
    if "REAL" in base or "FLOA" in base or "DOUB" in base:
        return ColumnSchema("", "double")  # every SQLite float is an 8-byte IEEE double
    return ColumnSchema("", "decimal", precision=first, scale=second)  # NUMERIC affinity


def _portable_column(dialect: str, info: Mapping[str, Any], declared: str | None) -> ColumnSchema:
    name = info["name"]
    if dialect == "sqlite":
        shape = sqlite_portable_type(declared or "")
    else:
        shape = portable_type(info["type"])
    autoincrement = bool(info.get("autoincrement") is True or info.get("identity"))
    return ColumnSchema(
        name=name,
        type=shape.type,
        nullable=bool(info.get("nullable", True)),
        default=_portable_default(info.get("default")),
        autoincrement=autoincrement and shape.type in _INTEGER_TYPES,
        length=shape.length,
        precision=shape.precision,
        scale=shape.scale,
        timezone=shape.timezone,
    )


def portable_type(type_: Any) -> ColumnSchema:
    """Map a reflected SQLAlchemy type (PostgreSQL, MySQL/MariaDB, others) to a portable one."""
    if isinstance(type_, mysql.TINYINT) and getattr(type_, "display_width", None) == 1:
        return ColumnSchema("", "boolean")  # MySQL's BOOL is TINYINT(1)
    if isinstance(type_, sa.Boolean):
        return ColumnSchema("", "boolean")
    if isinstance(type_, sa.BigInteger):
        return ColumnSchema("", "bigint")
    if isinstance(type_, sa.SmallInteger | mysql.TINYINT):
        return ColumnSchema("", "smallint")
    if isinstance(type_, sa.Integer):
        return ColumnSchema("", "integer")
    if isinstance(type_, sa.REAL | mysql.FLOAT) or (
        isinstance(type_, sa.Float)
        and not isinstance(type_, sa.Double | postgresql.DOUBLE_PRECISION)
        and (type_.precision or 53) <= 24
    ):
        return ColumnSchema("", "float")
    if isinstance(type_, sa.Float):
        return ColumnSchema("", "double")
    if isinstance(type_, sa.Numeric):
        return ColumnSchema("", "decimal", precision=type_.precision, scale=type_.scale)
    if isinstance(type_, sa.JSON):
        return ColumnSchema("", "json")
    if isinstance(type_, sa.Uuid):
        return ColumnSchema("", "uuid")
    if isinstance(type_, sa.DateTime):
        return ColumnSchema("", "datetime", timezone=bool(type_.timezone))
    if isinstance(type_, sa.Date):
        return ColumnSchema("", "date")
    if isinstance(type_, sa.Time):
        return ColumnSchema("", "time", timezone=bool(type_.timezone))
    if isinstance(type_, sa.LargeBinary | sa.types._Binary):
        return ColumnSchema("", "binary")
    if isinstance(type_, sa.String) and not isinstance(type_, sa.Text | sa.Enum) and type_.length:
        return ColumnSchema("", "varchar", length=type_.length)
    return ColumnSchema("", "text")  # TEXT, ENUM and anything unknown: values kept as text


_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
_QUOTED = re.compile(r"'(?:[^']|'')*'")


def _portable_default(raw: Any) -> str | None:
    """Keep only defaults every database understands: numbers, strings, CURRENT_TIMESTAMP."""
    if raw is None:
        return None
    text = str(raw).strip()
    text = re.sub(r"::[\w \"]+(\[\])?$", "", text)  # PostgreSQL casts: 'x'::text
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    if _NUMBER.fullmatch(text) or _QUOTED.fullmatch(text):
        return text
    if text.lower() in ("current_timestamp", "current_timestamp()", "now()") or re.fullmatch(
        r"current_timestamp\(\d\)", text.lower()
    ):
        return "CURRENT_TIMESTAMP"
    return None  # sequences, functions: dialect-specific, not carried


# -- target types ------------------------------------------------------------------------


class _Declared(UserDefinedType[Any]):
    """A SQLite column type written exactly as given (SQLite keeps declared names)."""

    cache_ok = True

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def get_col_spec(self, **kw: Any) -> str:
        return self.spec


def target_type(column: ColumnSchema, dialect: str, *, keyed: bool = False) -> Any:
    """The SQLAlchemy type to create `column` with on `dialect`.

    `keyed` columns sit in a key or index; MariaDB cannot index unbounded TEXT/BLOB, so they
    become VARCHAR/VARBINARY of `MYSQL_KEY_TEXT_LENGTH`.
    """
    kind = column.type
    is_mysql = dialect in ("mysql", "mariadb")
    if dialect == "sqlite":
        return _sqlite_type(column)
    if kind == "smallint":
        return sa.SmallInteger()
    if kind == "integer":
        return sa.Integer()
    if kind == "bigint":
        return sa.BigInteger()
    if kind == "boolean":
        return sa.Boolean(create_constraint=False)
    if kind == "float":
        return mysql.FLOAT() if is_mysql else sa.REAL()
    if kind == "double":
        # Never `real`: PostgreSQL's real keeps 6 digits (issue 4, item 4).
        return mysql.DOUBLE() if is_mysql else postgresql.DOUBLE_PRECISION()
    if kind == "decimal":
        if column.precision is None and is_mysql:
            return sa.Numeric(65, 30)  # MySQL's bare DECIMAL would be DECIMAL(10,0)
        return sa.Numeric(column.precision, column.scale)
    if kind in ("text", "varchar"):
        length = column.length if kind == "varchar" else None
        if is_mysql:
            if length is None and keyed:
                length = MYSQL_KEY_TEXT_LENGTH
            return sa.String(length) if length else mysql.LONGTEXT()
        return sa.String(length) if length else sa.Text()
    if kind == "binary":
        if dialect == "postgresql":
            return postgresql.BYTEA()
        if is_mysql:
            return mysql.VARBINARY(MYSQL_KEY_TEXT_LENGTH) if keyed else mysql.LONGBLOB()
        return sa.LargeBinary()
    if kind == "date":
        return sa.Date()
    if kind == "time":
        if is_mysql:
            return mysql.TIME(fsp=6)
        return sa.Time(timezone=column.timezone)
    if kind == "datetime":
        if is_mysql:
            # No zone-aware type in MySQL: aware values are stored as UTC. fsp=6 keeps
            # microseconds, which a bare DATETIME silently drops.
            return mysql.DATETIME(fsp=6)
        return sa.DateTime(timezone=column.timezone)
    if kind == "json":
        if dialect == "postgresql":
            return postgresql.JSONB()
        return sa.JSON()
    if kind == "uuid":
        if dialect == "postgresql":
            return postgresql.UUID(as_uuid=False)
        return sa.CHAR(36)
    raise DsdbError(f"column {column.name!r}: unknown portable type {kind!r}")


_SQLITE_NAMES = {
    "smallint": "SMALLINT",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "boolean": "BOOLEAN",
    "float": "FLOAT",
    "double": "REAL",
    "text": "TEXT",
    "binary": "BLOB",
    "date": "DATE",
    "json": "JSON",
    "uuid": "UUID",
}


def _sqlite_type(column: ColumnSchema) -> Any:
    kind = column.type
    if kind == "bigint" and column.autoincrement:
        return _Declared("INTEGER")  # only INTEGER PRIMARY KEY is the autoincrementing rowid
    if kind == "decimal":
        if column.precision is None:
            return _Declared("NUMERIC")
        return _Declared(f"NUMERIC({column.precision}, {column.scale or 0})")
    if kind == "varchar":
        return _Declared(f"VARCHAR({column.length})" if column.length else "TEXT")
    if kind == "datetime":
        return _Declared("TIMESTAMP WITH TIME ZONE" if column.timezone else "DATETIME")
    if kind == "time":
        return _Declared("TIME WITH TIME ZONE" if column.timezone else "TIME")
    return _Declared(_SQLITE_NAMES[kind])


# -- creation ----------------------------------------------------------------------------


def _mysql_table_options(dialect: sa.Dialect) -> dict[str, str]:
    """utf8mb4 for emoji; a binary, no-pad collation so keys compare like PostgreSQL/SQLite
    (case-sensitive, trailing spaces significant) and unique data from them stays unique."""
    if getattr(dialect, "is_mariadb", False):
        collation = "utf8mb4_nopad_bin"
    elif (dialect.server_version_info or (0,)) >= (8,):
        collation = "utf8mb4_0900_bin"
    else:
        collation = "utf8mb4_bin"
    return {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": collation}


def build_tables(
    dialect: sa.Dialect,
    tables: Sequence[TableSchema],
    *,
    rename: Mapping[str, str] | None = None,
    deferred: Collection[tuple[str, str | None, tuple[str, ...]]] = (),
) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    """SQLAlchemy `Table`s for `tables` on `dialect`, keyed by source name.

    Foreign keys whose (table, name, columns) is in `deferred` get `use_alter` so they can be
    added after every table exists. Tables referenced but not in `tables` get column-only
    stubs, so the DDL can name them; stubs are never created.
    """
    rename = dict(rename or {})
    metadata = sa.MetaData()
    options: dict[str, Any] = (
        _mysql_table_options(dialect) if dialect.name in ("mysql", "mariadb") else {}
    )
    built: dict[str, sa.Table] = {}
    for table in tables:
        keyed = table.keyed_columns()
        columns = [
            _sa_column(column, dialect.name, table, column.name in keyed)
            for column in table.columns
        ]
        built[table.name] = sa.Table(
            rename.get(table.name, table.name), metadata, *columns, **options
        )
    for table in tables:
        target = built[table.name]
        if table.primary_key:
            target.append_constraint(sa.PrimaryKeyConstraint(*table.primary_key))
        for fk in table.foreign_keys:
            parent = built.get(fk.ref_table)
            if parent is None:
                parent = _stub(metadata, rename.get(fk.ref_table, fk.ref_table), fk.ref_columns)
            target.append_constraint(
                sa.ForeignKeyConstraint(
                    list(fk.columns),
                    [parent.c[column] for column in fk.ref_columns],
                    name=fk.name,
                    use_alter=(table.name, fk.name, fk.columns) in deferred,
                )
            )
    return metadata, built


def _stub(metadata: sa.MetaData, name: str, columns: Sequence[str]) -> sa.Table:
    if name in metadata.tables:
        table = metadata.tables[name]
        for column in columns:
            if column not in table.c:
                table.append_column(sa.Column(column, sa.Integer()))
        return table
    return sa.Table(name, metadata, *(sa.Column(column, sa.Integer()) for column in columns))


def _sa_column(
    column: ColumnSchema, dialect: str, table: TableSchema, keyed: bool
) -> sa.Column[Any]:
    autoincrement = column.autoincrement and column.type in _INTEGER_TYPES
    extra: list[Any] = []
    if autoincrement and dialect == "postgresql":
        extra.append(sa.Identity())  # BY DEFAULT: explicit ids from the copy are accepted
    server_default = sa.text(column.default) if column.default is not None else None
    if dialect in ("mysql", "mariadb") and column.default == "CURRENT_TIMESTAMP":
        server_default = sa.text("CURRENT_TIMESTAMP(6)")  # must match DATETIME(6)
    return sa.Column(
        column.name,
        target_type(column, dialect, keyed=keyed),
        *extra,
        nullable=column.nullable and column.name not in table.primary_key,
        # MySQL allows AUTO_INCREMENT only on a key column; PostgreSQL has the Identity.
        autoincrement=autoincrement
        and (column.name in table.primary_key or dialect in ("postgresql", "sqlite")),
        server_default=server_default,
    )


def create_tables(
    bind: Bind,
    tables: Sequence[TableSchema],
    *,
    rename: Mapping[str, str] | None = None,
    with_indexes: bool = True,
) -> None:
    """Create `tables` with primary and foreign keys (and indexes), parents first.

    Foreign keys inside a cycle are added once every table exists (SQLite keeps them inline:
    it cannot add constraints later and does not check them at creation).
    """
    ordered = sort_tables(tables)
    with transaction(bind) as conn:
        later = (
            []
            if conn.dialect.name == "sqlite"
            else [(t.name, fk.name, fk.columns) for t, fk in deferred_foreign_keys(ordered)]
        )
        _, built = build_tables(conn.dialect, ordered, rename=rename, deferred=later)
        for table in ordered:
            target = built[table.name]
            inline = [fk for fk in target.foreign_key_constraints if not fk.use_alter]
            conn.execute(sa.schema.CreateTable(target, include_foreign_key_constraints=inline))
        for table in ordered:
            for fk in built[table.name].foreign_key_constraints:
                if fk.use_alter:
                    conn.execute(sa.schema.AddConstraint(fk))
        if with_indexes:
            create_indexes(conn, ordered, rename=rename)


def create_indexes(
    bind: Bind, tables: Sequence[TableSchema], *, rename: Mapping[str, str] | None = None
) -> None:
    """Create the secondary indexes of `tables` (after a bulk load, where that is faster).

    Index names are unique per schema in PostgreSQL but per table elsewhere, so a name
    already used in this call is made unique by prefixing the table name.
    """
    with transaction(bind) as conn:
        _, built = build_tables(conn.dialect, tables, rename=rename)
        used = _schema_wide_names(conn)
        for table in tables:
            target = built[table.name]
            for index in table.indexes:
                name = index.name or _index_name(target.name, index.columns)
                if name in used:
                    name = _index_name(f"{target.name}_{name}", index.columns)
                used.add(name)
                sa.Index(
                    name, *(target.c[column] for column in index.columns), unique=index.unique
                ).create(conn)


def _schema_wide_names(conn: sa.Connection) -> set[str]:
    """Names an index may not take: PostgreSQL and SQLite share one namespace per schema."""
    if conn.dialect.name == "postgresql":
        query = (
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema()"
        )
    elif conn.dialect.name == "sqlite":
        query = "SELECT name FROM sqlite_master"
    else:
        return set()
    return set(conn.exec_driver_sql(query).scalars())


def add_foreign_keys(
    bind: Bind,
    keys: Sequence[tuple[TableSchema, ForeignKeySchema]],
    *,
    rename: Mapping[str, str] | None = None,
) -> None:
    """Add foreign keys to existing tables (those left out of a cycle's CREATE TABLE).

    Keys already present (same columns to the same table) are skipped, so this can be rerun.
    SQLite cannot add constraints to a table; there the keys must be created inline.
    """
    rename = dict(rename or {})
    with transaction(bind) as conn:
        if conn.dialect.name == "sqlite" or not keys:
            return
        for table, fk in keys:
            name = rename.get(table.name, table.name)
            ref_table = rename.get(fk.ref_table, fk.ref_table)
            present = {
                (found.columns, found.ref_table) for found in reflect_foreign_keys(conn, name)
            }
            if (fk.columns, ref_table) in present:
                continue
            alone = TableSchema(table.name, table.columns, table.primary_key, (fk,), table.indexes)
            _, built = build_tables(
                conn.dialect, [alone], rename=rename, deferred=[(table.name, fk.name, fk.columns)]
            )
            for constraint in built[table.name].foreign_key_constraints:
                conn.execute(sa.schema.AddConstraint(constraint))


def _index_name(table: str, columns: Sequence[str]) -> str:
    """A readable name that fits every database's 63/64-character identifier limit."""
    name = f"ix_{table}_{'_'.join(columns)}"
    if len(name) <= 60:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[:51]}_{digest}"


def drop_tables(bind: Bind, names: Collection[str]) -> list[str]:
    """Drop those of `names` that exist, children first; returns the names dropped.

    Foreign keys inside a cycle are dropped first so the tables can go in any order.
    """
    with transaction(bind) as conn:
        inspector = sa.inspect(conn)
        existing = sorted(set(names) & set(inspector.get_table_names()))
        schemas = [
            TableSchema(name, (), foreign_keys=reflect_foreign_keys(conn, name))
            for name in existing
        ]
        ordered = sort_tables(schemas)
        if conn.dialect.name != "sqlite":
            for table, fk in deferred_foreign_keys(ordered):
                if fk.name is None:
                    continue
                drop = (
                    "DROP FOREIGN KEY"
                    if conn.dialect.name in ("mysql", "mariadb")
                    else "DROP CONSTRAINT"
                )
                conn.exec_driver_sql(
                    f"ALTER TABLE {quote_for_driver(conn.dialect, table.name)} {drop} "
                    f"{quote_for_driver(conn.dialect, fk.name)}"
                )
        for table in reversed(ordered):
            sa.Table(table.name, sa.MetaData()).drop(conn)
        return [table.name for table in reversed(ordered)]


def advance_sequences(bind: Bind, table: TableSchema, *, name: str | None = None) -> None:
    """Make identity/serial/AUTO_INCREMENT columns continue after the largest copied key.

    Without this, PostgreSQL's sequence still starts at 1 after a copy with explicit ids and
    the application's first insert fails on a duplicate key. SQLite needs nothing: its rowid
    and AUTOINCREMENT counters follow the largest key.
    """
    target = name or table.name
    columns = [c for c in table.columns if c.autoincrement and c.type in _INTEGER_TYPES]
    if not columns:
        return
    with transaction(bind) as conn:
        dialect = conn.dialect.name
        quoted = quote_identifier(conn.dialect, target)  # a value pg_get_serial_sequence parses
        sa_table = sa.table(target, *(sa.column(c.name) for c in columns))
        for column in columns:
            largest = conn.execute(sa.select(sa.func.max(sa_table.c[column.name]))).scalar()
            if dialect == "postgresql":
                sequence = conn.execute(
                    sa.select(sa.func.pg_get_serial_sequence(quoted, column.name))
                ).scalar()
                if sequence is None:
                    continue
                conn.execute(
                    sa.select(
                        sa.func.setval(
                            sa.cast(sequence, postgresql.REGCLASS), (largest or 0) + 1, False
                        )
                    )
                )
            elif dialect in ("mysql", "mariadb"):
                conn.exec_driver_sql(
                    f"ALTER TABLE {quote_for_driver(conn.dialect, target)} "
                    f"AUTO_INCREMENT = {int(largest or 0) + 1}"
                )
