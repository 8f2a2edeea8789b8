"""Whole-database facts and operations: which tables exist, does the database exist, drop it.

Teardowns and `ConnectionManager.teardown` both go through here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Literal

import sqlalchemy as sa

from dsdb_plan.connection import Connection
from dsdb_plan.engines import Engine, engine_for
from dsdb_plan.errors import DsdbError


def present_tables(engine: sa.Engine, tables: Collection[str] | Literal["all"]) -> list[str]:
    """The tables among `tables` (or all) that exist now."""
    existing = sa.inspect(engine).get_table_names()
    if tables == "all":
        return sorted(existing)
    return [table for table in tables if table in existing]


def row_counts(engine: sa.Engine, tables: Iterable[str]) -> dict[str, int]:
    """The row count of each of `tables` that exists (one COUNT each, on one connection)."""
    with engine.connect() as conn:
        existing = set(sa.inspect(conn).get_table_names())
        count = sa.select(sa.func.count())
        return {
            table: int(conn.execute(count.select_from(sa.table(table))).scalar_one())
            for table in tables
            if table in existing
        }


def _admin_engine(connection: Connection, engine: Engine) -> sa.Engine:
    """An engine on the same server but outside the database (it cannot drop itself)."""
    url = connection.sqlalchemy_url()
    # `URL.set` ignores None (it means "unchanged"), and would leave MySQL in the database.
    return sa.create_engine(
        url._replace(database=engine.admin_database),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )


def _on_server(connection: Connection, engine: Engine, statement: str) -> None:
    """Run `statement`, its `{}` the quoted database name, on the server outside the database."""
    admin = _admin_engine(connection, engine)
    try:
        with admin.connect() as conn:
            quoted = admin.dialect.identifier_preparer.quote(connection.link)
            conn.exec_driver_sql(statement.format(quoted))
    finally:
        admin.dispose()


def database_exists(connection: Connection) -> bool:
    """Whether the database itself exists (a SQLite file; a database on a server)."""
    engine = engine_for(connection.dialect)
    if engine.registration.embedded:
        return not connection.is_sqlite_file or Path(connection.link).exists()
    admin = _admin_engine(connection, engine)
    try:
        with admin.connect() as conn:
            query = sa.text(engine.database_exists_sql)
            return conn.execute(query, {"name": connection.link}).first() is not None
    finally:
        admin.dispose()


def _server_engine(connection: Connection) -> Engine | None:
    """The engine module of a database on a server (PostgreSQL, MariaDB/MySQL), else None."""
    engine = engine_for(connection.dialect)
    return None if engine.registration.embedded else engine


def create_database(connection: Connection) -> None:
    """CREATE DATABASE on the server, unless it exists (another run may have made it)."""
    engine = _server_engine(connection)
    if engine is None:
        raise DsdbError(f"creating a {connection.dialect} database is not supported")
    if database_exists(connection):  # PostgreSQL has no CREATE DATABASE IF NOT EXISTS
        return
    _on_server(connection, engine, "CREATE DATABASE {}")


def missing_database_hint(connection: Connection, name: str, message: str) -> str:
    """How to get past a server saying the database does not exist (or that apply will
    create it), or "" (for any other failure, such as a login role that does not exist)."""
    engine = _server_engine(connection)
    said = engine.missing_database_message if engine else None
    if not said or said.format(name=connection.link) not in message:
        return ""
    if connection.create_database:
        return f"; the next apply creates it (create_database: true on connection '{name}')"
    return (
        f"; create it (CREATE DATABASE {connection.link}), or set `create_database: true` on "
        f"connection '{name}' and apply creates it"
    )


def drop_database(connection: Connection) -> None:
    """Delete the SQLite file, or DROP DATABASE on the server. Close engines on it first."""
    engine = engine_for(connection.dialect)
    if engine.registration.embedded:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(connection.link + suffix).unlink(missing_ok=True)
        return
    _on_server(connection, engine, "DROP DATABASE IF EXISTS {}" + engine.drop_database_options)
