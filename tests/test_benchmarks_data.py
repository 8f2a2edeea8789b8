"""The benchmark's data (benchmarks/data.py): generated in SQL by SQLite and by PostgreSQL,
the same values in both, the same on every run."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from benchmarks import data
from tests.servers import ServerDatabase

ROWS = 3000


def _sqlite_rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()


def _as_sqlite_stores_it(value: Any) -> Any:
    """A PostgreSQL value as the SQLite source holds it: 0/1, ISO text, a number."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):  # NUMERIC affinity: an integer where it is one
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def test_sqlite_and_postgresql_generate_the_same_rows(
    tmp_path: Path, postgres_db: ServerDatabase
) -> None:
    data.write_sqlite(tmp_path / "source.db", ROWS)
    data.write_postgres(postgres_db.url.set(drivername="postgresql").render_as_string(False), ROWS)
    with psycopg.connect(postgres_db.url.set(drivername="postgresql").render_as_string(False)) as c:
        for table in data.TABLES:
            found = c.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
            expected = _sqlite_rows(tmp_path / "source.db", table)
            assert len(expected) == (ROWS if table == "parent" else data.child_count(ROWS))
            assert [tuple(map(_as_sqlite_stores_it, row)) for row in found] == expected


def test_the_rows_are_the_same_on_every_run_and_vary_as_described(tmp_path: Path) -> None:
    for name in ("a.db", "b.db"):
        data.write_sqlite(tmp_path / name, ROWS)
    parents = _sqlite_rows(tmp_path / "a.db", "parent")
    assert parents == _sqlite_rows(tmp_path / "b.db", "parent")
    assert len({row[2] for row in parents}) == ROWS  # every score its own
    assert {len(row[8]) for row in parents} == set(range(16, 64))  # payloads of 16 to 63 bytes
    assert 0.2 < sum(row[7] is None for row in parents) / ROWS < 0.4  # notes 30% NULL
    assert {type(row[3]) for row in parents} == {int, float}  # decimals both ways in SQLite
    children = _sqlite_rows(tmp_path / "a.db", "child")
    assert all(1 <= row[1] <= ROWS for row in children)
