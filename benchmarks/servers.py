"""Scratch databases on the PostgreSQL and MariaDB servers: uniquely named, dropped at the end.

Override the servers with DSDB_BENCH_POSTGRES (a libpq conninfo) and DSDB_BENCH_MARIADB
(host:port); both default to the local development servers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
import pymysql

POSTGRES_ADMIN = os.environ.get("DSDB_BENCH_POSTGRES", "host=127.0.0.1 port=5432 user=postgres")
MARIADB_HOST, _, _MARIADB_PORT = os.environ.get("DSDB_BENCH_MARIADB", "127.0.0.1:3306").partition(
    ":"
)
MARIADB_PORT = int(_MARIADB_PORT or 3306)
MARIADB_USER = "root"


def postgres_conninfo(database: str) -> str:
    return f"{POSTGRES_ADMIN} dbname={database}"


def postgres_url(database: str, scheme: str = "postgresql+psycopg") -> str:
    """A URL for `database`: SQLAlchemy's by default, `scheme="postgresql"` for other tools."""
    params = dict(part.split("=", 1) for part in POSTGRES_ADMIN.split())
    return (
        f"{scheme}://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}"
        f":{params.get('port', '5432')}/{database}"
    )


def mariadb_connect(database: str | None = None, local_infile: bool = False) -> pymysql.Connection:
    return pymysql.connect(
        host=MARIADB_HOST,
        port=MARIADB_PORT,
        user=MARIADB_USER,
        database=database,
        local_infile=local_infile,
    )


def mariadb_url(database: str) -> str:
    return f"mysql+pymysql://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}/{database}"


def server_versions() -> dict[str, str]:
    with psycopg.connect(postgres_conninfo("postgres")) as conn:
        postgres = str(conn.execute("SHOW server_version").fetchone()[0])
    conn2 = mariadb_connect()
    try:
        with conn2.cursor() as cur:
            cur.execute("SELECT VERSION()")
            mariadb = str(cur.fetchone()[0])
    finally:
        conn2.close()
    return {"postgresql": postgres, "mariadb": mariadb}


@dataclass
class Scratch:
    """The scratch databases of one benchmark run; `reset` empties one, `drop_all` ends them."""

    prefix: str = field(default_factory=lambda: f"dsdb_bench_{uuid.uuid4().hex[:8]}")
    created: list[tuple[str, str]] = field(default_factory=list)

    def name(self, role: str) -> str:
        return f"{self.prefix}_{role}"

    def postgres(self, role: str) -> str:
        """Create (or recreate, empty) the PostgreSQL database for `role`; its name."""
        name = self.name(role)
        with psycopg.connect(postgres_conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
        self._remember("postgresql", name)
        return name

    def mariadb(self, role: str) -> str:
        """Create (or recreate, empty) the MariaDB database for `role`; its name."""
        name = self.name(role)
        conn = mariadb_connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {name}")
                cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        finally:
            conn.close()
        self._remember("mariadb", name)
        return name

    def _remember(self, server: str, name: str) -> None:
        if (server, name) not in self.created:
            self.created.append((server, name))

    def drop(self, role: str) -> None:
        """Drop the databases of `role` now (a measured target, once it has been checked)."""
        name = self.name(role)
        for server in ("postgresql", "mariadb"):
            if (server, name) in self.created:
                self._drop(server, name)
                self.created.remove((server, name))

    def drop_all(self) -> None:
        for server, name in self.created:
            self._drop(server, name)
        self.created.clear()

    @staticmethod
    def _drop(server: str, name: str) -> None:
        if server == "postgresql":
            with psycopg.connect(postgres_conninfo("postgres"), autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            return
        conn = mariadb_connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {name}")
        finally:
            conn.close()


@contextmanager
def scratch() -> Iterator[Scratch]:
    databases = Scratch()
    try:
        yield databases
    finally:
        databases.drop_all()


def count_rows(kind: str, target: str, table: str) -> int:
    """Rows in `table` of a SQLite or DuckDB file, a PostgreSQL or MariaDB database."""
    if kind == "sqlite":
        import sqlite3

        conn = sqlite3.connect(target)
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            conn.close()
    if kind == "postgresql":
        with psycopg.connect(postgres_conninfo(target)) as pg:
            return int(pg.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    if kind == "duckdb":
        import duckdb  # installed with the peers (benchmarks/setup.sh)

        with duckdb.connect(target, read_only=True) as conn:
            found = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            return int(found[0]) if found else 0
    maria = mariadb_connect(target)
    try:
        with maria.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {table}")
            return int(cur.fetchone()[0])
    finally:
        maria.close()
