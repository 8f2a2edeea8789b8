"""SQLite: the embedded default. Any value in any column, one writer, names kept as declared.

SQLite keeps a column's declared type name as written and stores values by affinity
(https://sqlite.org/datatype3.html), so types are mapped from the declared text, and created
with the names other tools (SQLAlchemy, pandas) read back.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import ReflectedColumn

from dsdb_plan import sqlfunctions
from dsdb_plan.checksum import TableFingerprint
from dsdb_plan.engines import registration_for, sqlite_pages
from dsdb_plan.engines.base import (
    NUMERIC_TYPES,
    Capabilities,
    Declared,
    Engine,
    portable_column,
    quote_for_driver,
)
from dsdb_plan.portable import (
    BOOLEAN_TEXTS,
    DOUBLE_EXACT_INTEGERS,
    ColumnSchema,
    IndexSchema,
    StoredClasses,
)

#: The least text and the least blob, written into the statement as SQLite's literals.
_EMPTY_TEXT: sa.ColumnElement[Any] = sa.literal_column("''")
_EMPTY_BLOB: sa.ColumnElement[Any] = sa.literal_column("x''")


def _inline(value: Any) -> sa.BindParameter[Any]:
    """A constant written into the statement: SQLite scans `x IN ('a', 'b')` faster than
    with bound parameters."""
    return sa.literal(value, literal_execute=True)


_DECIMAL_ARGS = re.compile(r"\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")
_NAMES = {
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


class SQLiteEngine(Engine):
    name = "SQLite"
    # The file's change counter; where it moved, only the pages that changed are read.
    change_check = None
    registration = registration_for("sqlite")
    capabilities = Capabilities(
        transactional_ddl=True,
        single_writer=True,
        deferrable_constraints=True,
        max_identifier_length=1_000_000,  # no limit but memory
        adds_constraints_later=False,
        typed_columns=False,
        stores_non_finite_floats=True,
        zone_aware_timestamps=False,
        index_names_per_schema=True,
        indexes_unbounded_text=True,
        enforces_foreign_keys=False,
        references_later_tables=True,
        file_change_token=True,
        keys_follow_renames=False,
        copies_by_attach=True,
        reads_columns=True,
        looks_up_by_membership=True,
        exact_decimal_digits=15,
    )
    # Booleans are stored as 0/1 and dates as text: only JSON and UUID text pass.
    passes_as_is: ClassVar[Mapping[str, tuple[str, ...]]] = {"json": ("str",), "uuid": ("str",)}

    def library_version(self) -> str:
        return sqlite3.sqlite_version

    def prepare_engine(self, engine: sa.Engine) -> None:
        sa.event.listen(engine, "connect", sqlfunctions.install)

    def column_type(self, column: ColumnSchema, *, keyed: bool = False) -> Any:
        kind = column.type
        if kind == "typeless":
            return Declared("")  # no type, no affinity: each value keeps its storage class
        if kind == "bigint" and column.autoincrement:
            return Declared("INTEGER")  # only INTEGER PRIMARY KEY is the autoincrementing rowid
        if kind == "decimal":
            if column.precision is None:
                return Declared("NUMERIC")
            return Declared(f"NUMERIC({column.precision}, {column.scale or 0})")
        if kind == "varchar":
            return Declared(f"VARCHAR({column.length})" if column.length else "TEXT")
        if kind == "datetime":
            return Declared("TIMESTAMP WITH TIME ZONE" if column.timezone else "DATETIME")
        if kind == "time":
            return Declared("TIME WITH TIME ZONE" if column.timezone else "TIME")
        return Declared(_NAMES[kind])

    def current_timestamp(self, column: ColumnSchema) -> str | None:
        # SQLite's CURRENT_TIMESTAMP is UTC text 'YYYY-MM-DD HH:MM:SS': a datetime only.
        return "CURRENT_TIMESTAMP" if column.type == "datetime" else None

    def schema_wide_names(self, conn: sa.Connection) -> set[str]:
        return set(conn.exec_driver_sql("SELECT name FROM sqlite_master").scalars())

    def stable_hash(self, text: str) -> str:
        return f"{sqlfunctions.STABLE_HASH}({text})"  # installed by `prepare_engine`

    def text_length(self, element: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.func.length(element)  # characters, for text

    def reflect_columns(
        self, conn: sa.Connection, inspector: sa.Inspector, table: str, primary_key: Sequence[str]
    ) -> list[ColumnSchema]:
        # SQLAlchemy's reflection loses declared names it does not know: read them.
        quoted = quote_for_driver(conn.dialect, table)
        rows = conn.exec_driver_sql(f"PRAGMA main.table_info({quoted})").fetchall()
        declared = {row[1]: row[2] or "" for row in rows}
        columns = []
        for info in self.reflected_columns(inspector, table):
            text = declared.get(info["name"], "")
            column = portable_column(info, sqlite_portable_type(text))
            # A single-column INTEGER primary key is SQLite's rowid alias: it autoincrements.
            rowid_alias = tuple(primary_key) == (column.name,) and text.strip().upper() == "INTEGER"
            columns.append(replace(column, autoincrement=rowid_alias))
        return columns

    def non_finite(self, value: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        # NaN is stored as NULL; the infinities as the doubles past the largest.
        return value.in_([sa.literal_column("9e999"), sa.literal_column("-9e999")])

    def misfit(
        self, value: sa.ColumnElement[Any], column: ColumnSchema, into: Engine
    ) -> sa.ColumnElement[bool] | None:
        # A column's affinity converts what it can on the way in (https://sqlite.org/
        # datatype3.html), so a value of another storage class is one it could not convert:
        # text that is no number in an INTEGER column, a number in a BLOB column. Classes
        # are told by comparison, as SQLite orders them (numbers < text < blobs, NULL
        # compares to nothing): twice as fast a scan as typeof().
        kind = column.type
        if column.autoincrement:  # the rowid: SQLite stores only integers there
            return None
        text_or_blob, blob = value >= _EMPTY_TEXT, value >= _EMPTY_BLOB
        number, text = value < _EMPTY_TEXT, sa.and_(text_or_blob, value < _EMPTY_BLOB)
        if kind in ("smallint", "integer", "bigint"):
            return sa.or_(text_or_blob, sa.func.typeof(value) == _inline("real"))
        if kind in ("float", "double"):
            if into.capabilities.stores_non_finite_floats:
                return text_or_blob
            return sa.or_(text_or_blob, self.non_finite(value))
        if kind in ("varchar", "text", "json", "uuid"):
            return blob
        if kind in ("date", "datetime", "time"):
            return sa.or_(number, blob)
        if kind == "binary":
            return value < _EMPTY_BLOB
        if kind == "boolean":
            spelled = sa.func.lower(sa.func.trim(value))
            return sa.or_(
                blob,
                sa.and_(number, value.not_in([_inline(0), _inline(1)])),
                sa.and_(text, spelled.not_in([_inline(t) for t in sorted(BOOLEAN_TEXTS)])),
            )
        if kind == "decimal":
            digits = sa.func.trim(value)
            unparsed = sa.or_(digits == _inline(""), digits.op("GLOB")(_inline("*[^0-9.eE+-]*")))
            return sa.or_(blob, sa.and_(text, unparsed))
        return None

    def stored_classes(
        self, conn: sa.Connection, table: str, columns: Sequence[str]
    ) -> dict[str, StoredClasses]:
        # One scan for every column: the distinct classes of each, an integer a double would
        # round marked `integer+` (twice as fast as a flag per class).
        quote = functools.partial(quote_for_driver, conn.dialect)
        found = []
        for name in map(quote, columns):
            limit = DOUBLE_EXACT_INTEGERS
            wide = f"typeof({name}) = 'integer' AND {name} NOT BETWEEN -{limit} AND {limit}"
            found.append(
                f"group_concat(DISTINCT typeof({name}) || CASE WHEN {wide} THEN '+' ELSE '' END)"
            )
        row = conn.exec_driver_sql(f"SELECT {', '.join(found)} FROM {quote(table)}").one()
        stored = {}
        for name, text in zip(columns, row, strict=True):
            classes = set((text or "").split(",")) - {"", "null"}
            stored[name] = StoredClasses(
                frozenset(kind.rstrip("+") for kind in classes),
                integers_fit_double="integer+" not in classes,
            )
        return stored

    def unique_constraints(
        self, conn: sa.Connection, inspector: sa.Inspector, table: str
    ) -> list[IndexSchema]:
        # SQLAlchemy finds a column's inline UNIQUE by parsing the CREATE TABLE text, and
        # misses it after a type with arguments (`code VARCHAR(20) UNIQUE`, issue 13); the
        # index SQLite made for each constraint lists them all.
        quote = functools.partial(quote_for_driver, conn.dialect)
        found = []
        indexes = conn.exec_driver_sql(f"PRAGMA main.index_list({quote(table)})")
        for _seq, name, unique, origin, *_ in indexes.fetchall():
            if not unique or origin != "u":
                continue
            info = conn.exec_driver_sql(f"PRAGMA main.index_info({quote(name)})")
            columns = tuple(row[2] for row in info.fetchall())
            if columns and None not in columns:
                automatic = name.startswith("sqlite_autoindex_")
                found.append(IndexSchema(None if automatic else name, columns, unique=True))
        return found

    def drop_temporary(self, conn: sa.Connection, table: sa.Table) -> None:
        quoted = conn.dialect.identifier_preparer.quote_identifier(table.name)
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{quoted}")

    # -- checksums (fingerprint.py) -----------------------------------------------------------

    def table_checksum(
        self, conn: sa.Connection, table: sa.TableClause, columns: Sequence[ReflectedColumn]
    ) -> TableFingerprint | None:
        # Rows are hashed in Python, but only those of pages that changed since last time.
        raw = conn.connection.dbapi_connection
        if not isinstance(raw, sqlite3.Connection):
            return None
        return sqlite_pages.table_checksum(raw, str(table.name), [c["name"] for c in columns])

    def table_token(
        self, conn: sa.Connection, table: sa.TableClause, columns: Sequence[ReflectedColumn]
    ) -> str | None:
        raw = conn.connection.dbapi_connection
        if not isinstance(raw, sqlite3.Connection):
            return None
        return sqlite_pages.table_token(raw, str(table.name), [c["name"] for c in columns])

    def begin_snapshot(self, conn: sa.Connection, *, read_only: bool = False) -> None:
        # pysqlite opens no transaction for SELECTs; without BEGIN each table would be read
        # at a different moment.
        conn.exec_driver_sql("BEGIN")

    def bulk_writer(
        self,
        conn: sa.Connection,
        table: str,
        columns: Sequence[ColumnSchema],
        key: Sequence[str],
        operation: str,
    ) -> Any:
        from dsdb_plan.migrate import load  # load's writers import the engines themselves

        names = [column.name for column in columns]
        return load.on_conflict_writer(conn, table, names, key, operation)

    def filter_value(self, value: Any, portable: str | None, timezone: bool) -> Any:
        return stored_value(super().filter_value(value, portable, timezone), portable)

    def begin_ddl(self, conn: sa.Connection) -> None:
        driver: Any = conn.connection.driver_connection
        if not driver.in_transaction:
            conn.exec_driver_sql("BEGIN")

    @contextmanager
    def _references_kept(self, conn: sa.Connection) -> Iterator[None]:
        # Keys in other tables name the target: keep them pointing at the new one.
        conn.exec_driver_sql("PRAGMA legacy_alter_table = ON")
        conn.commit()
        try:
            yield
        finally:
            conn.exec_driver_sql("PRAGMA legacy_alter_table = OFF")
            conn.commit()


def stored_value(value: Any, portable: str | None) -> Any:
    """How SQLite stores `value` in a column of type `portable` (values.py writes the same
    text when it copies)."""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        # Text keeps every digit; a column with numeric affinity converts it before
        # comparing. Without affinity, text never equals a number: compare as a double.
        return str(value) if portable in NUMERIC_TYPES else float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


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
        return ColumnSchema("", "typeless")
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


ENGINE = SQLiteEngine()
