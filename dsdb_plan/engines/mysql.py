"""MySQL and MariaDB: one engine, two variants (SQLAlchemy's `mysql` and `mariadb` dialects).

Text in tables dsdb creates compares exactly, as in SQLite and PostgreSQL: a binary NO PAD
collation, so keys that differ only by case, accent or trailing space stay distinct (the
servers' defaults, `utf8mb4_general_ci` and even `utf8mb4_bin`, which pads, merge them).
Unbounded text cannot be indexed, no timestamp keeps its zone, no float holds NaN.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine.interfaces import ReflectedColumn

from dsdb_plan.checksum import ChecksumMethod, DigestSQL, TableFingerprint, count_and_sum
from dsdb_plan.engines import registration_for
from dsdb_plan.engines.base import (
    BulkTextLoader,
    Capabilities,
    Engine,
    TableSwap,
    fit_zone,
    quote_for_driver,
)
from dsdb_plan.errors import DsdbError
from dsdb_plan.portable import ColumnSchema, ForeignKeySchema

#: Length given to unbounded text that MariaDB must index: 255 characters of utf8mb4 are
#: 1,020 bytes, so three such columns still fit InnoDB's 3,072-byte index key limit.
KEY_TEXT_LENGTH = 255
#: The client capability flag LOAD DATA LOCAL needs (PyMySQL's CLIENT.LOCAL_FILES; named here
#: so that importing the engines does not import the driver).
_LOCAL_FILES = 1 << 7
#: Seconds to wait for a MySQL server's greeting when connecting.
GREETING_SECONDS = 10
#: PyMySQL's error number for a connection lost or timed out (CR_SERVER_LOST).
_LOST_CONNECTION = 2013
_JSON_CHECK = re.compile(r"\s*json_valid\(`((?:[^`]|``)+)`\)\s*")


class MySQLEngine(Engine):
    name = "MySQL/MariaDB"
    change_check = "every row of each table read (CHECKSUM TABLE)"
    registration = registration_for("mysql")
    capabilities = Capabilities(
        transactional_ddl=False,
        single_writer=False,
        deferrable_constraints=False,
        max_identifier_length=64,
        adds_constraints_later=True,
        typed_columns=True,
        stores_non_finite_floats=False,
        zone_aware_timestamps=False,
        index_names_per_schema=False,
        indexes_unbounded_text=False,
        checks_keys_per_row=True,
        max_decimal_digits=65,
        constraint_names_per_schema=True,
        keys_faster_after_load=True,
        looks_up_by_membership=True,
    )
    snapshot_isolation = "REPEATABLE READ"
    passes_as_is: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "boolean": ("bool",),
        "date": ("date",),
        "json": ("str",),
        "uuid": ("str",),
    }
    connect_timeout_argument = "connect_timeout"
    missing_database_message = "Unknown database '{name}'"

    def prepare_engine(self, engine: sa.Engine) -> None:
        if engine.dialect.driver == "pymysql":
            sa.event.listen(engine, "do_connect", _connect)

    def server_name(self, dialect: sa.Dialect) -> str:
        # A mysql:// URL can reach MariaDB.
        return "MariaDB" if getattr(dialect, "is_mariadb", False) else "MySQL"

    def column_type(self, column: ColumnSchema, *, keyed: bool = False) -> Any:
        kind = column.type
        if kind in _SIMPLE:
            return _SIMPLE[kind]()
        if kind == "decimal":
            if column.precision is None:
                return sa.Numeric(65, 30)  # a bare DECIMAL would be DECIMAL(10,0)
            return sa.Numeric(column.precision, column.scale)
        if kind in ("text", "varchar"):
            length = column.length if kind == "varchar" else None
            if length is None and keyed:
                length = KEY_TEXT_LENGTH
            return sa.String(length) if length else mysql.LONGTEXT()
        if kind == "binary":
            return mysql.VARBINARY(KEY_TEXT_LENGTH) if keyed else mysql.LONGBLOB()
        raise KeyError(kind)

    def current_timestamp(self, column: ColumnSchema) -> str | None:
        # Must match DATETIME(6); a DATE column takes no CURRENT_TIMESTAMP default.
        return "CURRENT_TIMESTAMP(6)" if column.type == "datetime" else None

    def table_options(self, dialect: sa.Dialect) -> dict[str, Any]:
        # SQLAlchemy reads table options under the dialect's own name: `mysql_collate` is
        # ignored by the `mariadb` dialect (issue 13: `driver: mariadb` lost rows).
        prefix = dialect.name
        return {
            f"{prefix}_engine": "InnoDB",
            f"{prefix}_charset": "utf8mb4",
            f"{prefix}_collate": self.exact_collation(dialect),
        }

    def exact_collation(self, dialect: sa.Dialect) -> str:
        if getattr(dialect, "is_mariadb", False):
            return "utf8mb4_nopad_bin"  # MariaDB 10.2+
        if (dialect.server_version_info or (0,)) >= (8,):
            return "utf8mb4_0900_bin"
        return "utf8mb4_bin"  # MySQL 5.7 has no NO PAD collation: trailing spaces still pad

    def autoincrement_needs_key(self) -> bool:
        return True

    drop_foreign_key = "DROP FOREIGN KEY"

    def continue_after(self, conn: sa.Connection, table: str, column: str, largest: int) -> None:
        quoted = quote_for_driver(conn.dialect, table)
        conn.exec_driver_sql(f"ALTER TABLE {quoted} AUTO_INCREMENT = {largest + 1}")

    def fixed_formatting(self, conn: sa.Connection) -> AbstractContextManager[None]:
        return utc_time_zone(conn)

    def stable_hash(self, text: str) -> str:
        return f"CAST(CONV(SUBSTRING(MD5({text}), 1, 8), 16, 10) AS UNSIGNED)"

    def text_length(self, element: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.func.char_length(element)  # LENGTH counts bytes here

    def significant_digits(self, element: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        # LTRIM and RTRIM take no characters to trim here.
        digits = sa.func.replace(sa.func.replace(sa.cast(element, sa.Text), "-", ""), ".", "")
        return self.text_length(sa.func.regexp_replace(digits, "^0+|0+$", ""))

    def reflected_name(self, name: str) -> str:
        # SQLAlchemy parses SHOW CREATE TABLE without undoubling backticks in names.
        return name.replace("``", "`")

    def reflected_columns(self, inspector: sa.Inspector, table: str) -> list[ReflectedColumn]:
        # Copies: the inspector caches what it returns.
        return [
            {**column, "name": self.reflected_name(column["name"])}
            for column in inspector.get_columns(table)
        ]

    def reflect_columns(
        self, conn: sa.Connection, inspector: sa.Inspector, table: str, primary_key: Sequence[str]
    ) -> list[ColumnSchema]:
        # MariaDB's JSON is LONGTEXT plus a json_valid() check: recognise it by the check,
        # read from information_schema (SQLAlchemy's parser misses the checks of a table
        # whose name holds a backtick). MySQL's JSON is a type of its own.
        json_columns = set()
        if getattr(conn.dialect, "is_mariadb", False):
            checks = conn.execute(
                sa.text(
                    "SELECT check_clause FROM information_schema.check_constraints "
                    "WHERE constraint_schema = DATABASE() AND table_name = :table"
                ),
                {"table": table},
            ).scalars()
            for clause in checks:
                match = _JSON_CHECK.fullmatch(clause or "")
                if match:
                    json_columns.add(self.reflected_name(match.group(1)))
        types = {info["name"]: info["type"] for info in self.reflected_columns(inspector, table)}
        return [
            replace(column, type="json", length=None)
            if column.name in json_columns
            else _own_type(column, types[column.name])
            for column in super().reflect_columns(conn, inspector, table, primary_key)
        ]

    def read_expression(
        self, element: sa.ColumnElement[Any], column: ColumnSchema
    ) -> sa.ColumnElement[Any]:
        if column.type in ("boolean", "smallint", "integer", "bigint"):
            # A BIT column's value as its number, where the driver gives its bytes.
            return (element + 0).label(column.name)
        return element

    def reflect_foreign_keys(self, conn: sa.Connection, table: str) -> tuple[ForeignKeySchema, ...]:
        # From information_schema: SQLAlchemy's parser skips keys whose names hold a backtick.
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
                name, tuple(row[1] for row in parts), parts[0][2], tuple(row[3] for row in parts)
            )
            for name, parts in grouped.items()
        )

    def inexact_collations(
        self, conn: sa.Connection, table: str, columns: Collection[str]
    ) -> dict[str, str]:
        rows = conn.execute(
            sa.text(
                "SELECT column_name, collation_name FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND table_name = :table "
                "AND collation_name IS NOT NULL"
            ),
            {"table": table},
        ).all()
        return {
            name: collation
            for name, collation in rows
            if name in columns and not is_exact_collation(collation)
        }

    def drop_temporary(self, conn: sa.Connection, table: sa.Table) -> None:
        quoted = conn.dialect.identifier_preparer.quote_identifier(table.name)
        conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS {quoted}")

    def bulk_text_loader(self, conn: sa.Connection) -> BulkTextLoader | None:
        driver: Any = conn.connection.driver_connection
        if conn.dialect.driver != "pymysql" or not driver.client_flag & _LOCAL_FILES:
            return None
        if self.bulk_text_refusal(conn) is not None:
            return None

        def load(table: str, columns: Sequence[ColumnSchema], path: str) -> int:
            return _load_data(conn, driver, table, columns, path)

        return load

    def bulk_text_refusal(self, conn: sa.Connection) -> str | None:
        if conn.exec_driver_sql("SELECT @@GLOBAL.local_infile").scalar():
            return None
        return "the server's local_infile is off, so LOAD DATA LOCAL INFILE is refused"

    def begin_snapshot(self, conn: sa.Connection, *, read_only: bool = False) -> None:
        conn.execution_options(isolation_level=self.snapshot_isolation)
        # The snapshot starts now, not at the first read of each table.
        access = ", READ ONLY" if read_only else ""
        conn.exec_driver_sql(f"START TRANSACTION WITH CONSISTENT SNAPSHOT{access}")

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
        return load.mysql_writer(conn, table, names, key, operation)

    def add_foreign_key(self, conn: sa.Connection, constraint: sa.ForeignKeyConstraint) -> None:
        # InnoDB adds a checked key by copying the table and looking up each row's parent
        # with a lock (200,000 rows: 18 s); unchecked, in place, after one query finds no row
        # pointing nowhere: 2 s. A row with a NULL in the key points nowhere and passes.
        table = constraint.table
        pairs = [(element.parent, element.column) for element in constraint.elements]
        parent = pairs[0][1].table
        referenced = parent.alias("dsdb_referenced")  # the table itself, for a self-reference
        matched = sa.and_(*(referenced.c[theirs.name] == ours for ours, theirs in pairs))
        dangling = (
            sa.select(sa.func.count())
            .select_from(table)
            .where(
                *(ours.is_not(None) for ours, _ in pairs),
                ~sa.exists().where(matched).select_from(referenced).correlate(table),
            )
        )
        found = conn.execute(dangling).scalar_one()
        if found:
            raise DsdbError(
                f"table {table.name!r}: {found:,} rows point at no row of {parent.name!r} "
                f"({', '.join(ours.name for ours, _ in pairs)}), so the foreign key cannot "
                "be added"
            )
        with self.keys_unchecked(conn):
            super().add_foreign_key(conn, constraint)

    @contextmanager
    def keys_unchecked(self, conn: sa.Connection) -> Iterator[None]:
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
        try:
            yield
        finally:
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")

    def filter_value(self, value: Any, portable: str | None, timezone: bool) -> Any:
        # No column keeps a zone: aware values compare as the UTC they were stored as.
        if isinstance(value, dt.datetime):
            return fit_zone(value, zoned=False)
        return super().filter_value(value, portable, timezone)

    def swap_table(self, conn: sa.Connection, swap: TableSwap) -> None:
        # DDL commits at once here: indexes go on the staging table first, then one RENAME
        # TABLE swaps both names atomically.
        q = conn.dialect.identifier_preparer.quote_identifier
        target, staging, old = swap.target, swap.staging, swap.old
        swap.finish(staging)
        conn.commit()
        if not swap.exists:
            conn.exec_driver_sql(f"RENAME TABLE {q(staging)} TO {q(target)}")
            conn.commit()
            return
        children = self.incoming_foreign_keys(conn, target)
        # Keys are put back unchecked (FOREIGN_KEY_CHECKS = 0), so `cleared_later` needs
        # nothing more.
        with self.keys_unchecked(conn):
            conn.exec_driver_sql(
                f"RENAME TABLE {q(target)} TO {q(old)}, {q(staging)} TO {q(target)}"
            )
            conn.exec_driver_sql(f"DROP TABLE {q(old)}")
            # InnoDB made the children's keys follow the old table: point them back.
            for table, fk in children:
                name = q(fk.name or "")
                conn.exec_driver_sql(f"ALTER TABLE {q(table)} DROP FOREIGN KEY {name}")
                conn.exec_driver_sql(
                    f"ALTER TABLE {q(table)} ADD CONSTRAINT {name} FOREIGN KEY "
                    f"({', '.join(map(q, fk.columns))}) REFERENCES {q(target)} "
                    f"({', '.join(map(q, fk.ref_columns))})"
                )
        conn.commit()

    def incoming_foreign_keys(
        self, conn: sa.Connection, table: str
    ) -> list[tuple[str, ForeignKeySchema]]:
        # One query for the whole schema, where reflecting every table would take one each.
        rows = conn.execute(
            sa.text(
                "SELECT table_name, constraint_name, column_name, referenced_column_name "
                "FROM information_schema.key_column_usage WHERE table_schema = DATABASE() "
                "AND referenced_table_schema = DATABASE() AND referenced_table_name = :target "
                "AND table_name <> :target "
                "ORDER BY table_name, constraint_name, ordinal_position"
            ),
            {"target": table},
        ).all()
        grouped: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for child, name, column, referenced in rows:
            grouped.setdefault((child, name), []).append((column, referenced))
        return [
            (
                child,
                ForeignKeySchema(
                    name, tuple(c for c, _ in pairs), table, tuple(r for _, r in pairs)
                ),
            )
            for (child, name), pairs in grouped.items()
        ]

    def explain_prefix(self, dialect: sa.Dialect) -> str | None:
        # MariaDB shows `filtered` only with EXTENDED, which MySQL 8 no longer accepts.
        return "EXPLAIN EXTENDED" if getattr(dialect, "is_mariadb", False) else "EXPLAIN"

    def explained_rows(self, plan: Sequence[sa.RowMapping]) -> float:
        # rows x filtered % of each table the outer query reads (id 1), multiplied along its
        # join (a semi-join into a subquery adds a table).
        outer = [access for access in plan if access["id"] == 1]
        if not outer:
            raise ValueError("no access of the outer query")
        rows = 1.0
        for access in outer:  # "Impossible WHERE" reads no table: rows is NULL
            rows *= float(access["rows"]) * float(access["filtered"]) / 100
        return rows

    def recursion_cap(self, dialect: sa.Dialect) -> str | None:
        # MariaDB quietly stops a recursive query after max_recursive_iterations steps,
        # MySQL fails past cte_max_recursion_depth.
        if getattr(dialect, "is_mariadb", False):
            return "@@max_recursive_iterations"
        return "@@cte_max_recursion_depth"

    @contextmanager
    def copy_session(self, conn: sa.Connection) -> Iterator[None]:
        mode = conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar()
        # Without it MySQL turns a copied key 0 of an AUTO_INCREMENT column into a new id.
        conn.exec_driver_sql(
            "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'NO_AUTO_VALUE_ON_ZERO')"
        )
        conn.commit()
        try:
            yield
        finally:
            conn.rollback()
            conn.exec_driver_sql("SET SESSION sql_mode = %s", (mode,))
            conn.commit()

    # -- checksums (fingerprint.py, migrate/sql_digest.py) ------------------------------------

    checksums_tables = True

    def table_checksum(
        self, conn: sa.Connection, table: sa.TableClause, columns: Sequence[ReflectedColumn]
    ) -> TableFingerprint:
        """CHECKSUM TABLE, with the lengths of the variable-length values of each row.

        The server sums a CRC32 of each row in C: about six times cheaper than hashing each
        row in SQL (`query_checksum`). It hashes variable-length values without their
        lengths, so ('ab', '') and ('a', 'b') would look alike; a CRC32 of each row's
        lengths, summed, tells them apart. 32-bit hashes: a change goes unseen with a chance
        of one in four billion; the row count is exact.
        """
        lengths = [
            sa.func.length(column)
            for column, type_ in zip(table.c, (c["type"] for c in columns), strict=True)
            if not isinstance(type_, _FIXED_SIZE)
        ]
        layout = sa.func.crc32(sa.func.concat_ws(",", *lengths)) if lengths else sa.literal(0)
        # The two scans run at once, the checksum on a connection of its own: each mostly
        # waits for the server. Not one snapshot, but a write between them only reads as a
        # change.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsdb-checksum") as pool:
            checksum = pool.submit(_checksum_table, conn.engine, str(table.name))
            count, shapes = count_and_sum(conn, table, sa.func.sum(layout))
            crc = checksum.result()
        return TableFingerprint(
            count, ChecksumMethod.MYSQL_CHECKSUM_TABLE, f"{crc:08x}{shapes % 2**64:016x}"
        )

    def query_checksum(self, conn: sa.Connection, rows: sa.FromClause) -> TableFingerprint:
        """md5 of a length-prefixed encoding of each row, its first 64 bits summed as DECIMAL."""
        # CONCAT_WS skips NULLs and a separator can occur in a value, so each value is written
        # as "<length>:<bytes>" and NULL as "N": unambiguous. Bytes, so mixed collations
        # cannot clash.
        parts = [
            sa.func.coalesce(sa.func.concat(sa.func.length(value), ":", value), "N")
            for value in (sa.cast(column, mysql.BINARY()) for column in rows.c)
        ]
        row_hash = sa.func.md5(sa.func.concat(*parts))
        high = sa.func.conv(sa.func.substring(row_hash, 1, 16), 16, 10)
        total = sa.func.sum(sa.cast(high, mysql.INTEGER(unsigned=True)))
        count, checksum = count_and_sum(conn, rows, total)
        return TableFingerprint(count, ChecksumMethod.MYSQL_ROW_MD5, f"{checksum % 2**64:016x}")

    def digest_sql(self, conn: sa.Connection) -> DigestSQL | None:
        # MySQL's text forms of floats and times differ from MariaDB's: digested in Python.
        return _MARIADB_DIGEST if getattr(conn.dialect, "is_mariadb", False) else None


@contextmanager
def utc_time_zone(conn: sa.Connection) -> Iterator[None]:
    """MySQL/MariaDB show TIMESTAMP values in the session's time zone: UTC for the block. A
    session setting outlives the transaction, so the pooled connection gets its own back."""
    time_zone = conn.execute(sa.text("SELECT @@session.time_zone")).scalar_one()
    conn.execute(sa.text("SET time_zone = '+00:00'"))
    try:
        yield
    finally:
        conn.execute(sa.text("SET time_zone = :tz"), {"tz": time_zone})


def _own_type(column: ColumnSchema, reflected: Any) -> ColumnSchema:
    """`column` typed by what MySQL's own types hold: a SET's text is its members joined by
    commas (not one label), a YEAR a number, a BIT(1) a flag and a wider BIT a number, an
    unsigned integer a type that holds all of its values."""
    if isinstance(reflected, mysql.SET):
        return replace(column, type="text", length=None)
    if isinstance(reflected, mysql.YEAR):
        return replace(column, type="smallint", length=None)
    if isinstance(reflected, mysql.BIT):
        wide = (reflected.length or 1) > 1
        return replace(column, type="bigint" if wide else "boolean", length=None)
    if not getattr(reflected, "unsigned", False):
        return column
    # An unsigned type's signed one holds only half its values (TINYINT's and MEDIUMINT's
    # are held by the portable type they have already).
    if isinstance(reflected, mysql.SMALLINT):
        return replace(column, type="integer")
    if isinstance(reflected, mysql.INTEGER):
        return replace(column, type="bigint")
    if isinstance(reflected, mysql.BIGINT):  # past every integer type: no identity to keep
        return replace(column, type="decimal", precision=20, scale=0, autoincrement=False)
    return column


def _connect(
    dialect: sa.Dialect, record: Any, arguments: list[Any], options: dict[str, Any]
) -> Any:
    """Connect through PyMySQL, offering local files (LOAD DATA LOCAL INFILE) and waiting
    for the server's greeting at most `GREETING_SECONDS`.

    PyMySQL itself still refuses every request for a file but during `_load_data`'s own
    LOAD DATA, so a server cannot ask for one at any other time. A MySQL server speaks first;
    silence means the port holds another server (PostgreSQL waits a minute, then hangs up),
    and PyMySQL would wait for it as long as for any query's answer."""
    driver = dialect.loaded_dbapi
    options["client_flag"] = options.get("client_flag", 0) | _LOCAL_FILES
    read_timeout = options.get("read_timeout")
    greeting = min(read_timeout or GREETING_SECONDS, GREETING_SECONDS)
    try:
        connection = driver.connect(*arguments, **{**options, "read_timeout": greeting})
    except driver.OperationalError as error:
        if error.args and error.args[0] == _LOST_CONNECTION and "timed out" in str(error):
            where = f"{options.get('host', 'localhost')}:{options.get('port', 3306)}"
            raise driver.OperationalError(
                _LOST_CONNECTION,
                f"no MySQL or MariaDB greeting from {where} within {greeting} s: "
                "is that port another kind of server?",
            ) from None
        raise
    # PyMySQL applies this before each read, and has no public way to change it.
    connection._read_timeout = read_timeout
    return connection


