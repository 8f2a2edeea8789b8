"""DuckDB: the second embedded engine. A file opened in-process, typed columns, one writer.

DuckDB cannot add a foreign key to an existing table (keys are created with their table),
keeps no name for its constraints, has no identity columns (a sequence and a `nextval`
default stand in) and no length for `VARCHAR(n)`. Its decimals hold at most 38 digits.

SQLAlchemy's `duckdb_engine` dialect borrows PostgreSQL's reflection, whose catalog queries
DuckDB does not answer (`pg_collation`, `regclass`); `DuckDBDialect` below reads DuckDB's
own catalog functions instead (https://duckdb.org/docs/sql/meta/duckdb_table_functions).
Nothing here needs an extension download: JSON and ICU (time zones) ship in the wheel.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import registry

from dsdb_plan.checksum import DigestSQL
from dsdb_plan.engines import registration_for
from dsdb_plan.engines.base import Capabilities, Declared, Engine, TableSwap
from dsdb_plan.errors import DsdbError
from dsdb_plan.portable import INTEGER_TYPES, ColumnSchema, TableSchema

#: The most digits a DuckDB DECIMAL holds.
MAX_DECIMAL_DIGITS = 38
#: What an unbounded decimal (SQLite's NUMERIC, PostgreSQL's numeric) becomes: the widest
#: DuckDB has, as MySQL/MariaDB's DECIMAL(65,30) stands in there.
UNBOUNDED_DECIMAL = (MAX_DECIMAL_DIGITS, 10)
_SWAP_BATCH_ROWS = 10_000
_NEXTVAL = re.compile(r"nextval\('((?:[^']|'')+)'\)", re.IGNORECASE)
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")

_SIMPLE: dict[str, Any] = {
    "smallint": sa.SmallInteger,
    "integer": sa.Integer,
    "bigint": sa.BigInteger,
    "boolean": lambda: sa.Boolean(create_constraint=False),
    "float": sa.REAL,
    "double": sa.Double,
    "text": sa.Text,
    "varchar": sa.Text,  # DuckDB keeps no length for VARCHAR(n)
    "binary": sa.LargeBinary,
    "date": sa.Date,
    "json": lambda: Declared("JSON"),  # its text as is: sa.JSON would encode text again
    "uuid": lambda: sa.Uuid(as_uuid=False),
}


class DuckDBEngine(Engine):
    name = "DuckDB"
    registration = registration_for("duckdb")
    capabilities = Capabilities(
        transactional_ddl=True,
        single_writer=True,
        deferrable_constraints=False,
        max_identifier_length=1_000_000,  # no limit but memory
        adds_constraints_later=False,
        typed_columns=True,
        stores_non_finite_floats=True,
        zone_aware_timestamps=True,
        index_names_per_schema=True,
        indexes_unbounded_text=True,
        max_decimal_digits=MAX_DECIMAL_DIGITS,
    )
    passes_as_is: ClassVar[dict[str, tuple[str, ...]]] = {
        "boolean": ("bool",),
        "date": ("date",),
        "decimal": ("Decimal",),
        "json": ("str",),
        "uuid": ("str",),
    }

    def library_version(self) -> str:
        import duckdb

        return duckdb.__version__

    def prepare_engine(self, engine: sa.Engine) -> None:
        sa.event.listen(engine, "connect", _utc_session)

    # -- DDL --------------------------------------------------------------------------------

    def column_type(self, column: ColumnSchema, *, keyed: bool = False) -> Any:
        kind = column.type
        if kind in _SIMPLE:
            return _SIMPLE[kind]()
        if kind == "decimal":
            if column.precision is None:
                return Declared("DECIMAL({}, {})".format(*UNBOUNDED_DECIMAL))
            if _hugeint(column):
                return Declared("HUGEINT")
            if column.precision > MAX_DECIMAL_DIGITS:
                raise DsdbError(self.cannot_hold(column) or "")
            return Declared(f"DECIMAL({column.precision}, {column.scale or 0})")
        if kind == "time":
            return sa.Time(timezone=column.timezone)
        if kind == "datetime":
            return sa.DateTime(timezone=column.timezone)
        raise KeyError(kind)

    def cannot_hold(self, column: ColumnSchema) -> str | None:
        return None if _hugeint(column) else super().cannot_hold(column)

    def boolean_literal(self, value: bool) -> str:
        return "true" if value else "false"

    def column_identity(self, column: ColumnSchema) -> list[Any]:
        # DuckDB has no identity columns: `DuckDBDDLCompiler` creates a sequence with the
        # table and makes its `nextval` the column's default.
        return [sa.Identity()] if column.autoincrement and column.type in INTEGER_TYPES else []

    def continue_after(self, conn: sa.Connection, table: str, column: str, largest: int) -> None:
        default = conn.execute(
            sa.text(
                "SELECT column_default FROM duckdb_columns() WHERE database_name = "
                "current_database() AND schema_name = current_schema() "
                "AND table_name = :table AND column_name = :column"
            ),
            {"table": table, "column": column},
        ).scalar()
        match = _NEXTVAL.search(default or "")
        if match is not None and largest > 0:
            conn.execute(sa.select(sa.func.setval(match.group(1).replace("''", "'"), largest)))

    def schema_wide_names(self, conn: sa.Connection) -> set[str]:
        query = (
            "SELECT index_name FROM duckdb_indexes() UNION SELECT table_name FROM duckdb_tables()"
        )
        return set(conn.exec_driver_sql(query).scalars())

    # -- loading ----------------------------------------------------------------------------

    def bulk_writer(
        self,
        conn: sa.Connection,
        table: str,
        columns: Sequence[ColumnSchema],
        key: Sequence[str],
        operation: str,
    ) -> Any:
        return ArrowWriter(conn, table, columns, key, operation)

    # -- replacing a table --------------------------------------------------------------------

    def swap_table(self, conn: sa.Connection, swap: TableSwap) -> None:
        # DuckDB renames no table another table's key points at, and a renamed table's key to
        # itself keeps naming the old name: the rows move instead, in one transaction (readers
        # see the old rows until it commits), through the Arrow writer that orders a table's
        # references to itself.
        from dsdb_plan.dbschema import create_tables, reflect_tables

        conn.commit()
        q = conn.dialect.identifier_preparer.quote_identifier
        if swap.exists:
            # Made again after the load, by `swap.finish`. Dropped in a transaction of their
            # own: until it commits, DuckDB still checks them, and refuses an update of an
            # indexed column in a row another table references.
            with conn.begin():
                for index in reflect_tables(conn, [swap.target])[0].indexes:
                    if index.name is not None:
                        conn.exec_driver_sql(f"DROP INDEX {q(index.name)}")
        with conn.begin():
            (staged,) = reflect_tables(conn, [swap.staging])
            if not swap.exists:
                keys = tuple(
                    replace(fk, ref_table=swap.target) if fk.ref_table == swap.staging else fk
                    for fk in staged.foreign_keys
                )
                target = replace(staged, name=swap.target, foreign_keys=keys, indexes=())
                create_tables(conn, [target], with_indexes=False)
            (target,) = reflect_tables(conn, [swap.target])
            key = target.primary_key
            if swap.exists:
                matched = " AND ".join(f"s.{q(name)} = t.{q(name)}" for name in key)
                conn.exec_driver_sql(
                    f"DELETE FROM {q(swap.target)} AS t WHERE NOT EXISTS "
                    f"(SELECT 1 FROM {q(swap.staging)} AS s WHERE {matched})"
                    if key
                    else f"DELETE FROM {q(swap.target)}"
                )
            self._move_rows(conn, staged, swap.target, key)
            conn.exec_driver_sql(f"DROP TABLE {q(swap.staging)}")
        with conn.begin():  # DuckDB creates no index in a transaction that changed rows
            swap.finish(swap.target)

    def _move_rows(
        self, conn: sa.Connection, staged: TableSchema, target: str, key: Sequence[str]
    ) -> None:
        """Every row of the staging table into `target`, in the order it was loaded (parents
        first), upserted by `key`. Read a range of row ids at a time: the writer's statements
        would end a result still being fetched on the same connection."""
        table = sa.table(staged.name, *(sa.column(c.name) for c in staged.columns))
        rowid: sa.ColumnElement[int] = sa.literal_column("rowid")
        query = sa.select(*(self.read_expression(table.c[c.name], c) for c in staged.columns))
        writer = ArrowWriter(conn, target, staged.columns, key, "upsert" if key else "insert")
        last = conn.execute(sa.select(sa.func.max(rowid)).select_from(table)).scalar()
        for start in range(0, -1 if last is None else last + 1, _SWAP_BATCH_ROWS):
            page = query.where(rowid >= start, rowid < start + _SWAP_BATCH_ROWS).order_by(rowid)
            writer.write([tuple(row) for row in conn.execute(page).all()])

    # -- reading ----------------------------------------------------------------------------

    def read_expression(
        self, element: sa.ColumnElement[Any], column: ColumnSchema
    ) -> sa.ColumnElement[Any]:
        if column.type == "text":
            # A type kept as text (an interval) as DuckDB writes it: the driver's value would
            # not say it ('1 month' comes back as 30 days).
            return sa.cast(element, sa.Text()).label(column.name)
        if column.type != "json":
            return element
        # Its JSON text: lists, structs and maps (reflected as JSON) as JSON too.
        return sa.cast(sa.func.to_json(element), sa.Text()).label(column.name)

    def misfit(
        self, value: sa.ColumnElement[Any], column: ColumnSchema, into: Engine
    ) -> sa.ColumnElement[bool] | None:
        if column.type in ("float", "double") and not into.capabilities.stores_non_finite_floats:
            return self.non_finite(value)
        return None

    def stable_hash(self, text: str) -> str:
        return f"CAST('0x' || substr(md5({text}), 1, 8) AS BIGINT)"

    def digest_sql(self, conn: sa.Connection) -> DigestSQL | None:
        return _DUCKDB_DIGEST

    def text_length(self, element: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.func.length(element)  # characters

    def drop_temporary(self, conn: sa.Connection, table: sa.Table) -> None:
        quoted = conn.dialect.identifier_preparer.quote_identifier(table.name)
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{quoted}")


# -- loading ------------------------------------------------------------------------------------


class ArrowWriter:
    """Loads batches into a DuckDB table as Arrow columns, in one `INSERT … SELECT` each.

    DuckDB runs a prepared INSERT once per row (100,000 rows: 176 s), and scans an Arrow table
    in place (the same rows: 0.5 s). Each column travels as the Arrow type that holds its
    values exactly; a batch that Arrow cannot hold (a value its column's type does not take)
    is written row by row, so the database names the offending value as it would anyway.
    A multi-row INSERT is checked against the table as it was before it (a row pointing at
    another row of the same batch is refused), so a batch of a table that references itself
    is cut where a row points into its own part.
    """

    def __init__(
        self,
        conn: sa.Connection,
        table: str,
        columns: Sequence[ColumnSchema],
        key: Sequence[str],
        operation: str,
    ) -> None:
        import pyarrow as pa

        self._pa = pa
        self._raw: Any = conn.connection.dbapi_connection  # DuckDB's own, for register
        self._schema = pa.schema([(column.name, _arrow_type(pa, column)) for column in columns])
        self._as_text = [_hugeint(column) for column in columns]
        self._view = f"dsdb_incoming_{id(self):x}"
        quote = conn.dialect.identifier_preparer.quote_identifier
        names = [column.name for column in columns]
        listed = ", ".join(map(quote, names))
        into = f"INSERT INTO {quote(table)} ({listed})"
        # An update of an indexed column is a delete and an insert to DuckDB, refused for a
        # row another table references: such columns are updated apart, only where they
        # differ (https://duckdb.org/docs/sql/indexes#over-eager-constraint-checking).
        indexed = {name for index in _indexes(conn, table) for name in index} - set(key)
        updated = [name for name in names if name not in key and name not in indexed]
        conflict = _conflict_clause(quote, key, updated, operation)
        self._statements = [f"{into} SELECT {listed} FROM {self._view}{conflict}"]
        self._row_by_row = f"{into} VALUES ({', '.join('?' * len(names))}){conflict}"
        apart = [name for name in names if name in indexed]
        if operation == "upsert" and apart:
            target, new = quote(table), quote(self._view)
            self._statements.append(
                f"UPDATE {target} SET "
                + ", ".join(f"{quote(name)} = {new}.{quote(name)}" for name in apart)
                + f" FROM {new} WHERE "
                + " AND ".join(f"{target}.{quote(name)} = {new}.{quote(name)}" for name in key)
                + " AND ("
                + " OR ".join(
                    f"{target}.{quote(name)} IS DISTINCT FROM {new}.{quote(name)}" for name in apart
                )
                + ")"
            )
        position = {column.name: index for index, column in enumerate(columns)}
        self._self_references = [
            ([position[name] for name in fk.columns], [position[name] for name in fk.ref_columns])
            for fk in ENGINE.reflect_foreign_keys(conn, table)
            if fk.ref_table == table
            and all(name in position for name in (*fk.columns, *fk.ref_columns))
        ]

    def write(self, rows: Sequence[tuple[Any, ...]]) -> None:
        for part in self._parts(rows):
            try:
                arrays = [
                    self._pa.array(
                        [None if v is None else str(v) for v in values] if text else values,
                        type=field.type,
                    )
                    for values, field, text in zip(
                        zip(*part, strict=True), self._schema, self._as_text, strict=True
                    )
                ]
            except (self._pa.ArrowException, TypeError, ValueError, OverflowError):
                self._raw.executemany(self._row_by_row, [list(row) for row in part])
                continue
            self._raw.register(self._view, self._pa.Table.from_arrays(arrays, schema=self._schema))
            for statement in self._statements:
                self._raw.execute(statement)  # on failure the transaction is gone, view too
            self._raw.unregister(self._view)

    def _parts(self, rows: Sequence[tuple[Any, ...]]) -> Iterator[Sequence[tuple[Any, ...]]]:
        """`rows` in runs where no row points at a row of its own run (parents come first)."""
        if not self._self_references:
            yield rows
            return
        start = 0
        keys: list[set[tuple[Any, ...]]] = [set() for _ in self._self_references]
        for index, row in enumerate(rows):
            for (columns, _), seen in zip(self._self_references, keys, strict=True):
                if tuple(row[i] for i in columns) in seen:
                    yield rows[start:index]
                    start = index
                    for found in keys:
                        found.clear()
                    break
            for (_, referred), seen in zip(self._self_references, keys, strict=True):
                seen.add(tuple(row[i] for i in referred))
        yield rows[start:]


def _conflict_clause(
    quote: Callable[[str], str], key: Sequence[str], updated: Sequence[str], operation: str
) -> str:
    if operation == "insert":
        return ""
    target = ", ".join(quote(name) for name in key)
    if operation == "insert_ignore" or not updated:
        return f" ON CONFLICT ({target}) DO NOTHING"
    sets = ", ".join(f"{quote(name)} = excluded.{quote(name)}" for name in updated)
    return f" ON CONFLICT ({target}) DO UPDATE SET {sets}"


def _indexes(conn: sa.Connection, table: str) -> list[tuple[str, ...]]:
    """The columns of each index DuckDB keeps on `table`: its indexes, unique constraints,
    primary key and foreign keys (each has one)."""
    inspector = sa.inspect(conn)
    found = [tuple(c for c in index["column_names"] if c) for index in inspector.get_indexes(table)]
    found += [tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)]
    found += [tuple(fk["constrained_columns"]) for fk in inspector.get_foreign_keys(table)]
    found.append(tuple(inspector.get_pk_constraint(table)["constrained_columns"]))
    return found


def _arrow_type(pa: Any, column: ColumnSchema) -> Any:
    """The Arrow type that carries the column's values exactly; text for those Arrow has no
    type for (zone-aware times, JSON, UUIDs), which DuckDB casts on insert."""
    kind = column.type
    if _hugeint(column):
        return pa.large_string()  # Arrow's decimal128 holds 38 digits; DuckDB casts the text
    if kind == "decimal":
        precision, scale = (
            UNBOUNDED_DECIMAL if column.precision is None else (column.precision, column.scale)
        )
        return pa.decimal128(precision, scale or 0)
    if kind == "datetime":
        return pa.timestamp("us", tz="UTC" if column.timezone else None)
    if kind == "time" and not column.timezone:
        return pa.time64("us")
    return {
        "smallint": pa.int16(),
        "integer": pa.int32(),
        "bigint": pa.int64(),
        "boolean": pa.bool_(),
        "float": pa.float64(),  # DuckDB rounds to its FLOAT, as it would a bound double
        "double": pa.float64(),
        "binary": pa.large_binary(),
        "date": pa.date32(),
    }.get(kind, pa.large_string())


def _hugeint(column: ColumnSchema) -> bool:
    """Whether the column is the decimal(39,0) that DuckDB's own HUGEINT reads as: created as
    a HUGEINT again (a value beyond its ±1.7e38 is refused by DuckDB)."""
    return column.type == "decimal" and column.precision == 39 and not column.scale


def _utc_session(dbapi_connection: Any, _record: Any) -> None:
    """Zone-aware timestamps come back in the session's zone: UTC, as on PostgreSQL."""
    dbapi_connection.execute("SET TimeZone = 'UTC'")


def sequence_name(table: str, column: str) -> str:
    """A sequence name safe to write in `nextval('...')` whatever the table is called."""
    plain = re.sub(r"[^a-z0-9_]+", "_", f"{table}_{column}".lower()).strip("_")[:40]
    digest = hashlib.sha1(f"{table}\0{column}".encode()).hexdigest()[:8]
    return f"{plain}_{digest}_seq"


# -- the SQLAlchemy dialect -------------------------------------------------------------------


@functools.cache
def _dialect_class() -> type[Any]:
    """`DuckDBDialect`, built on first use: `duckdb_engine` takes 0.4 s to import, which a
    command that never opens a DuckDB file should not pay."""
    import duckdb
    from duckdb_engine import Dialect as DuckDBEngineDialect
    from duckdb_engine import DuckDBIdentifierPreparer
    from sqlalchemy.dialects.postgresql.base import PGDDLCompiler

    class DuckDBPreparer(DuckDBIdentifierPreparer):
        """Quotes every keyword DuckDB does not take as a bare name (`duckdb_engine` quotes
        only the reserved ones, so a column named `at` broke CREATE TABLE)."""

        def __init__(self, dialect: Any, **kwargs: Any) -> None:
            super().__init__(dialect, **kwargs)
            keywords = duckdb.execute(
                "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category <> 'unreserved'"
            ).fetchall()
            self.reserved_words.update(name for (name,) in keywords)

    class DuckDBDDLCompiler(PGDDLCompiler):
        """PostgreSQL's DDL, less SERIAL (DuckDB has none): an autoincrementing column takes its
        values from a sequence created with its table."""

        def get_column_specification(self, column: sa.Column[Any], **kwargs: Any) -> str:
            spec = self.dialect.type_compiler_instance.process(column.type, type_expression=column)
            name = self.preparer.format_column(column)
            default = self.get_column_default_string(column)
            if _autoincrements(column):
                default = f"nextval('{sequence_name(column.table.name, column.name)}')"
            parts = [name, spec]
            if default is not None:
                parts.append(f"DEFAULT {default}")
            if not column.nullable:
                parts.append("NOT NULL")
            return " ".join(parts)

        def visit_create_table(self, create: Any, **kwargs: Any) -> str:
            table = create.element
            sequences = [
                f"CREATE SEQUENCE IF NOT EXISTS {sequence_name(table.name, column.name)};\n"
                for column in table.columns
                if _autoincrements(column)
            ]
            created: str = super().visit_create_table(create, **kwargs)  # type: ignore[no-untyped-call]
            return "".join(sequences) + created

    class DuckDBDialect(DuckDBEngineDialect):
        """`duckdb_engine`'s dialect with reflection from DuckDB's own catalog."""

        ddl_compiler = DuckDBDDLCompiler
        preparer = DuckDBPreparer
        supports_statement_cache = False  # as duckdb_engine's, which compiles per statement
        # One multi-row INSERT is checked against the table as it was before the statement:
        # a row pointing at another row of the same batch (a self-reference) is refused.
        use_insertmanyvalues = False

        def _get_server_version_info(self, connection: Any) -> Any:
            # duckdb_engine answers PostgreSQL 8.0; `dsdb connections` shows DuckDB's own.
            return tuple(int(part) for part in re.findall(r"\d+", duckdb.__version__)[:3])

        def get_indexes(
            self, connection: Any, table_name: str, schema: Any = None, **kw: Any
        ) -> Any:
            return self._value_or_raise(  # type: ignore[no-untyped-call]
                self.get_multi_indexes(connection, schema=schema, filter_names=[table_name]),
                table_name,
                None,
            )

        def get_multi_columns(
            self,
            connection: Any,
            schema: Any = None,
            filter_names: Any = None,
            scope: Any = None,
            kind: Any = None,
            **kw: Any,
        ) -> Any:
            rows = _catalog(
                connection,
                "SELECT table_name, column_name, is_nullable, column_default, data_type "
                "FROM duckdb_columns() WHERE {where} ORDER BY table_name, column_index",
                filter_names,
            )
            return _by_table(
                rows,
                lambda row: {
                    "name": row[1],
                    "type": _reflected_type(row[4]),
                    "nullable": bool(row[2]),
                    "default": None if _NEXTVAL.search(row[3] or "") else row[3],
                    "autoincrement": bool(_NEXTVAL.search(row[3] or "")),
                },
                filter_names,
            )

        def get_multi_pk_constraint(
            self,
            connection: Any,
            schema: Any = None,
            filter_names: Any = None,
            scope: Any = None,
            kind: Any = None,
            **kw: Any,
        ) -> Any:
            found = {
                row[0]: row for row in self._constraints(connection, "PRIMARY KEY", filter_names)
            }
            return [
                (
                    (None, table),
                    {
                        "constrained_columns": list(found[table][1]) if table in found else [],
                        "name": None,
                    },
                )
                for table in filter_names or found
            ]

        def get_multi_foreign_keys(
            self,
            connection: Any,
            schema: Any = None,
            filter_names: Any = None,
            scope: Any = None,
            kind: Any = None,
            postgresql_ignore_search_path: Any = False,
            **kw: Any,
        ) -> Any:
            return _by_table(
                self._constraints(connection, "FOREIGN KEY", filter_names),
                lambda row: {
                    "name": None,  # DuckDB keeps no constraint names
                    "constrained_columns": list(row[1]),
                    "referred_schema": None,
                    "referred_table": row[2],
                    "referred_columns": list(row[3]),
                    "options": {},
                },
                filter_names,
            )

        def get_multi_unique_constraints(
            self,
            connection: Any,
            schema: Any = None,
            filter_names: Any = None,
            scope: Any = None,
            kind: Any = None,
            **kw: Any,
        ) -> Any:
            return _by_table(
                self._constraints(connection, "UNIQUE", filter_names),
                lambda row: {"name": None, "column_names": list(row[1])},
                filter_names,
            )

        def get_multi_indexes(
            self,
            connection: Any,
            schema: Any = None,
            filter_names: Any = None,
            scope: Any = None,
            kind: Any = None,
            **kw: Any,
        ) -> Any:
            rows = _catalog(
                connection,
                "SELECT table_name, index_name, is_unique, sql FROM duckdb_indexes() "
                "WHERE {where} ORDER BY table_name, index_name",
                filter_names,
            )
            return _by_table(
                rows,
                lambda row: {
                    "name": row[1],
                    "column_names": index_columns(row[3] or ""),
                    "unique": bool(row[2]),
                },
                filter_names,
            )

        def get_multi_check_constraints(
            self,
            connection: Any,
            schema: Any = None,
            filter_names: Any = None,
            scope: Any = None,
            kind: Any = None,
            **kw: Any,
        ) -> Any:
            return [((None, table), []) for table in filter_names or ()]

        def get_multi_table_comment(
            self,
            connection: Any,
            schema: Any = None,
            filter_names: Any = None,
            scope: Any = None,
            kind: Any = None,
            **kw: Any,
        ) -> Any:
            return [((None, table), {"text": None}) for table in filter_names or ()]

        def get_multi_table_options(
            self,
            connection: Any,
            schema: Any = None,
            filter_names: Any = None,
            scope: Any = None,
            kind: Any = None,
            **kw: Any,
        ) -> Any:
            return [((None, table), {}) for table in filter_names or ()]

        def _constraints(
            self, connection: Any, kind: str, filter_names: Iterable[str] | None
        ) -> list[Any]:
            """Rows of (table, columns, referenced table, referenced columns)."""
            return _catalog(
                connection,
                "SELECT table_name, constraint_column_names, referenced_table, "
                "referenced_column_names FROM duckdb_constraints() "
                f"WHERE constraint_type = '{kind}' AND {{where}} "
                "ORDER BY table_name, constraint_index",
                filter_names,
            )

    return DuckDBDialect


def __getattr__(name: str) -> Any:
    # SQLAlchemy finds the dialect by name: through the package's entry point, or
    # `registry.register` below once this module is loaded.
    if name == "DuckDBDialect":
        return _dialect_class()
    raise AttributeError(name)


def _autoincrements(column: sa.Column[Any]) -> bool:
    return column.identity is not None


def _catalog(connection: Any, query: str, filter_names: Iterable[str] | None) -> list[Any]:
    where = "database_name = current_database() AND schema_name = current_schema()"
    params: dict[str, Any] = {}
    if filter_names is not None:
        where += " AND list_contains(:names, table_name)"
        params["names"] = list(filter_names)
    return list(connection.execute(sa.text(query.format(where=where)), params))


def _by_table(rows: Iterable[Any], make: Any, filter_names: Iterable[str] | None) -> Any:
    grouped: dict[str, list[Any]] = {table: [] for table in filter_names or ()}
    for row in rows:
        grouped.setdefault(row[0], []).append(make(row))
    return [((None, table), found) for table, found in grouped.items() if found or filter_names]


def _reflected_type(declared: str) -> Any:
    """A DuckDB type name as the SQLAlchemy type `engines.base.portable_type` maps."""
    text = declared.upper()
    decimal = _DECIMAL.fullmatch(text)
    if decimal:
        return sa.Numeric(int(decimal.group(1)), int(decimal.group(2)))
    if text.endswith("]") or text.startswith(("STRUCT", "MAP", "UNION")):
        return sa.JSON()  # read as its JSON (`DuckDBEngine.read_expression`)
    if text == "HUGEINT":
        return sa.Numeric(39, 0)
    if text == "UBIGINT":
        return sa.Numeric(20, 0)
    return _REFLECTED.get(text, sa.Text)()


_REFLECTED: dict[str, Any] = {
    "BOOLEAN": sa.Boolean,
    "TINYINT": sa.SmallInteger,
    "UTINYINT": sa.SmallInteger,
    "SMALLINT": sa.SmallInteger,
    "USMALLINT": sa.Integer,
    "INTEGER": sa.Integer,
    "UINTEGER": sa.BigInteger,
    "BIGINT": sa.BigInteger,
    "FLOAT": sa.REAL,
    "DOUBLE": sa.Double,
    "VARCHAR": sa.Text,
    "BLOB": sa.LargeBinary,
    "DATE": sa.Date,
    "TIME": sa.Time,
    "TIME WITH TIME ZONE": lambda: sa.Time(timezone=True),
    "TIMESTAMP": sa.DateTime,
    "TIMESTAMP_S": sa.DateTime,
    "TIMESTAMP_MS": sa.DateTime,
    "TIMESTAMP_NS": sa.DateTime,
    "TIMESTAMP WITH TIME ZONE": lambda: sa.DateTime(timezone=True),
    "UUID": sa.Uuid,
    "JSON": sa.JSON,
}


def index_columns(create_index: str) -> list[str | None]:
    """The columns of a `CREATE INDEX` statement as DuckDB keeps it, each None where it is an
    expression (not portable). The column list is the statement's last parenthesised group."""
    groups: list[str] = []
    depth, quoted, start = 0, False, 0
    for position, char in enumerate(create_index):
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char == "(":
            depth += 1
            if depth == 1:
                start = position + 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                groups.append(create_index[start:position])
    return [_identifier(item.strip()) for item in _split_top_level(groups[-1] if groups else "")]


def _split_top_level(text: str) -> list[str]:
    items, depth, quoted, start = [], 0, False, 0
    for position, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:position])
            start = position + 1
    items.append(text[start:])
    return [item for item in items if item.strip()]


