"""PostgreSQL: typed columns, transactional DDL, zone-aware timestamps, arrays and enums.

Arrays and enums have no portable counterpart: an array is read as its JSON array
(`to_json`), so it lands as JSON everywhere, and an enum as its label, so it lands as text.
(The type mapping of every engine is the README's table, "Types across engines".)
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine.interfaces import ReflectedColumn

from dsdb_plan.checksum import ChecksumMethod, DigestSQL, TableFingerprint, count_and_sum
from dsdb_plan.engines import registration_for
from dsdb_plan.engines.base import Capabilities, Engine, quote_identifier
from dsdb_plan.portable import INTEGER_TYPES, ColumnSchema


class PostgreSQLEngine(Engine):
    name = "PostgreSQL"
    change_check = (
        "every row's version (xmin) of each table read, and every row of a table whose "
        "versions moved"
    )
    registration = registration_for("postgresql")
    capabilities = Capabilities(
        transactional_ddl=True,
        single_writer=False,
        deferrable_constraints=True,
        max_identifier_length=63,
        adds_constraints_later=True,
        typed_columns=True,
        stores_non_finite_floats=True,
        stores_non_finite_decimals=True,
        zone_aware_timestamps=True,
        index_names_per_schema=True,
        indexes_unbounded_text=True,
        row_versions=True,
        validates_keys_later=True,
        max_decimal_digits=1000,
        writes_bulk_text=True,
        keys_faster_after_load=True,
        exports_snapshots=True,
        loads_columns=True,
    )
    snapshot_isolation = "REPEATABLE READ"
    passes_as_is: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "boolean": ("bool",),
        "date": ("date",),
        "decimal": ("Decimal",),
        "json": ("str",),
        "uuid": ("str",),
    }
    admin_database = "postgres"
    database_exists_sql = "SELECT 1 FROM pg_database WHERE datname = :name"
    missing_database_message = 'database "{name}" does not exist'
    drop_database_options = " WITH (FORCE)"  # ends the sessions still on it
    connect_timeout_argument = "connect_timeout"

    def column_type(self, column: ColumnSchema, *, keyed: bool = False) -> Any:
        kind = column.type
        if kind in _SIMPLE:
            return _SIMPLE[kind]()
        if kind == "float":
            return sa.REAL()
        if kind == "double":
            # Never `real`: PostgreSQL's real keeps 6 digits (issue 4, item 4).
            return postgresql.DOUBLE_PRECISION()
        if kind == "decimal":
            return sa.Numeric(column.precision, column.scale)
        if kind == "varchar" and column.length:
            return sa.String(column.length)
        if kind in ("varchar", "text"):
            return sa.Text()
        if kind == "time":
            return sa.Time(timezone=column.timezone)
        if kind == "datetime":
            return sa.DateTime(timezone=column.timezone)
        if kind == "uuid":
            return postgresql.UUID(as_uuid=False)
        raise KeyError(kind)

    def column_identity(self, column: ColumnSchema) -> list[Any]:
        """BY DEFAULT: explicit ids from the copy are accepted."""
        return [sa.Identity()] if column.autoincrement and column.type in INTEGER_TYPES else []

    def schema_wide_names(self, conn: sa.Connection) -> set[str]:
        query = (
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema()"
        )
        return set(conn.exec_driver_sql(query).scalars())

    def continue_after(self, conn: sa.Connection, table: str, column: str, largest: int) -> None:
        # Without this the sequence still starts at 1 after a copy with explicit ids, and the
        # application's first insert fails on a duplicate key.
        quoted = quote_identifier(conn.dialect, table)  # a value pg_get_serial_sequence parses
        sequence = conn.execute(sa.select(sa.func.pg_get_serial_sequence(quoted, column))).scalar()
        if sequence is not None:
            setval = sa.func.setval(sa.cast(sequence, postgresql.REGCLASS), largest + 1, False)
            conn.execute(sa.select(setval))

    def boolean_literal(self, value: bool) -> str:
        return "true" if value else "false"

    @contextmanager
    def fixed_formatting(self, conn: sa.Connection) -> Iterator[None]:
        conn.execute(_SET_SETTINGS)  # local to the transaction, so they end with it
        yield

    def read_expression(
        self, element: sa.ColumnElement[Any], column: ColumnSchema
    ) -> sa.ColumnElement[Any]:
        if column.type == "text":
            # A type kept as text (an interval, a range) as PostgreSQL writes it, by its output
            # function (concat; a cast to text may differ: an inet's adds its mask): the
            # driver's value would not say it ('1 mon' comes back as 30 days).
            written = sa.case((element.is_(None), None), else_=sa.func.concat(element))
            return written.label(column.name)
        if column.type != "json":
            return element
        # Its text, so a JSON string (or null) cannot be taken for text (or NULL); an array, of
        # any element type (enums included), as its JSON array. Decided per column type in
        # SQL: the column read may be a target's, of a type other than the source's.
        array = sa.func.pg_typeof(element).cast(sa.Text()).like("%[]")
        as_json = sa.cast(sa.func.to_json(element), sa.Text())
        return sa.case((array, as_json), else_=sa.cast(element, sa.Text())).label(column.name)

    def misfit(
        self, value: sa.ColumnElement[Any], column: ColumnSchema, into: Engine
    ) -> sa.ColumnElement[bool] | None:
        # 'infinity' and '-infinity' are no date a Python date or datetime holds.
        if column.type in ("date", "datetime"):
            return sa.not_(sa.func.isfinite(value))
        held = into.capabilities
        floats = column.type in ("float", "double") and not held.stores_non_finite_floats
        decimals = column.type == "decimal" and not held.stores_non_finite_decimals
        return self.non_finite(value) if floats or decimals else None

    def non_finite(self, value: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        # NaN equals NaN here; the literals take the column's type (float or numeric).
        words = ("NaN", "Infinity", "-Infinity")
        return value.in_([sa.literal_column(f"'{word}'") for word in words])

    def stable_hash(self, text: str) -> str:
        return f"('x' || substr(md5({text}), 1, 8))::bit(32)::bigint"

    def bulk_text_expression(
        self, element: sa.ColumnElement[Any], column: ColumnSchema, actual: Any
    ) -> sa.ColumnElement[Any] | None:
        # COPY's text format is bulk text but for booleans (t/f), binary (\\x...) and zoned
        # timestamps and times (as their wall time, as `values` stores them): those are cast
        # here. Text is taken only from text types: another type kept as text (an interval)
        # is written from the driver's Python value by the rows path, not PostgreSQL's text.
        kind = column.type
        if not isinstance(actual, _BULK_TEXT_TYPES.get(kind, ())):
            return None
        if kind == "boolean":
            return sa.cast(element, sa.Integer)
        if kind == "binary":
            return sa.func.encode(element, "hex")
        if kind == "datetime" and column.timezone:
            return sa.func.timezone("UTC", element)  # AT TIME ZONE: the UTC wall time
        if kind == "time" and column.timezone:
            return sa.cast(element, sa.Time())
        if kind == "uuid":
            return sa.cast(element, sa.Text)
        return self.read_expression(element, column)

    def bulk_text(self, conn: sa.Connection, query: sa.Select[Any]) -> bytes:
        compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        statement = f"COPY ({compiled}) TO STDOUT"
        if not compiled.params:  # psycopg merges (and so undoubles `%`) only given some
            statement = statement.replace("%%", "%")
        driver: Any = conn.connection.driver_connection
        with driver.cursor() as cursor, cursor.copy(statement.encode(), compiled.params) as copy:
            data = b"".join(copy)
        if b"\\f" in data or b"\\v" in data:
            data = _PG_ONLY_ESCAPES.sub(_bulk_escape, data)
        return data

    def drop_temporary(self, conn: sa.Connection, table: sa.Table) -> None:
        quoted = conn.dialect.identifier_preparer.quote_identifier(table.name)
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS pg_temp.{quoted}")

    def analyze_temporary(self, conn: sa.Connection, table: sa.Table) -> None:
        # Autovacuum never analyzes temporary tables.
        quoted = conn.dialect.identifier_preparer.quote_identifier(table.name)
        conn.exec_driver_sql(f"ANALYZE {quoted}")

    # -- checksums (fingerprint.py, migrate/sql_digest.py) ------------------------------------

    checksums_tables = True

    def table_checksum(
        self, conn: sa.Connection, table: sa.TableClause, columns: Sequence[ReflectedColumn]
    ) -> TableFingerprint | None:
        """PostgreSQL's own hash of each row (`hash_record_extended`, 14+), summed.

        Five times cheaper than md5 of the row's text (`query_checksum`, used before 14). A
        value that has no hash function (json, xml, arrays, geometric types, ...) is hashed
        by its text. A numeric's hash ignores trailing zeros, so its scale is hashed with it.
        """
        if (conn.dialect.server_version_info or (0,)) < (14,):
            return self.query_checksum(conn, table)
        fields: list[sa.ColumnElement[Any]] = []
        for column, type_ in zip(table.c, (c["type"] for c in columns), strict=True):
            if not isinstance(type_, _HASHED):
                fields.append(sa.cast(column, sa.Text))
                continue
            fields.append(column)
            if isinstance(type_, sa.Numeric) and not isinstance(type_, sa.Float):
                fields.append(sa.func.scale(column))
        row_hash = sa.func.hash_record_extended(sa.func.ROW(*fields), 0)
        # The token in the same scan, for the next plan to check first.
        query = sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(row_hash), 0),
            sa.func.coalesce(_WRITTEN, 0),
        ).select_from(table)
        count, checksum, written = conn.execute(query).one()
        return TableFingerprint(
            count,
            ChecksumMethod.POSTGRESQL_ROW_HASH,
            f"{int(checksum) % 2**64:016x}",
            _token(count, int(written), columns),
        )

    def table_token(
        self, conn: sa.Connection, table: sa.TableClause, columns: Sequence[ReflectedColumn]
    ) -> str:
        count, written = count_and_sum(conn, table, _WRITTEN)
        return _token(count, written, columns)

    def query_checksum(self, conn: sa.Connection, rows: sa.FromClause) -> TableFingerprint:
        """md5 of each row's text form, its first 64 bits summed as numeric (no overflow)."""
        # ROW(...)::text writes NULL as nothing and '' as "", so the two stay distinct.
        row_hash = sa.func.md5(sa.cast(sa.func.ROW(*rows.c), sa.Text))
        high = sa.literal_column("'x'", sa.Text) + sa.func.substr(row_hash, 1, 16)
        total = sa.func.sum(sa.cast(sa.cast(high, postgresql.BIT(64)), sa.BigInteger))
        count, checksum = count_and_sum(conn, rows, total)
        return TableFingerprint(
            count, ChecksumMethod.POSTGRESQL_ROW_MD5, f"{checksum % 2**64:016x}"
        )

    def digest_sql(self, conn: sa.Connection) -> DigestSQL | None:
        version = conn.dialect.server_version_info or (0,)
        encoding = conn.exec_driver_sql("SHOW server_encoding").scalar()
        # 12 writes floats with their shortest exact digits, 14 has numeric infinities; md5()
        # hashes the server's bytes.
        return _DIGEST_SQL if version >= (14,) and encoding == "UTF8" else None

    def begin_snapshot(self, conn: sa.Connection, *, read_only: bool = False) -> None:
        conn.execution_options(
            isolation_level=self.snapshot_isolation, postgresql_readonly=read_only
        )

    def export_snapshot(self, conn: sa.Connection) -> str | None:
        if conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar_one():
            return None  # a standby exports no snapshot
        return str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())

    def join_snapshot(self, conn: sa.Connection, token: str) -> None:
        conn.execution_options(isolation_level=self.snapshot_isolation)
        # An identifier the server made (hex digits and dashes), not user input.
        conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{token}'")

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
        if conn.dialect.driver == "psycopg":  # COPY needs psycopg 3's copy API
            return load.postgres_copy_writer(conn, table, names, key, operation)
        return load.on_conflict_writer(conn, table, names, key, operation)

    def arrow_database(self, conn: sa.Connection) -> Any:
        # The ADBC driver writes each batch with binary COPY in C++: the server skips
        # parsing text, about 40% of a COPY's time on typed columns.
        import adbc_driver_postgresql  # loads only for a copy in whole columns

        url = conn.engine.url.set(drivername="postgresql")
        return adbc_driver_postgresql.connect(url.render_as_string(hide_password=False))

    def filter_value(self, value: Any, portable: str | None, timezone: bool) -> Any:
        if portable == "uuid" and isinstance(value, str):
            try:
                return uuid.UUID(value)  # a uuid column does not compare with varchar
            except ValueError:
                return value
        return super().filter_value(value, portable, timezone)

    def _detach_incoming_keys(self, conn: sa.Connection, target: str) -> list[Any]:
        # A key follows its table through a rename: those of other tables would point at
        # the old table, so they are dropped and put back on the new one.
        rows = conn.execute(
            sa.text(
                "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) "
                "FROM pg_constraint c WHERE c.contype = 'f' AND c.confrelid = "
                "to_regclass(quote_ident(:target)) AND c.conrelid <> c.confrelid"
            ),
            {"target": target},
        ).all()
        q = conn.dialect.identifier_preparer.quote_identifier
        detached = [(_unquote(str(row[0])), str(row[1]), str(row[2])) for row in rows]
        for table, name, _ in detached:
            conn.exec_driver_sql(f"ALTER TABLE {q(table)} DROP CONSTRAINT {q(name)}")
        return detached

    def _reattach_keys(
        self, conn: sa.Connection, detached: list[Any], cleared_later: Collection[str]
    ) -> None:
        # Keys of tables a later step clears go back NOT VALID: unchecked for the rows they
        # hold now, which may point at rows the new table lacks (`validate_keys` checks them).
        q = conn.dialect.identifier_preparer.quote_identifier
        for table, name, definition in detached:
            later = table in cleared_later and not definition.endswith("NOT VALID")
            conn.exec_driver_sql(
                f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(name)} "
                + definition.replace("%", "%%")
                + (" NOT VALID" if later else "")
            )

    def _renamed(self, conn: sa.Connection, staging: str, target: str) -> None:
        # The primary key's and unique constraints' indexes take names of the target's.
        names = conn.execute(
            sa.text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = :target"
            ),
            {"target": target},
        ).scalars()
        q = conn.dialect.identifier_preparer.quote_identifier
        limit = self.capabilities.max_identifier_length
        for name in list(names):
            if staging in name:
                wanted = name.replace(staging, target)
                if len(wanted.encode()) > limit:
                    wanted = f"{wanted[:40]}_{hashlib.sha1(wanted.encode()).hexdigest()[:8]}"
                conn.exec_driver_sql(f"ALTER INDEX {q(name)} RENAME TO {q(wanted)}")

    def validate_keys(self, conn: sa.Connection, table: str, parents: Collection[str]) -> None:
        rows = conn.execute(
            sa.text(
                "SELECT conname, confrelid::regclass::text FROM pg_constraint WHERE "
                "contype = 'f' AND NOT convalidated AND conrelid = to_regclass(quote_ident(:t))"
            ),
            {"t": table},
        ).all()
        q = conn.dialect.identifier_preparer.quote_identifier
        for name, parent in rows:
            if _unquote(str(parent)) in parents:
                conn.exec_driver_sql(f"ALTER TABLE {q(table)} VALIDATE CONSTRAINT {q(name)}")

    def explain_prefix(self, dialect: sa.Dialect) -> str | None:
        return "EXPLAIN (FORMAT JSON)"

    def explained_rows(self, plan: Sequence[sa.RowMapping]) -> float:
        found = plan[0]["QUERY PLAN"]  # the top node's estimate
        found = json.loads(found) if isinstance(found, str) else found
        return float(found[0]["Plan"]["Plan Rows"])