def _load_data(
    conn: sa.Connection, driver: Any, table: str, columns: Sequence[ColumnSchema], path: str
) -> int:
    """LOAD DATA LOCAL INFILE of bulk text (its default format), binary unhexed. LOCAL turns
    every refused value into a warning (a NULL in a NOT NULL column becomes '', a NaN 0, a
    duplicate key a skipped row), so any warning means the rows did not go in as written."""

    def q(name: str) -> str:
        return quote_for_driver(conn.dialect, name)  # `%` doubled: the path is a parameter

    names = []
    unhexed = []
    for index, column in enumerate(columns):
        if column.type == "binary":
            names.append(f"@dsdb_{index}")
            unhexed.append(f"{q(column.name)} = UNHEX(@dsdb_{index})")
        else:
            names.append(q(column.name))
    statement = (
        f"LOAD DATA LOCAL INFILE %s INTO TABLE {q(table)} CHARACTER SET utf8mb4 "
        f"({', '.join(names)})" + (f" SET {', '.join(unhexed)}" if unhexed else "")
    )
    if not conn.in_transaction():
        conn.begin()
    driver._local_infile = True  # for this statement only: see `_offer_local_files`
    dbapi = conn.dialect.loaded_dbapi
    try:
        with driver.cursor() as cursor:
            cursor.execute(statement, (path,))
            loaded = int(cursor.rowcount)
            cursor.execute("SELECT @@warning_count")
            warnings = int(cursor.fetchone()[0])
    except dbapi.Error as error:  # as SQLAlchemy raises its own statements' errors
        raise sa.exc.DBAPIError.instance(
            statement, (path,), error, dbapi.Error, dialect=conn.dialect
        ) from error
    finally:
        driver._local_infile = False
    return -1 if warnings else loaded


