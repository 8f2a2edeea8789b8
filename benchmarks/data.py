"""Deterministic benchmark data: a parent table of N mixed-type rows and a child of N/5.

The same rows (from one seeded generator) are written to SQLite, as SQLite stores them, and
to PostgreSQL with proper types, so every path moves the same data.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

SEED = 20261127
PARENT_COLUMNS = (
    "id", "name", "score", "amount", "active", "born", "updated_at", "note", "payload"
)  # fmt: skip
CHILD_COLUMNS = ("id", "parent_id", "label", "quantity", "price")
TABLES = {"parent": PARENT_COLUMNS, "child": CHILD_COLUMNS}

SQLITE_DDL = (
    "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, "
    "amount NUMERIC(12, 2), active BOOLEAN, born DATE, "
    "updated_at TIMESTAMP WITH TIME ZONE, note TEXT, payload BLOB)",
    "CREATE TABLE child (id INTEGER PRIMARY KEY, "
    "parent_id INTEGER NOT NULL REFERENCES parent (id), label TEXT, quantity INTEGER, "
    "price REAL)",
    "CREATE INDEX child_parent_id ON child (parent_id)",
)
POSTGRES_DDL = (
    "CREATE TABLE parent (id bigint PRIMARY KEY, name text NOT NULL, score double precision, "
    "amount numeric(12, 2), active boolean, born date, updated_at timestamptz, note text, "
    "payload bytea)",
    "CREATE TABLE child (id bigint PRIMARY KEY, "
    "parent_id bigint NOT NULL REFERENCES parent (id), label text, quantity integer, "
    "price double precision)",
)
POSTGRES_INDEXES = ("CREATE INDEX child_parent_id ON child (parent_id)",)
MARIADB_DDL = (
    "CREATE TABLE parent (id BIGINT PRIMARY KEY, name TEXT NOT NULL, score DOUBLE, "
    "amount DECIMAL(12, 2), active BOOLEAN, born DATE, updated_at DATETIME(6), note TEXT, "
    "payload BLOB) ENGINE=InnoDB",
    "CREATE TABLE child (id BIGINT PRIMARY KEY, parent_id BIGINT NOT NULL, label TEXT, "
    "quantity INT, price DOUBLE, INDEX child_parent_id (parent_id), "
    "FOREIGN KEY (parent_id) REFERENCES parent (id)) ENGINE=InnoDB",
)

_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")
_EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
_BIRTH = dt.date(1950, 1, 1)


def child_count(rows: int) -> int:
    return rows // 5


def parent_rows(rows: int) -> Iterator[tuple[Any, ...]]:
    """N parent rows as typed Python values, the same for the same N."""
    rng = random.Random(SEED)
    for key in range(1, rows + 1):
        word = _WORDS[key % len(_WORDS)]
        yield (
            key,
            f"{word}-{key:09d}",
            rng.random() * 1000.0,
            Decimal(rng.randrange(-10_000_000, 10_000_000)).scaleb(-2),
            rng.random() < 0.5,
            _BIRTH + dt.timedelta(days=rng.randrange(25_000)),
            _EPOCH + dt.timedelta(seconds=rng.randrange(200_000_000), microseconds=key % 10**6),
            None if rng.random() < 0.3 else f"note {rng.getrandbits(40):x} for {word}",
            rng.randbytes(16 + key % 48),
        )


def child_rows(rows: int) -> Iterator[tuple[Any, ...]]:
    """N/5 child rows, each pointing at one of the N parents."""
    rng = random.Random(SEED + 1)
    for key in range(1, child_count(rows) + 1):
        yield (
            key,
            rng.randrange(1, rows + 1),
            f"line {key}",
            rng.randrange(1, 100),
            round(rng.random() * 500.0, 4),
        )


def _sqlite_value(value: Any) -> Any:
    """A value as SQLite stores it: ISO text for dates and times, 0/1 for booleans."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _insert_sql(table: str) -> str:
    columns = TABLES[table]
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def write_sqlite(path: Path, rows: int) -> None:
    """Create the SQLite source database at `path` with N parents and N/5 children."""
    conn = sqlite3.connect(path)
    try:
        for statement in SQLITE_DDL:
            conn.execute(statement)
        for table, generate in (("parent", parent_rows), ("child", child_rows)):
            conn.executemany(
                _insert_sql(table), (tuple(map(_sqlite_value, r)) for r in generate(rows))
            )
        conn.commit()
        conn.execute("ANALYZE")
        conn.commit()
    finally:
        conn.close()


def write_postgres(conninfo: str, rows: int) -> None:
    """Create the same tables with proper types in an empty PostgreSQL database."""
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        for statement in POSTGRES_DDL:
            cur.execute(statement)
        for table, generate in (("parent", parent_rows), ("child", child_rows)):
            with cur.copy(f"COPY {table} ({', '.join(TABLES[table])}) FROM STDIN") as copy:
                for row in generate(rows):
                    copy.write_row(row)
        for statement in POSTGRES_INDEXES:
            cur.execute(statement)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
