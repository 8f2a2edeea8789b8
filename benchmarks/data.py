"""Deterministic benchmark data: a parent table of N mixed-type rows and a child of N/5.

The rows are generated in SQL by each database itself (a recursive CTE in SQLite,
`generate_series` in PostgreSQL), from the same integer arithmetic on each row's key, so
both hold the same values: SQLite as SQLite stores them (ISO text for dates and times, 0/1
for booleans), PostgreSQL with proper types. No value passes through Python: 12,000,000
rows take about a minute, where generating them in Python took 10 to 20 (issue 15).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg

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
#: Odd multipliers of a Weyl sequence per column: (key * M) mod 2^32 scatters the keys over
#: 32 bits in plain 64-bit integer arithmetic, the same in SQLite and PostgreSQL.
_MULTIPLIERS = {
    "score": 2654435761,
    "amount": 2246822519,
    "active": 3266489917,
    "born": 668265263,
    "updated_at": 374761393,
    "null_note": 2870177451,
    "note": 3182119861,
    "payload": 1640531527,
    "payload2": 2013094757,
    "parent_id": 1103515245,
    "quantity": 2147483629,
    "price": 1234567891,
}
#: The hashes whose hexadecimal digits (32, twice over) make each payload.
_PAYLOAD = ("payload", "payload2", "score", "note")
#: 2020-01-01 00:00:00 UTC as a Unix time.
_EPOCH = 1577836800


def child_count(rows: int) -> int:
    return rows // 5


def _hash(column: str) -> str:
    """An integer in [0, 2^32) for the row key `k`, the column's own."""
    return f"((k * {_MULTIPLIERS[column]}) % 4294967296)"


def _sqlite_parent(rows: int) -> str:
    word = "CASE k % 9 " + " ".join(f"WHEN {i} THEN '{w}'" for i, w in enumerate(_WORDS)) + " END"
    hexes = f"printf('%08x%08x%08x%08x', {', '.join(map(_hash, _PAYLOAD))})"
    amount = f"({_hash('amount')} % 20000000 - 10000000)"
    return f"""
        WITH RECURSIVE keys(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM keys WHERE k < {rows})
        INSERT INTO parent
        SELECT k,
            printf('%s-%09d', {word}, k),
            {_hash("score")} * 1000.0 / 4294967296.0,
            CASE WHEN {amount} < 0 THEN '-' ELSE '' END
                || (abs({amount}) / 100) || '.' || printf('%02d', abs({amount}) % 100),
            {_hash("active")} % 2,
            date('1950-01-01', '+' || ({_hash("born")} % 25000) || ' days'),
            strftime('%Y-%m-%d %H:%M:%S', {_EPOCH} + {_hash("updated_at")} % 200000000,
                'unixepoch')
                || CASE WHEN k % 1000000 = 0 THEN '' ELSE printf('.%06d', k % 1000000) END
                || '+00:00',
            CASE WHEN {_hash("null_note")} % 10 < 3 THEN NULL
                ELSE printf('note %x for %s', {_hash("note")}, {word}) END,
            CAST(substr({hexes} || {hexes}, 1, 16 + k % 48) AS BLOB)
        FROM keys"""


def _sqlite_child(rows: int) -> str:
    return f"""
        WITH RECURSIVE keys(k) AS (
            SELECT 1 UNION ALL SELECT k + 1 FROM keys WHERE k < {child_count(rows)})
        INSERT INTO child
        SELECT k, 1 + {_hash("parent_id")} % {rows}, 'line ' || k,
            1 + {_hash("quantity")} % 99, ({_hash("price")} % 5000000) / 10000.0
        FROM keys"""


def _postgres_parent(rows: int) -> str:
    words = "ARRAY[" + ", ".join(f"'{w}'" for w in _WORDS) + "]"
    word = f"({words})[(k % 9 + 1)::int]"
    hexes = " || ".join(f"lpad(to_hex({_hash(column)}), 8, '0')" for column in _PAYLOAD)
    return f"""
        INSERT INTO parent
        SELECT k,
            {word} || '-' || lpad(k::text, 9, '0'),
            {_hash("score")}::float8 * 1000.0::float8 / 4294967296.0::float8,
            ({_hash("amount")} % 20000000 - 10000000)::numeric / 100,
            {_hash("active")} % 2 = 1,
            date '1950-01-01' + ({_hash("born")} % 25000)::int,
            timestamptz 'epoch' + (({_EPOCH} + {_hash("updated_at")} % 200000000) * 1000000
                + k % 1000000) * interval '1 microsecond',
            CASE WHEN {_hash("null_note")} % 10 < 3 THEN NULL
                ELSE 'note ' || to_hex({_hash("note")}) || ' for ' || {word} END,
            convert_to(substr({hexes} || {hexes}, 1, 16 + (k % 48)::int), 'UTF8')
        FROM generate_series(1::bigint, {rows}) AS k"""


def _postgres_child(rows: int) -> str:
    return f"""
        INSERT INTO child
        SELECT k, 1 + {_hash("parent_id")} % {rows}, 'line ' || k,
            1 + {_hash("quantity")} % 99,
            ({_hash("price")} % 5000000)::float8 / 10000.0::float8
        FROM generate_series(1::bigint, {child_count(rows)}) AS k"""


def write_sqlite(path: Path, rows: int) -> None:
    """Create the SQLite source database at `path` with N parents and N/5 children."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode = OFF")  # a new file: nothing to roll back to
        conn.execute("PRAGMA synchronous = OFF")
        for statement in SQLITE_DDL:
            conn.execute(statement)
        conn.execute(_sqlite_parent(rows))
        conn.execute(_sqlite_child(rows))
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
        cur.execute(_postgres_parent(rows))
        cur.execute(_postgres_child(rows))
        for statement in POSTGRES_INDEXES:
            cur.execute(statement)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