def is_exact_collation(collation: str) -> bool:
    """Whether text compares byte for byte, trailing spaces included, under `collation`."""
    name = collation.lower()
    return name == "binary" or name.endswith(("_nopad_bin", "_0900_bin"))


_SIMPLE: dict[str, Any] = {
    "smallint": sa.SmallInteger,
    "integer": sa.Integer,
    "bigint": sa.BigInteger,
    "boolean": lambda: sa.Boolean(create_constraint=False),
    "float": mysql.FLOAT,
    "double": mysql.DOUBLE,
    "date": sa.Date,
    "time": lambda: mysql.TIME(fsp=6),
    # No zone-aware type: aware values are stored as UTC. fsp=6 keeps microseconds, which a
    # bare DATETIME silently drops.
    "datetime": lambda: mysql.DATETIME(fsp=6),
    "json": sa.JSON,
    "uuid": lambda: sa.CHAR(36),
}

ENGINE = MySQLEngine()


# -- checksums --------------------------------------------------------------------------------

#: Column types MariaDB/MySQL store in a fixed number of bytes (a decimal too), which
#: CHECKSUM TABLE hashes unambiguously.
_FIXED_SIZE = (
    sa.Integer,
    sa.Numeric,
    sa.Float,  # not a Numeric since SQLAlchemy 2.1
    sa.Boolean,
    sa.Date,
    sa.DateTime,
    sa.Time,
    sa.Enum,
    mysql.YEAR,
)


