"""Plain-driver baselines: what a careful script with the bare drivers achieves, per path.

Each runs in its own process (`python -m benchmarks.baselines NAME JSON_ARGS`) so its time
and peak memory are measured the same way as dsdb's. Each creates its target tables itself,
as dsdb does.
"""

from __future__ import annotations

import csv
import gzip
import json
import sqlite3
import sys
from collections.abc import Callable, Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.data import MARIADB_DDL, POSTGRES_DDL, POSTGRES_INDEXES, TABLES
from benchmarks.servers import mariadb_connect, postgres_conninfo

#: Rows per fetch and per executemany; the same order of batch as dsdb's default.
BATCH = 10_000


def _select(table: str) -> str:
    return f"SELECT {', '.join(TABLES[table])} FROM {table} ORDER BY id"


def sqlite_to_sqlite(source: str, target: str) -> None:
    """ATTACH the source and INSERT ... SELECT each table, in one transaction."""
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        conn.execute("ATTACH DATABASE ? AS src", (source,))
        tables = [
            conn.execute("SELECT sql FROM src.sqlite_master WHERE name = ?", (t,)).fetchone()[0]
            for t in TABLES
        ]
        indexes = conn.execute(
            "SELECT sql FROM src.sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        ).fetchall()
        conn.execute("BEGIN")
        for statement in tables:
            conn.execute(statement)
        for table in TABLES:
            conn.execute(f"INSERT INTO main.{table} SELECT * FROM src.{table}")
        for (statement,) in indexes:
            conn.execute(statement)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _sqlite_rows(source: str, table: str) -> Iterable[tuple[Any, ...]]:
    conn = sqlite3.connect(source)
    try:
        yield from conn.execute(_select(table))
    finally:
        conn.close()


def sqlite_to_postgres(source: str, target: str) -> None:
    """Rows read with sqlite3, written with psycopg's COPY FROM STDIN and write_row."""
    with psycopg.connect(postgres_conninfo(target)) as conn, conn.cursor() as cur:
        for statement in POSTGRES_DDL:
            cur.execute(statement)
        for table, columns in TABLES.items():
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in _sqlite_rows(source, table):
                    copy.write_row(row)
        for statement in POSTGRES_INDEXES:
            cur.execute(statement)


def postgres_to_mariadb(source: str, target: str) -> None:
    """A psycopg server-side cursor feeding PyMySQL executemany (multi-row INSERTs)."""
    maria = mariadb_connect(target)
    try:
        with maria.cursor() as out:
            for statement in MARIADB_DDL:
                out.execute(statement)
        with psycopg.connect(postgres_conninfo(source), options="-c TimeZone=UTC") as pg:
            for table, columns in TABLES.items():
                insert = (
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"VALUES ({', '.join(['%s'] * len(columns))})"
                )
                with pg.cursor(name=f"read_{table}") as cur, maria.cursor() as out:
                    cur.execute(_select(table))
                    while rows := cur.fetchmany(BATCH):
                        out.executemany(insert, rows)
                maria.commit()
    finally:
        maria.close()


#: PostgreSQL's text COPY of the parent and child rows in the layout LOAD DATA reads by
#: default (tab-separated, `\\N` for NULL, backslash escapes): timestamps as UTC wall
#: time for DATETIME(6), booleans as 0/1, binary as hex that LOAD DATA unhexes.
_LOAD_DATA_SELECT = {
    "parent": "SELECT id, name, score, amount, active::int, born, "
    "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), note, "
    "encode(payload, 'hex') FROM parent",
    "child": "SELECT id, parent_id, label, quantity, price FROM child",
}
_LOAD_DATA_COLUMNS = {
    "parent": "(id, name, score, amount, active, born, updated_at, note, @payload) "
    "SET payload = UNHEX(@payload)",
    "child": "(id, parent_id, label, quantity, price)",
}


def postgres_to_mariadb_load_data(source: str, target: str, folder: str) -> None:
    """Each table out with PostgreSQL's COPY TO STDOUT into a file, in with MariaDB's
    `LOAD DATA LOCAL INFILE`: the engines' own bulk paths, with one file between them."""
    maria = mariadb_connect(target, local_infile=True)
    try:
        with maria.cursor() as out:
            for statement in MARIADB_DDL:
                out.execute(statement)
        with psycopg.connect(postgres_conninfo(source)) as pg, pg.cursor() as cur:
            for table in TABLES:
                path = Path(folder) / f"{table}.tsv"
                with (
                    path.open("wb") as sink,
                    cur.copy(f"COPY ({_LOAD_DATA_SELECT[table]}) TO STDOUT") as copy,
                ):
                    for chunk in copy:
                        sink.write(chunk)
                with maria.cursor() as out:
                    out.execute(
                        f"LOAD DATA LOCAL INFILE %s INTO TABLE {table} "
                        f"CHARACTER SET utf8mb4 {_LOAD_DATA_COLUMNS[table]}",
                        (str(path),),
                    )
                maria.commit()
                path.unlink()
    finally:
        maria.close()


def backup_sqlite_api(source: str, folder: str) -> None:
    """SQLite's online backup API: the whole database file, page by page."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    with (
        closing(sqlite3.connect(source)) as conn,
        closing(sqlite3.connect(Path(folder) / "backup.db")) as copy,
    ):
        conn.backup(copy)


def _csv_value(value: Any) -> Any:
    return "\\x" + value.hex() if isinstance(value, bytes) else value


def backup_csv(source: str, folder: str, level: int) -> None:
    """Each table to a gzip'd CSV file with the csv module (binary as PostgreSQL hex), at
    dsdb's gzip level (given by the caller, so this process need not import dsdb)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        path = Path(folder) / f"{table}.csv.gz"
        with gzip.open(path, "wt", compresslevel=level, newline="") as handle:
            writer = csv.writer(handle)
            for row in _sqlite_rows(source, table):
                writer.writerow([_csv_value(value) for value in row])


def restore_csv(folder: str, target: str) -> None:
    """Each gzip'd CSV file into PostgreSQL with COPY ... FROM STDIN (FORMAT csv)."""
    with psycopg.connect(postgres_conninfo(target)) as conn, conn.cursor() as cur:
        for statement in POSTGRES_DDL:
            cur.execute(statement)
        for table, columns in TABLES.items():
            statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
            with (
                gzip.open(Path(folder) / f"{table}.csv.gz", "rb") as data,
                cur.copy(statement) as copy,
            ):
                while chunk := data.read(1 << 20):
                    copy.write(chunk)
        for statement in POSTGRES_INDEXES:
            cur.execute(statement)


BASELINES: dict[str, Callable[..., None]] = {
    "sqlite_to_sqlite": sqlite_to_sqlite,
    "sqlite_to_postgres": sqlite_to_postgres,
    "postgres_to_mariadb": postgres_to_mariadb,
    "postgres_to_mariadb_load_data": postgres_to_mariadb_load_data,
    "backup_sqlite_api": backup_sqlite_api,
    "backup_csv": backup_csv,
    "restore_csv": restore_csv,
}

if __name__ == "__main__":
    BASELINES[sys.argv[1]](**json.loads(sys.argv[2]))
