"""Read what a database holds for the landed comparison: schema, keys and a sample of rows.

Each engine is read with its own driver (the values a user of that database gets back) and
its own catalogue; landed.py compares the results.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

import psycopg
from sqlalchemy import create_engine, inspect

from benchmarks.landed import Column, Database, Table
from benchmarks.servers import mariadb_connect, mariadb_url, postgres_conninfo, postgres_url

#: Rows per table compared value by value, the first by key: enough to meet every kind of
#: value the generator makes, and bounded at 10,000,000 rows.
SAMPLE_ROWS = 100_000


def observe(engine: str, location: str, tables: Iterable[str]) -> Database:
    """The tables `tables` of the database at `location` (a file or a database name)."""
    reader = {
        "sqlite": _sqlite,
        "postgresql": _server,
        "mariadb": _server,
        "duckdb": _duckdb,
    }[engine]
    found = reader(engine, location, list(tables))
    return Database(engine, found)


def _sqlite(engine: str, location: str, tables: list[str]) -> dict[str, Table]:
    conn = sqlite3.connect(f"file:{location}?mode=ro", uri=True)
    # Text that is not UTF-8 (bytes a tool stored as text) is read, not refused.
    conn.text_factory = lambda raw: raw.decode("utf-8", "backslashreplace")
    try:
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        found = {}
        for name in (t for t in tables if t in names):
            info = conn.execute(f'PRAGMA table_info("{name}")').fetchall()
            key = tuple(row[1] for row in sorted(info, key=lambda r: r[5]) if row[5])
            columns = tuple(
                Column(
                    row[1],
                    row[2],
                    nullable=not row[3] and not row[5],
                    # A lone INTEGER PRIMARY KEY is the rowid: SQLite numbers new rows.
                    identity=len(key) == 1 and row[5] == 1 and row[2].upper() == "INTEGER",
                )
                for row in info
            )
            references: dict[int, tuple[str, list[str]]] = {}
            for row in conn.execute(f'PRAGMA foreign_key_list("{name}")'):
                references.setdefault(row[0], (row[2], []))[1].append(row[3])
            indexes = tuple(
                tuple(c[2] for c in conn.execute(f'PRAGMA index_info("{row[1]}")'))
                for row in conn.execute(f'PRAGMA index_list("{name}")')
                if row[3] == "c"
            )
            found[name] = Table(
                name,
                columns,
                key,
                tuple((tuple(cols), parent) for parent, cols in references.values()),
                indexes,
                conn.execute(_sample(name, columns, '"')).fetchall(),
            )
        return found
    finally:
        conn.close()


def _server(engine: str, location: str, tables: list[str]) -> dict[str, Table]:
    url = postgres_url(location) if engine == "postgresql" else mariadb_url(location)
    sql_engine = create_engine(url)
    try:
        inspector = inspect(sql_engine)
        present = set(inspector.get_table_names())
        found = {}
        for name in (t for t in tables if t in present):
            columns = tuple(
                Column(
                    column["name"],
                    _type_name(column["type"], sql_engine.dialect),
                    column["nullable"],
                    identity=bool(
                        column.get("identity")
                        or column.get("autoincrement") is True
                        or str(column.get("default") or "").startswith("nextval(")
                    ),
                )
                for column in inspector.get_columns(name)
            )
            found[name] = Table(
                name,
                columns,
                tuple(inspector.get_pk_constraint(name)["constrained_columns"]),
                tuple(
                    (tuple(fk["constrained_columns"]), fk["referred_table"])
                    for fk in inspector.get_foreign_keys(name)
                ),
                tuple(tuple(ix["column_names"]) for ix in inspector.get_indexes(name)),
                _server_rows(engine, location, _sample(name, columns, _quote(engine))),
            )
        return found
    finally:
        sql_engine.dispose()


def _type_name(type_: Any, dialect: Any) -> str:
    try:
        return str(type_.compile(dialect=dialect))
    except Exception:  # a type SQLAlchemy does not know compiles to nothing: keep its name
        return str(type_)


def _server_rows(engine: str, location: str, query: str) -> list[tuple[Any, ...]]:
    if engine == "postgresql":
        with psycopg.connect(postgres_conninfo(location)) as conn:
            return conn.execute(query).fetchall()
    conn = mariadb_connect(location)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return list(cur.fetchall())
    finally:
        conn.close()


def _duckdb(engine: str, location: str, tables: list[str]) -> dict[str, Table]:
    import duckdb  # installed with the peers (benchmarks/setup.sh)

    conn = duckdb.connect(location, read_only=True)
    try:
        found = {}
        for name in tables:
            listed = conn.execute(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = ?",
                [name],
            ).fetchone()
            if listed is None:
                continue
            schema = listed[0]
            constraints = conn.execute(
                "SELECT constraint_type, constraint_column_names, referenced_table "
                "FROM duckdb_constraints() WHERE schema_name = ? AND table_name = ?",
                [schema, name],
            ).fetchall()
            key = next((tuple(c[1]) for c in constraints if c[0] == "PRIMARY KEY"), ())
            columns = tuple(
                Column(
                    row[0],
                    row[1],
                    row[2] == "YES" and row[0] not in key,
                    identity=bool(row[3] and str(row[3]).startswith("nextval(")),
                )
                for row in conn.execute(
                    "SELECT column_name, data_type, is_nullable, column_default "
                    "FROM information_schema.columns WHERE table_schema = ? "
                    "AND table_name = ? ORDER BY ordinal_position",
                    [schema, name],
                ).fetchall()
            )
            indexes = conn.execute(
                "SELECT expressions FROM duckdb_indexes() WHERE schema_name = ? AND table_name = ?",
                [schema, name],
            ).fetchall()
            found[name] = Table(
                name,
                columns,
                key,
                tuple((tuple(c[1]), c[2]) for c in constraints if c[0] == "FOREIGN KEY"),
                tuple(tuple(str(e).strip('[]"') for e in row[0]) for row in indexes),
                conn.execute(_sample(f'"{schema}"."{name}"', columns, '"')).fetchall(),
            )
        return found
    finally:
        conn.close()


def _quote(engine: str) -> str:
    return "`" if engine == "mariadb" else '"'


def _sample(table: str, columns: tuple[Column, ...], quote: str) -> str:
    names = ", ".join(f"{quote}{c.name}{quote}" for c in columns)
    return f"SELECT {names} FROM {table} ORDER BY {quote}id{quote} LIMIT {SAMPLE_ROWS}"