def _unquote(name: str) -> str:
    """regclass text quotes names that need it."""
    if name.startswith('"') and name.endswith('"'):
        return name[1:-1].replace('""', '"')
    return name


_SETTINGS = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),  # shortest exact text for floats; 0 would round them
    ("bytea_output", "hex"),
)
#: All of them in one round trip.
_SET_SETTINGS = sa.select(*(sa.func.set_config(name, value, True) for name, value in _SETTINGS))

#: The reflected types whose values COPY writes (cast by `bulk_text_expression`) exactly as
#: the rows path would store them, per portable type.
_BULK_TEXT_TYPES: dict[str, tuple[type, ...]] = {
    "smallint": (sa.Integer,),
    "integer": (sa.Integer,),
    "bigint": (sa.Integer,),
    "boolean": (sa.Boolean,),
    "float": (sa.Float,),
    "double": (sa.Float,),
    "decimal": (sa.Numeric,),
    "varchar": (sa.String,),
    "text": (sa.String,),
    "binary": (sa.LargeBinary,),
    "date": (sa.Date,),
    "time": (sa.Time,),
    "datetime": (sa.DateTime,),
    "json": (sa.JSON, sa.ARRAY),
    "uuid": (sa.Uuid,),
}
#: COPY's escapes that bulk text lacks (form feed, vertical tab), matched from the left
#: with escaped backslashes, so a `\\` followed by `f` is never taken for one.
_PG_ONLY_ESCAPES = re.compile(rb"\\[\\fv]")
_UNESCAPED = {b"\\\\": b"\\\\", b"\\f": b"\x0c", b"\\v": b"\x0b"}