def _checksum_table(engine: sa.Engine, name: str) -> int:
    quoted = quote_for_driver(engine.dialect, name)
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"CHECKSUM TABLE {quoted}").one()[1] or 0)


class _MariaDBDigest(DigestSQL):
    def session(self, conn: sa.Connection) -> AbstractContextManager[None]:
        return utc_time_zone(conn)

    def integer_text(self, q: str) -> str:
        return f"CAST({q} AS CHAR)"

    def boolean_text(self, q: str, *, stored_as_boolean: bool) -> str:
        # A boolean is a TINYINT here, whichever way it was declared.
        return f"CASE {q} WHEN 1 THEN 'true' WHEN 0 THEN 'false' ELSE CONCAT('?', {q}) END"

    def float_text(self, q: str, *, single: bool) -> str:
        """MariaDB has no NaN or infinities; its scientific form is `d.ddde[-]x`."""
        value = f"CAST(CAST({q} AS FLOAT) AS DOUBLE)" if single else f"CAST({q} AS DOUBLE)"
        text = f"CAST({value} AS CHAR)"
        sign = f"IF({value} < 0, '-', '')"
        power = f"CAST(SUBSTRING_INDEX({text}, 'e', -1) AS SIGNED)"
        digits = f"REPLACE(TRIM(LEADING '-' FROM SUBSTRING_INDEX({text}, 'e', 1)), '.', '')"
        width = f"CHAR_LENGTH({digits})"
        plain = (
            f"IF({power} < 0, CONCAT({sign}, '0.', REPEAT('0', -{power} - 1), {digits}), "
            f"IF({width} - 1 <= {power}, "
            f"CONCAT({sign}, {digits}, REPEAT('0', {power} - {width} + 1)), "
            f"CONCAT({sign}, LEFT({digits}, {power} + 1), '.', SUBSTRING({digits}, {power} + 2))))"
        )
        # Most doubles are written plain: only the rest pay for the checks.
        return (
            f"IF(ABS({value}) >= {_PLAIN_FROM} AND ABS({value}) < {_PLAIN_BELOW}, {text}, "
            f"IF({value} = 0, '0', IF(LOCATE('e', {text}) = 0, {text}, {plain})))"
        )

    def decimal_text(self, q: str) -> str:
        text = f"CAST({q} AS CHAR)"
        trimmed = f"TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {text}))"
        return f"IF({q} = 0, '0', IF(LOCATE('.', {text}) = 0, {text}, {trimmed}))"

    def binary_text(self, q: str) -> str:
        return f"LOWER(HEX({q}))"

    def date_text(self, q: str) -> str:
        return f"DATE_FORMAT({q}, '%Y-%m-%d')"

    def datetime_text(self, q: str, *, zoned: bool) -> str:
        return f"DATE_FORMAT({q}, '%Y-%m-%dT%H:%i:%s.%f')"  # stored in UTC (`session`)

    def time_text(self, q: str) -> str:
        return f"TIME_FORMAT({q}, '%H:%i:%s.%f')"

    # CHAR spells the backslash and U+001F whatever the server's string escaping mode.

    def frame(self, q: str, text: str, *, escaped: bool) -> str:
        # Only a text column's value may be other than ASCII, which reads the same in any
        # character set the row is put together in: only it needs its bytes in UTF-8 (0.4 s
        # of server CPU for 1,000,000 rows of the benchmark's 9 columns, of 5).
        if escaped:
            text = f"CONVERT(({text}) USING utf8mb4)"
            text = (
                f"REPLACE(REPLACE({text}, {_BACKSLASH}, CONCAT({_BACKSLASH}, {_BACKSLASH})),"
                f" {_SEPARATOR}, CONCAT({_BACKSLASH}, {_SEPARATOR}))"
            )
        return f"IF({q} IS NULL, CONCAT({_BACKSLASH}, 'N'), {text})"

    def row_hash(self, parts: Sequence[str]) -> str:
        row = f"CONCAT_WS({_SEPARATOR}, {', '.join(parts)})"
        return f"CAST(CONV(SUBSTRING(MD5({row}), 1, 16), 16, 10) AS UNSIGNED)"


#: Doubles of these magnitudes are written without an exponent (as Python's repr writes them).
_PLAIN_FROM, _PLAIN_BELOW = "1e-4", "1e15"
_BACKSLASH = "CHAR(92 USING utf8mb4)"
_SEPARATOR = "CHAR(31 USING utf8mb4)"
_MARIADB_DIGEST = _MariaDBDigest()