def _identifier(item: str) -> str | None:
    if len(item) >= 2 and item[0] == item[-1] == '"' and '"' not in item[1:-1].replace('""', ""):
        return item[1:-1].replace('""', '"')
    return item if _PLAIN_NAME.fullmatch(item) else None


registry.register("duckdb.dsdb", __name__, "DuckDBDialect")

ENGINE = DuckDBEngine()


# -- the portable digest ------------------------------------------------------------------------


class _DuckDBDigest(DigestSQL):
    """DuckDB writes a double's shortest exact digits and every other form the digest needs,
    independently of its session's settings."""

    def session(self, conn: sa.Connection) -> AbstractContextManager[None]:
        return nullcontext()

    def integer_text(self, q: str) -> str:
        return f"CAST({q} AS VARCHAR)"

    def boolean_text(self, q: str, *, stored_as_boolean: bool) -> str:
        if stored_as_boolean:
            return f"CASE {q} WHEN true THEN 'true' WHEN false THEN 'false' END"
        other = f"'?' || CAST({q} AS VARCHAR)"
        return f"CASE {q} WHEN 1 THEN 'true' WHEN 0 THEN 'false' ELSE {other} END"

    def float_text(self, q: str, *, single: bool) -> str:
        """Its text is Python's repr but for the exponent form (`d.ddde±xx`), written out as
        a plain decimal here, and a trailing `.0`."""
        value = f"CAST(CAST({q} AS FLOAT) AS DOUBLE)" if single else f"CAST({q} AS DOUBLE)"
        text = f"CAST({value} AS VARCHAR)"
        sign = f"CASE WHEN {value} < 0 THEN '-' ELSE '' END"
        power = f"CAST(split_part({text}, 'e', 2) AS INTEGER)"
        digits = f"replace(ltrim(split_part({text}, 'e', 1), '-'), '.', '')"
        width = f"length({digits})"
        small = f"{sign} || '0.' || repeat('0', -{power} - 1) || {digits}"
        whole = f"{sign} || {digits} || repeat('0', {power} - {width} + 1)"
        point = f"{sign} || left({digits}, {power} + 1) || '.' || substr({digits}, {power} + 2)"
        plain = (
            f"CASE WHEN {power} < 0 THEN {small} "
            f"WHEN {width} - 1 <= {power} THEN {whole} ELSE {point} END"
        )
        return (
            f"CASE WHEN {value} = 0 THEN '0' WHEN contains({text}, 'e') THEN {plain} "
            f"WHEN suffix({text}, '.0') THEN left({text}, length({text}) - 2) ELSE {text} END"
        )

    def decimal_text(self, q: str) -> str:
        text = f"CAST({q} AS VARCHAR)"
        return (
            f"CASE WHEN {q} = 0 THEN '0' WHEN contains({text}, '.') "
            f"THEN rtrim(rtrim({text}, '0'), '.') ELSE {text} END"
        )

    def binary_text(self, q: str) -> str:
        return f"lower(hex({q}))"

    def date_text(self, q: str) -> str:
        return f"strftime({q}, '%Y-%m-%d')"

    def datetime_text(self, q: str, *, zoned: bool) -> str:
        utc = f"timezone('UTC', {q})" if zoned else q
        return f"strftime({utc}, '%Y-%m-%dT%H:%M:%S.%f')"

    def time_text(self, q: str) -> str:
        # A time with a zone keeps its local time and drops the zone, as in Python.
        return f"strftime(DATE '2000-01-01' + CAST({q} AS TIME), '%H:%M:%S.%f')"

    def uuid_text(self, q: str) -> str:
        return f"CAST({q} AS VARCHAR)"

    def row_hash(self, parts: Sequence[str]) -> str:
        row = " || chr(31) || ".join(f"({part})" for part in parts)
        # The first 16 hex digits, unsigned: sums agree modulo 2**64 with the signed ones.
        return f"CAST('0x' || substr(md5({row}), 1, 16) AS UBIGINT)"


_DUCKDB_DIGEST = _DuckDBDigest()