def _bulk_escape(match: re.Match[bytes]) -> bytes:
    return _UNESCAPED[match.group()]


_SIMPLE: dict[str, Any] = {
    "smallint": sa.SmallInteger,
    "integer": sa.Integer,
    "bigint": sa.BigInteger,
    "boolean": lambda: sa.Boolean(create_constraint=False),
    "binary": postgresql.BYTEA,
    "date": sa.Date,
    "json": postgresql.JSONB,
}

ENGINE = PostgreSQLEngine()


# -- checksums --------------------------------------------------------------------------------

#: Column types whose values PostgreSQL hashes itself: they have an extended hash function,
#: and equal hashes mean equal stored values (with a numeric's scale added). Not intervals:
#: '1 day' and '24 hours' hash alike.
_HASHED = (
    sa.Integer,
    sa.Numeric,
    sa.Float,  # by its exact value (named apart: not a Numeric since SQLAlchemy 2.1)
    sa.String,  # text, varchar, char, enums
    sa.Boolean,
    sa.Date,
    sa.DateTime,
    sa.Time,
    sa.LargeBinary,
    sa.Uuid,
    postgresql.JSONB,
)

#: Every row version carries the id of the transaction that wrote it (`xmin`): an insert,
#: update or delete adds or removes one, so their hashes' sum moves with any committed
#: write; VACUUM (FREEZE, FULL) and CLUSTER keep them. Cheaper to sum than the content.
_WRITTEN = sa.func.sum(
    sa.func.hashint8(sa.cast(sa.cast(sa.literal_column("xmin"), sa.Text), sa.BigInteger))
)


