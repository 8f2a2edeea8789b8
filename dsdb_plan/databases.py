"""Whole-database facts and operations: which tables exist, does the database exist, drop it.

Teardowns and `ConnectionManager.teardown` both go through here.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Literal

import sqlalchemy as sa

from dsdb_plan.connection import Connection
from dsdb_plan.errors import DsdbError

_SERVERS = ("postgresql", "mysql", "mariadb")


def present_tables(engine: sa.Engine, tables: Collection[str] | Literal["all"]) -> list[str]:
    """The tables among `tables` (or all) that exist now."""
    existing = sa.inspect(engine).get_table_names()
    if tables == "all":
        return sorted(existing)
    return [table for table in tables if table in existing]


def _admin_engine(connection: Connection) -> sa.Engine:
    """An engine on the same server but outside the database (it cannot drop itself)."""
    url = connection.sqlalchemy_url()
    outside = "postgres" if url.get_backend_name() == "postgresql" else None
    # `URL.set` ignores None (it means "unchanged"), and would leave MySQL in the database.
    return sa.create_engine(
        url._replace(database=outside), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )


def database_exists(connection: Connection) -> bool:
    """Whether the database itself exists (a SQLite file; a database on a server)."""
    if connection.dialect == "sqlite":
        return not connection.is_sqlite_file or Path(connection.link).exists()
    if connection.dialect not in _SERVERS:
        return True
    engine = _admin_engine(connection)
    try:
        with engine.connect() as conn:
            if connection.dialect == "postgresql":
                query = sa.text("SELECT 1 FROM pg_database WHERE datname = :name")
            else:
                query = sa.text(
                    "SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"
                )
            return conn.execute(query, {"name": connection.link}).first() is not None
    finally:
        engine.dispose()


def create_database(connection: Connection) -> None:
    """CREATE DATABASE on the server, unless it exists (another run may have made it)."""
    if connection.dialect not in _SERVERS:
        raise DsdbError(f"creating a {connection.dialect} database is not supported")
    if database_exists(connection):  # PostgreSQL has no CREATE DATABASE IF NOT EXISTS
        return
    engine = _admin_engine(connection)
    try:
        with engine.connect() as conn:
            quoted = engine.dialect.identifier_preparer.quote(connection.link)
            conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
    finally:
        engine.dispose()


def missing_database_hint(connection: Connection, name: str, message: str) -> str:
    """How to get past a server saying the database does not exist, or ""."""
    if connection.dialect not in _SERVERS or not (
        "does not exist" in message or "Unknown database" in message
    ):
        return ""
    return (
        f"; create it (CREATE DATABASE {connection.link}), or set `create_database: true` on "
        f"connection '{name}' and apply creates it"
    )


def drop_database(connection: Connection) -> None:
    """Delete the SQLite file, or DROP DATABASE on the server. Close engines on it first."""
    if connection.dialect == "sqlite":
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(connection.link + suffix).unlink(missing_ok=True)
        return
    if connection.dialect not in _SERVERS:
        raise DsdbError(f"dropping a whole {connection.dialect} database is not supported")
    engine = _admin_engine(connection)
    try:
        with engine.connect() as conn:
            quoted = engine.dialect.identifier_preparer.quote(connection.link)
            force = " WITH (FORCE)" if connection.dialect == "postgresql" else ""
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}{force}")
    finally:
        engine.dispose()
