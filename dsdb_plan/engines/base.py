"""What every engine declares (`Capabilities`) and the rules each one implements (`Engine`).

An engine is one database family as dsdb knows it: how portable types and defaults are
written in its DDL, how names come back from its reflection, how values are read so that
every engine sees the same portable value. Callers ask the engine instead of branching on a
dialect's name; the methods here are the shared behaviour an engine overrides where it
differs (alembic's `ddl/impl.py` is the model).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine.interfaces import ReflectedColumn
from sqlalchemy.types import UserDefinedType

from dsdb_plan.checksum import DigestSQL, TableFingerprint
from dsdb_plan.engines import Registration
from dsdb_plan.portable import (
    INTEGER_TYPES,
    ColumnSchema,
    ForeignKeySchema,
    IndexSchema,
    StoredClasses,
)

_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")
#: The portable types that hold numbers.
NUMERIC_TYPES = frozenset({"smallint", "integer", "bigint", "float", "double", "decimal"})
_TEXT_TYPES = frozenset({"varchar", "text"})


class Declared(UserDefinedType[Any]):
    """A column type written exactly as given (SQLite keeps declared names), its values
    passed to the driver untouched (no SQLAlchemy processing on the way)."""

    cache_ok = True

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def get_col_spec(self, **kw: Any) -> str:
        return self.spec


@dataclass(frozen=True)
class Capabilities:
    """Facts about an engine that callers decide on, as data."""

    #: CREATE and ALTER roll back with the transaction they ran in.
    transactional_ddl: bool
    #: One writer at a time for the whole database (a file lock): no parallel writes.
    single_writer: bool
    #: Foreign keys can be checked at commit rather than per statement.
    deferrable_constraints: bool
    #: The longest table, column or index name the engine keeps.
    max_identifier_length: int
    #: Foreign keys can be added to an existing table (ALTER TABLE ... ADD CONSTRAINT).
    adds_constraints_later: bool
    #: A column refuses values of other types (SQLite stores any value in any column).
    typed_columns: bool
    #: Float columns hold NaN and the infinities.
    stores_non_finite_floats: bool
    #: Timestamps can keep their time zone (elsewhere they are stored as UTC).
    zone_aware_timestamps: bool
    #: Index names are unique in the schema, not only in their table.
    index_names_per_schema: bool
    #: Unbounded text and binary can sit in a key or an index.
    indexes_unbounded_text: bool
    #: Each row carries the id of the transaction that last wrote it (PostgreSQL's xmin):
    #: a cheap token of whether a table changed.
    row_versions: bool = False
    #: Foreign keys are checked row by row, not at the end of the statement (InnoDB): one
    #: DELETE of a chain of rows in a table that references itself can fail midway.
    checks_keys_per_row: bool = False
    #: A foreign key can be added unchecked (NOT VALID) and checked later (VALIDATE).
    validates_keys_later: bool = False
    #: Foreign keys refuse rows that point nowhere on dsdb's connections (SQLite's are off).
    enforces_foreign_keys: bool = True
    #: A foreign key may name a table created after its own (SQLite checks keys only as
    #: rows are written), so a cycle of keys is created inline where keys cannot be added
    #: later.
    references_later_tables: bool = False
    #: Every committed write changes the database file's header or its write-ahead log's
    #: (SQLite's change counter), so their bytes and the files' times make a change token.
    #: DuckDB may keep a write in its WAL and checkpoint it later: no such token.
    file_change_token: bool = False
    #: The most digits a DECIMAL column holds, or None where dsdb meets no limit.
    max_decimal_digits: int | None = None
    #: The most significant digits a decimal keeps, integers within 64 bits aside, or None
    #: where it keeps every digit its column declares (SQLite's NUMERIC stores other number
    #: texts as doubles).
    exact_decimal_digits: int | None = None
    #: Decimal columns hold NaN and the infinities (PostgreSQL's numeric).
    stores_non_finite_decimals: bool = False
    #: Writes a query's rows as bulk text itself (`Engine.bulk_text`).
    writes_bulk_text: bool = False
    #: A foreign key follows its table through a rename (elsewhere keys name tables, as in
    #: SQLite, so a staging table's self-reference names the final table).
    keys_follow_renames: bool = True
    #: Constraint names are unique in the schema, not only in their table (MySQL): a copy of
    #: a table cannot reuse its foreign keys' names.
    constraint_names_per_schema: bool = False
    #: A foreign key added to a loaded table is checked in one query, much faster than
    #: checking each row as it loads (PostgreSQL; pg_restore does the same).
    keys_faster_after_load: bool = False
    #: Another file of the engine can be ATTACHed and copied from with one INSERT … SELECT
    #: in SQLite's SQL (the copier's path that skips Python).
    copies_by_attach: bool = False
    #: A transaction's snapshot can be shared with another session (PostgreSQL's
    #: pg_export_snapshot), so a second connection reads exactly what the first one reads.
    exports_snapshots: bool = False
    #: Its ADBC driver reads a table as Arrow columns (`migrate/arrow_copy.py`).
    reads_columns: bool = False
    #: Its ADBC driver loads Arrow batches with binary COPY (`migrate/arrow_copy.py`,
    #: through `Engine.arrow_database`).
    loads_columns: bool = False
    #: A row's reference is looked up in its parent as `IN (subquery)`, not a correlated
    #: EXISTS (`migrate/integrity.py`): SQLite runs EXISTS as a scan of an unindexed parent
    #: per row where it indexes the subquery once for IN; MariaDB materializes it.
    #: PostgreSQL keeps EXISTS: its IN runs as a hashed subplan only within work_mem.
    looks_up_by_membership: bool = False


class Engine:
    """The shared rules; each engine module subclasses it and overrides what differs."""

    #: The engine's name, as the README and messages use it.
    name: ClassVar[str]
    #: How a plan learns whether a table changed, where that reads every row (the plan says
    #: so); None where the engine has a cheap, sound sign of change.
    change_check: ClassVar[str | None] = "every row of each table read and hashed"
    #: How users name and reach it: its drivers and dialects, whether it is a file
    #: (embedded: opened in-process, its driver's own cursor steps through rows as they are
    #: fetched), its default port.
    registration: ClassVar[Registration]
    capabilities: ClassVar[Capabilities]
    #: The database to connect to on the server while creating or dropping another one.
    admin_database: ClassVar[str | None] = None
    #: SQL telling whether database `:name` exists on the server.
    database_exists_sql: ClassVar[str] = (
        "SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"
    )
    #: How the server says database `{name}` does not exist, when a connect fails for it.
    missing_database_message: ClassVar[str | None] = None
    #: What follows DROP DATABASE name (PostgreSQL's WITH (FORCE)).
    drop_database_options: ClassVar[str] = ""
    #: The isolation level under which one transaction sees every table at one instant.
    snapshot_isolation: ClassVar[str | None] = None
    #: Per portable type, the Python classes (by name) its driver stores as they are, beside
    #: the ints, floats, text and bytes every driver takes (`migrate/convert.py`).
    passes_as_is: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    #: The driver's keyword for a connect timeout in seconds, where it takes one.
    connect_timeout_argument: ClassVar[str | None] = None

    def prepare_engine(self, engine: sa.Engine) -> None:
        """Set up a SQLAlchemy engine dsdb just created on this database (SQLite adds the
        SQL functions it lacks)."""

    def library_version(self) -> str | None:
        """The version of the embedded engine's library, which a file not yet created will
        be written by; None for a server."""
        return None

    def server_name(self, dialect: sa.Dialect) -> str:
        """The product `dialect` reached, as `dsdb connections` names it before its version."""
        return self.name

    # -- DDL --------------------------------------------------------------------------------

    def column_type(self, column: ColumnSchema, *, keyed: bool = False) -> Any:
        """The SQLAlchemy type to create `column` with; `keyed` columns sit in a key or an
        index."""
        raise NotImplementedError

    def column_default(self, column: ColumnSchema) -> str | None:
        """The column's portable default as this engine's SQL, or None when there is none or
        it cannot be written for this column here (see `default_left_out`)."""
        default = column.default
        if default is None:
            return None
        if column.type == "boolean":
            return self.boolean_literal(default == "true") if default in _BOOLEANS else None
        if default == "CURRENT_TIMESTAMP":
            return self.current_timestamp(column)
        if column.type in NUMERIC_TYPES:
            bare = _unquoted(default)
            return bare if _NUMBER.fullmatch(bare) else None
        if column.type in _TEXT_TYPES and _NUMBER.fullmatch(default):
            return f"'{default}'"  # a number given to text is its text
        return default if default.startswith("'") else None

    def cannot_hold(self, column: ColumnSchema) -> str | None:
        """Why a column of this portable type cannot be created here, or None when it can."""
        limit = self.capabilities.max_decimal_digits
        if column.type == "decimal" and limit is not None and (column.precision or 0) > limit:
            return (
                f"column {column.name!r} is decimal({column.precision},{column.scale or 0}): "
                f"{self.name}'s DECIMAL holds at most {limit} digits"
            )
        return None

    def default_left_out(self, column: ColumnSchema) -> str | None:
        """Why the column's default is not created here, or None when it is (or has none)."""
        if column.default is None or self.column_default(column) is not None:
            return None
        return (
            f"default {column.default} of column {column.name!r} left out: "
            f"{self.name} cannot give it to a {column.type} column"
        )

    def boolean_literal(self, value: bool) -> str:
        return "1" if value else "0"

    def current_timestamp(self, column: ColumnSchema) -> str | None:
        """The engine's current time as the default of `column`, or None where it has none."""
        return "CURRENT_TIMESTAMP" if column.type in ("datetime", "date") else None

    def table_options(self, dialect: sa.Dialect) -> dict[str, Any]:
        """Keyword arguments for every `sa.Table` dsdb creates here."""
        return {}

    def exact_collation(self, dialect: sa.Dialect) -> str | None:
        """The collation under which text compares byte for byte, trailing spaces included,
        when the engine has to be told (tables dsdb creates use it)."""
        return None

    def inexact_collations(
        self, conn: sa.Connection, table: str, columns: Collection[str]
    ) -> dict[str, str]:
        """The `columns` of `table` whose collation holds distinct text as equal (by case,
        accent or trailing space), with that collation."""
        return {}

    def autoincrement_needs_key(self) -> bool:
        """Whether an autoincrementing column must be the primary key (MySQL's rule)."""
        return False

    def column_identity(self, column: ColumnSchema) -> list[Any]:
        """Extra column arguments that make `column` autoincrement (PostgreSQL's identity)."""
        return []

    #: The ALTER TABLE clause that drops a named foreign key.
    drop_foreign_key: ClassVar[str] = "DROP CONSTRAINT"

    def schema_wide_names(self, conn: sa.Connection) -> set[str]:
        """Names an index may not take because something else in the schema has them."""
        return set()

    def continue_after(self, conn: sa.Connection, table: str, column: str, largest: int) -> None:
        """Make the autoincrementing `column` continue after `largest` (SQLite's rowid
        follows the largest key by itself)."""

    # -- reflection -------------------------------------------------------------------------

    def reflected_name(self, name: str) -> str:
        """A table, column or index name as SQLAlchemy's reflection gives it, as written in the
        database."""
        return name

    def reflected_columns(self, inspector: sa.Inspector, table: str) -> list[ReflectedColumn]:
        """`inspector.get_columns(table)` with every column name as written in the database."""
        return inspector.get_columns(table)

    def reflect_columns(
        self, conn: sa.Connection, inspector: sa.Inspector, table: str, primary_key: Sequence[str]
    ) -> list[ColumnSchema]:
        """The table's columns with portable types and defaults, in table order."""
        return [
            portable_column(info, portable_type(info["type"]))
            for info in self.reflected_columns(inspector, table)
        ]

    def stored_classes(
        self, conn: sa.Connection, table: str, columns: Sequence[str]
    ) -> dict[str, StoredClasses]:
        """What each of `columns`, typeless columns of `table`, holds (`typeless.py`): only
        an engine without typed columns has them."""
        raise NotImplementedError(f"{self.name} has no typeless columns")

    def misfit(
        self, value: sa.ColumnElement[Any], column: ColumnSchema, into: Engine
    ) -> sa.ColumnElement[bool] | None:
        """A condition true where a stored `value` of `column` is one that dsdb cannot copy
        into engine `into` as the column's portable type (None: there is none)."""
        return None

    def non_finite(self, value: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        """A condition true where a float `value` is NaN or infinite."""
        return sa.or_(sa.func.isnan(value), sa.func.isinf(value))

    def reflect_foreign_keys(self, conn: sa.Connection, table: str) -> tuple[ForeignKeySchema, ...]:
        """The foreign keys of `table` that point into the same schema."""
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

    def reflect_indexes(
        self, conn: sa.Connection, inspector: sa.Inspector, table: str
    ) -> tuple[IndexSchema, ...]:
        """Secondary indexes and unique constraints (as unique indexes) on plain columns."""
        name = self.reflected_name
        indexes: list[IndexSchema] = []
        for index in inspector.get_indexes(table):
            columns = index.get("column_names") or []
            if not columns or any(column is None for column in columns):
                continue  # expression indexes are not portable
            index_name = index.get("name")
            indexes.append(
                IndexSchema(
                    name(index_name) if index_name else None,
                    tuple(name(column) for column in columns if column is not None),
                    bool(index.get("unique")),
                )
            )
        covered = {(index.columns, index.unique) for index in indexes}
        for constraint in self.unique_constraints(conn, inspector, table):
            if (constraint.columns, True) not in covered:
                indexes.append(constraint)
                covered.add((constraint.columns, True))
        return tuple(indexes)

    def unique_constraints(
        self, conn: sa.Connection, inspector: sa.Inspector, table: str
    ) -> list[IndexSchema]:
        """The table's unique constraints, as unique indexes."""
        return [
            IndexSchema(
                constraint.get("name"),
                tuple(self.reflected_name(column) for column in constraint["column_names"]),
                unique=True,
            )
            for constraint in inspector.get_unique_constraints(table)
        ]

    # -- reading ----------------------------------------------------------------------------

    def fixed_formatting(self, conn: sa.Connection) -> AbstractContextManager[None]:
        """Fix, for the block, the settings the text form of a value depends on (which a role
        or database default may have changed); leaves the transaction open."""
        return nullcontext()

    def read_expression(
        self, element: sa.ColumnElement[Any], column: ColumnSchema
    ) -> sa.ColumnElement[Any]:
        """What to select for `column` so the driver returns its portable value."""
        return element

    def stable_hash(self, text: str) -> str:
        """SQL for the first 32 bits of the MD5 of the text SQL `text`, as an unsigned integer:
        the same number on every engine (`migrate/sample.py`)."""
        raise NotImplementedError(f"{self.name} has no stable hash")

    def text_length(self, element: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """The length in characters of a text value."""
        return sa.func.char_length(element)

    def significant_digits(self, element: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """How many significant digits a decimal value has (its plain text, without sign,
        point, and leading or trailing zeros)."""
        digits = sa.func.replace(sa.func.replace(sa.cast(element, sa.Text), "-", ""), ".", "")
        return self.text_length(sa.func.ltrim(sa.func.rtrim(digits, "0"), "0"))

    # -- temporary tables -------------------------------------------------------------------

    def drop_temporary(self, conn: sa.Connection, table: sa.Table) -> None:
        """Drop temporary `table` if it is there (a failed earlier copy may have left it on a
        pooled connection), never a permanent table of the same name."""
        table.drop(conn, checkfirst=True)

    def analyze_temporary(self, conn: sa.Connection, table: sa.Table) -> None:
        """Give the planner statistics of a temporary table just filled, where it would
        otherwise plan a query on it blind."""

    def copy_session(self, conn: sa.Connection) -> AbstractContextManager[None]:
        """Session settings a copy into this engine needs, restored before the connection
        goes back to the pool."""
        return nullcontext()

    # -- checksums (fingerprint.py, migrate/sql_digest.py) ------------------------------------

    #: `table_checksum` hashes no row in Python, so a reader of every row gains nothing by
    #: hashing the rows it reads (`FingerprintWhileReading`).
    checksums_tables: ClassVar[bool] = False

    def table_checksum(
        self, conn: sa.Connection, table: sa.TableClause, columns: Sequence[ReflectedColumn]
    ) -> TableFingerprint | None:
        """A whole table's fingerprint by the cheapest exact method the database has, or None
        where its rows are hashed in Python. `columns` are the table's, reflected."""
        return None

    def table_token(
        self, conn: sa.Connection, table: sa.TableClause, columns: Sequence[ReflectedColumn]
    ) -> str | None:
        """A value every committed write to the table moves, cheaper to take than its content
        (a fingerprint's `token`), or None where the database offers none."""
        return None

    def token_matches(
        self,
        conn: sa.Connection,
        table: sa.TableClause,
        columns: Sequence[ReflectedColumn],
        token: str | None,
    ) -> bool:
        """Whether `token`, of an earlier fingerprint, is still the table's: proof, cheaper
        than reading its content, that the table did not change since."""
        return token is not None and self.table_token(conn, table, columns) == token

    def query_checksum(self, conn: sa.Connection, rows: sa.FromClause) -> TableFingerprint | None:
        """The fingerprint of any rows by the database's own method for them, or None where
        rows are hashed in Python."""
        return None

    def digest_sql(self, conn: sa.Connection) -> DigestSQL | None:
        """How this server writes the portable digest itself, or None when it cannot write
        every form exactly (the rows are then digested in Python)."""
        return None

    # -- bulk text (`migrate/text_copy.py`) -------------------------------------------------

    def bulk_text_expression(
        self, element: sa.ColumnElement[Any], column: ColumnSchema, actual: Any
    ) -> sa.ColumnElement[Any] | None:
        """What to select for `column` (of reflected type `actual`) so that this engine's
        bulk text export writes its portable value as bulk text; None where it cannot."""
        return None

    def bulk_text(self, conn: sa.Connection, query: sa.Select[Any]) -> bytes:
        """The rows of `query` as bulk text, read in `conn`'s transaction (with the settings
        of `fixed_formatting` in force)."""
        raise NotImplementedError

    def bulk_text_loader(self, conn: sa.Connection) -> BulkTextLoader | None:
        """How to load bulk text into tables through `conn`, or None where its driver or
        server cannot (the reason is `bulk_text_refusal`)."""
        return None

    def bulk_text_refusal(self, conn: sa.Connection) -> str | None:
        """Why a server that could load bulk text refuses it (a setting), else None."""
        return None

    # -- whole columns (`migrate/arrow_copy.py`) ---------------------------------------------

    def arrow_database(self, conn: sa.Connection) -> Any:
        """The engine's ADBC driver opened on the database `conn` is on (an
        `adbc_driver_manager.AdbcDatabase`), for loading Arrow batches (`loads_columns`);
        the caller closes it."""
        raise NotImplementedError

    # -- snapshots --------------------------------------------------------------------------

    def begin_snapshot(self, conn: sa.Connection, *, read_only: bool = False) -> None:
        """Begin on `conn` a transaction that sees every table as of one instant: engines
        differ in the isolation level and statement that give one."""
        if self.snapshot_isolation is not None:
            conn.execution_options(isolation_level=self.snapshot_isolation)

    def export_snapshot(self, conn: sa.Connection) -> str | None:
        """A token another session can read `conn`'s snapshot with, or None where the engine
        (or this server) cannot share one (`exports_snapshots`)."""
        return None

    def join_snapshot(self, conn: sa.Connection, token: str) -> None:
        """Begin on `conn` a transaction that sees the exported snapshot `token`, the way the
        engine that exported it takes one."""
        raise NotImplementedError(f"{self.name} cannot share a snapshot")

    # -- loading ----------------------------------------------------------------------------

    def bulk_writer(
        self,
        conn: sa.Connection,
        table: str,
        columns: Sequence[ColumnSchema],
        key: Sequence[str],
        operation: str,
    ) -> Any:
        """The fastest `migrate.load.BatchWriter` for `operation` on `table`: each engine has
        its own bulk path (COPY, multi-row INSERT, prepared executemany)."""
        from dsdb_plan.migrate import load  # load's writers import the engines themselves

        return load.generic_writer(conn, table, columns, key, operation)

    def add_foreign_key(self, conn: sa.Connection, constraint: sa.ForeignKeyConstraint) -> None:
        """Add `constraint` to its existing table; refused if a row points nowhere."""
        conn.execute(sa.schema.AddConstraint(constraint))

    def keys_unchecked(self, conn: sa.Connection) -> AbstractContextManager[None]:
        """Foreign keys unchecked on `conn` for the block, where the engine checks them row by
        row (`checks_keys_per_row`) and whole sets of rows are written; elsewhere a no-op."""
        return nullcontext()

    def filter_value(self, value: Any, portable: str | None, timezone: bool) -> Any:
        """A filter's bound value as this engine stores it in a `portable` column, so it
        compares with what a copy wrote (SQLite keeps text, MySQL no zones, ...)."""
        if isinstance(value, dt.datetime):
            return fit_zone(value, timezone)
        if isinstance(value, dt.time) and value.tzinfo is not None and not timezone:
            return value.replace(tzinfo=None)  # as MySQL and a plain TIME column keep it
        return value

    # -- replacing a table ------------------------------------------------------------------

    def begin_ddl(self, conn: sa.Connection) -> None:
        """Make sure DDL that follows runs in `conn`'s transaction (Python's sqlite3 module
        begins one only before DML)."""

    def swap_table(self, conn: sa.Connection, swap: TableSwap) -> None:
        """Put the loaded staging table in the target's place in one atomic step. Engines
        differ in whether DDL is transactional and how other tables' keys follow a rename."""
        q = conn.dialect.identifier_preparer.quote_identifier
        old = swap.old
        conn.commit()
        with self._references_kept(conn), conn.begin():
            self.begin_ddl(conn)
            detached = self._detach_incoming_keys(conn, swap.target) if swap.exists else []
            if swap.exists:
                conn.exec_driver_sql(f"ALTER TABLE {q(swap.target)} RENAME TO {q(old)}")
            conn.exec_driver_sql(f"ALTER TABLE {q(swap.staging)} RENAME TO {q(swap.target)}")
            if swap.exists:
                conn.exec_driver_sql(f"DROP TABLE {q(old)}")
            self._renamed(conn, swap.staging, swap.target)
            # Index names may be unique per schema, so they wait for the old table to go.
            swap.finish(swap.target)
            self._reattach_keys(conn, detached, swap.cleared_later)

    def _references_kept(self, conn: sa.Connection) -> AbstractContextManager[None]:
        """Keep other tables' keys naming the target through the renames of a swap."""
        return nullcontext()

    def _detach_incoming_keys(self, conn: sa.Connection, target: str) -> list[Any]:
        """Drop, before a swap, the keys of other tables that would follow the old table."""
        return []

    def _reattach_keys(
        self, conn: sa.Connection, detached: list[Any], cleared_later: Collection[str]
    ) -> None:
        """Put back on the new table the keys `_detach_incoming_keys` dropped."""

    def _renamed(self, conn: sa.Connection, staging: str, target: str) -> None:
        """Tidy up after the staging table took the target's name (index names)."""

    def incoming_foreign_keys(
        self, conn: sa.Connection, table: str
    ) -> list[tuple[str, ForeignKeySchema]]:
        """The foreign keys of other tables that point at `table`, with their tables: by
        reflecting each table here, where an engine may know a single query."""
        inspector = sa.inspect(conn)
        return [
            (other, fk)
            for other in inspector.get_table_names()
            if other != table
            for fk in self.reflect_foreign_keys(conn, other)
            if fk.ref_table == table
        ]

    def validate_keys(self, conn: sa.Connection, table: str, parents: Collection[str]) -> None:
        """Check the keys of `table` to `parents` a swap put back unchecked
        (`validates_keys_later`); engines that never leave keys unchecked do nothing."""

    # -- planning ---------------------------------------------------------------------------

    def explain_prefix(self, dialect: sa.Dialect) -> str | None:
        """The EXPLAIN that estimates a query's rows, or None where the engine has no
        estimator worth asking (its rows are counted instead)."""
        return None

    def explained_rows(self, plan: Sequence[sa.RowMapping]) -> float:
        """The rows the planner expects, from what `explain_prefix` returned."""
        raise NotImplementedError(f"{self.name} has no row estimates")

    def recursion_cap(self, dialect: sa.Dialect) -> str | None:
        """SQL for the most steps a recursive query may take, where the engine stops or
        fails past a limit of its own (MySQL/MariaDB), else None."""
        return None


@dataclass(frozen=True)
class TableSwap:
    """A staging table loaded in full, to take the target's place (`Engine.swap_table`)."""

    staging: str
    target: str
    #: Whether the target exists (else the staging table is only renamed).
    exists: bool
    #: Creates the indexes and advances the sequences of the table of that name, as the
    #: target's schema has them.
    finish: Callable[[str], None]
    #: Tables whose rows pointing at removed ones a later step deletes: their keys to the
    #: target go back unchecked where the engine can check them later.
    cleared_later: Collection[str] = ()

    @property
    def old(self) -> str:
        """The name the old target has between the renames and its drop."""
        return self.target + "__dsdb_old"


def fit_zone(value: dt.datetime, zoned: bool) -> dt.datetime:
    """Naive means UTC: a zoned column gets an aware value, other columns naive UTC."""
    if zoned:
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    if value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


_BOOLEANS = frozenset({"true", "false"})


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


def portable_column(info: Mapping[str, Any], shape: ColumnSchema) -> ColumnSchema:
    """A reflected column (`inspector.get_columns`) with the portable type `shape`."""
    autoincrement = bool(info.get("autoincrement") is True or info.get("identity"))
    return ColumnSchema(
        name=info["name"],
        type=shape.type,
        nullable=bool(info.get("nullable", True)),
        default=portable_default(info.get("default"), shape.type),
        autoincrement=autoincrement and shape.type in INTEGER_TYPES,
        length=shape.length,
        precision=shape.precision,
        scale=shape.scale,
        timezone=shape.timezone,
    )


def portable_type(type_: Any) -> ColumnSchema:
    """Map a reflected SQLAlchemy type (PostgreSQL, MySQL/MariaDB, others) to a portable one.

    PostgreSQL arrays become JSON (their values are read as JSON arrays, `read_expression`);
    enums become text (their labels).
    """
    if isinstance(type_, mysql.TINYINT) and getattr(type_, "display_width", None) == 1:
        return ColumnSchema("", "boolean")  # MySQL's BOOL is TINYINT(1)
    if isinstance(type_, sa.ARRAY):
        return ColumnSchema("", "json")
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


_QUOTED = re.compile(r"'(?:[^']|'')*'")
_TRUE_DEFAULTS = frozenset({"1", "true", "'1'", "'t'", "'true'", "b'1'"})
_FALSE_DEFAULTS = frozenset({"0", "false", "'0'", "'f'", "'false'", "b'0'"})


def portable_default(raw: Any, portable: str) -> str | None:
    """A reflected default in its portable form (`ColumnSchema.default`), or None for none and
    for what only its own engine understands (sequences, functions), which is not carried."""
    if raw is None:
        return None
    text = str(raw).strip()
    text = re.sub(r"::[\w \"]+(\[\])?$", "", text)  # PostgreSQL casts: 'x'::text
    while text.startswith("(") and text.endswith(")"):
        text = text[1:-1].strip()
    if portable == "boolean":
        lowered = text.lower()
        if lowered in _TRUE_DEFAULTS:
            return "true"
        return "false" if lowered in _FALSE_DEFAULTS else None
    if _NUMBER.fullmatch(text) or _QUOTED.fullmatch(text):
        return text
    lowered = text.lower()
    if lowered in ("current_timestamp", "current_timestamp()", "now()") or re.fullmatch(
        r"current_timestamp\(\d\)", lowered
    ):
        return "CURRENT_TIMESTAMP"
    return None


def _unquoted(text: str) -> str:
    if len(text) >= 2 and text.startswith("'") and text.endswith("'"):
        return text[1:-1]
    return text


class BulkTextLoader(Protocol):
    """Loads a file of bulk text into a table's columns, in the connection's transaction."""

    def __call__(self, table: str, columns: Sequence[ColumnSchema], path: str) -> int:
        """Load the rows of the file at `path`; returns how many rows went in whole (every
        value as written, no row skipped), or -1 when the database changed or skipped any."""
        ...