def _token(count: int, written: int, columns: Sequence[ReflectedColumn]) -> str:
    # Adding or dropping a column changes every row without writing one: the columns and
    # their types are part of the token.
    layout = hashlib.sha256(ascii([(c["name"], str(c["type"])) for c in columns]).encode())
    return f"pgx1:{count}:{written % 2**64:016x}:{layout.hexdigest()[:16]}"


class _PostgreSQLDigest(DigestSQL):
    @contextmanager
    def session(self, conn: sa.Connection) -> Iterator[None]:
        # Local to the transaction: shortest exact float digits whatever the default; and no
        # JIT, whose compiling of these long expressions costs more than it saves.
        conn.execute(
            sa.text(
                "SELECT set_config('extra_float_digits', '1', true), set_config('jit', 'off', true)"
            )
        )
        yield

    def integer_text(self, q: str) -> str:
        return f"{q}::text"

    def boolean_text(self, q: str, *, stored_as_boolean: bool) -> str:
        if stored_as_boolean:
            return f"CASE {q} WHEN true THEN 'true' WHEN false THEN 'false' END"
        return f"CASE {q} WHEN 1 THEN 'true' WHEN 0 THEN 'false' ELSE '?' || {q}::text END"

    def float_text(self, q: str, *, single: bool) -> str:
        value = f"{q}::real::float8" if single else f"{q}::float8"
        text = _shortest(value)
        # Most doubles are written plain, and shortest: only the rest pay for the checks (NaN
        # sorts above every number).
        plain = f"abs({value}) >= '1e-4'::float8 AND abs({value}) < '1e15'::float8"
        return (
            f"CASE WHEN {plain} THEN {value}::text "
            f"WHEN {value} = 0 THEN '0' WHEN {value} = 'NaN' THEN 'nan' "
            f"WHEN {value} = 'Infinity' THEN 'inf' WHEN {value} = '-Infinity' THEN '-inf' "
            f"WHEN strpos({text}, 'e') = 0 THEN {text} ELSE ({text})::numeric::text END"
        )

    def decimal_text(self, q: str) -> str:
        return (
            f"CASE WHEN {q} = 0 THEN '0' WHEN {q} = 'NaN' THEN 'nan' "
            f"WHEN {q} = 'Infinity' THEN 'inf' WHEN {q} = '-Infinity' THEN '-inf' "
            f"ELSE trim_scale({q})::text END"
        )

    def binary_text(self, q: str) -> str:
        return f"encode({q}, 'hex')"

    def date_text(self, q: str) -> str:
        return f"to_char({q}, 'YYYY-MM-DD')"

    def datetime_text(self, q: str, *, zoned: bool) -> str:
        utc = f"({q} AT TIME ZONE 'UTC')" if zoned else q
        return f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US')"

    def time_text(self, q: str) -> str:
        # A time with a zone keeps its local time and drops the zone, as in Python.
        return f"to_char(TIMESTAMP '2000-01-01' + {q}::time, 'HH24:MI:SS.US')"

    def uuid_text(self, q: str) -> str:
        return f"{q}::text"

    def row_hash(self, parts: Sequence[str]) -> str:
        row = " || chr(31) || ".join(f"({part})" for part in parts)
        # The first 16 hex digits as a signed 64-bit integer: sums agree modulo 2**64.
        return f"('x' || substr(md5({row}), 1, 16))::bit(64)::bigint"


def _shortest(value: str) -> str:
    """The shortest digits that read back as the double `value`, as Python's repr.

    PostgreSQL writes them itself, except for some doubles of 2**53 and more (all of them
    integers): where a shorter decimal lies exactly halfway to the next double it writes
    more digits (5.9996735811599744e+16 for 5.999673581159974e+16). For those, round to
    1, 2, ... 17 significant digits and take the first that reads back.
    """
    exact = f"{value}::text::numeric"
    width = f"length(trunc(abs({exact}))::text)"
    tries = []
    for digits in range(1, 18):
        rounded = f"round({exact}, {digits} - {width})"
        # Rounding up past the largest double would fail the cast back.
        reads_back = (
            f"CASE WHEN abs({rounded}) <= {_LARGEST_DOUBLE} "
            f"THEN {rounded}::float8 = {value} ELSE false END"
        )
        tries.append(f"WHEN {reads_back} THEN {rounded}::text")
    return (
        f"CASE WHEN abs({value}) >= 9007199254740992 AND abs({value}) < 'Infinity' "
        f"THEN CASE {' '.join(tries)} END ELSE {value}::text END"
    )


_LARGEST_DOUBLE = "179769313486231570" + "0" * 291
_DIGEST_SQL = _PostgreSQLDigest()
