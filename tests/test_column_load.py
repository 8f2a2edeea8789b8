"""A SQLite backup restored into PostgreSQL in whole columns (`archive/column_load.py`): the
same rows land as row by row, and a table it cannot load exactly is loaded row by row."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan.archive import column_load, restore, restore_backup, write_backup
from tests.servers import ServerDatabase

_DDL = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT, amount NUMERIC(20, 6), "
    "plain NUMERIC, ratio REAL, flag BOOLEAN, payload BLOB, day DATE, "
    "at TIMESTAMP WITH TIME ZONE, empty TEXT)"
)
_ROWS: list[tuple[Any, ...]] = [
    (1, "Grüße 😀, \"quoted\"\\ and\nnewline", 1.5, 7.25, 0.1 + 0.2, 1, b"\x00\xff", "2024-02-29",
     "2024-06-01 12:30:00.123456", None),
    (2, "", 7, 2.25, -0.0, 0, b"", "1970-01-01", "2024-12-31T23:59:59Z", None),
    (3, None, None, None, None, None, None, None, None, None),
    (4, "x" * 5000, 1e-7, 12345678901234.5, 1e308, 1, b"\x01" * 500, "0001-01-01",
     "1970-01-01 00:00:00", None),
    (5, ",", -(2**46), 1e300, float("inf"), None, b"z", "9999-12-31", None, None),
]  # fmt: skip


def _backup(tmp_path: Path, rows: Sequence[tuple[Any, ...]]) -> Path:
    with sqlite3.connect(tmp_path / "data.db") as conn:
        conn.execute(_DDL)
        conn.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(rows[0]))})", rows)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data.db'}")
    return write_backup(engine, tmp_path / "backups", "b").path


def _restored(backup: Path, server: ServerDatabase, *, by_rows: bool) -> list[tuple[Any, ...]]:
    """Restore the backup into an empty database and read table t back, row by row."""
    server.drop()
    server.create()
    engine = server.engine()
    with pytest.MonkeyPatch.context() as patch:
        if by_rows:
            patch.setattr(restore, "_load_columns", lambda *args: None)
        else:
            patch.setattr(restore, "_load", _refused)
        restore_backup(backup, engine)
    with engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql("SELECT * FROM t ORDER BY id")]


def _refused(*args: object) -> int:
    raise AssertionError("the table was loaded row by row")


@pytest.mark.parametrize("batch_rows", [2, 50_000])
def test_columns_restore_the_rows_the_row_path_restores(
    tmp_path: Path, postgres_db: ServerDatabase, monkeypatch: pytest.MonkeyPatch, batch_rows: int
) -> None:
    backup = _backup(tmp_path, _ROWS)
    by_rows = _restored(backup, postgres_db, by_rows=True)
    monkeypatch.setattr(column_load, "BATCH_ROWS", batch_rows)
    by_columns = _restored(backup, postgres_db, by_rows=False)
    assert [tuple(map(repr, row)) for row in by_columns] == [
        tuple(map(repr, row)) for row in by_rows
    ]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("amount", 2**53 + 1),  # an integer no double holds, in a decimal column
        ("plain", 7),  # an integer in a decimal column without a scale (lands as 7, not 7.0)
        ("day", 20240229),  # a number in a date column
        ("label", b"\x00"),  # a blob in a text column
    ],
)
def test_a_table_the_columns_cannot_load_exactly_is_loaded_row_by_row(
    tmp_path: Path, postgres_db: ServerDatabase, column: str, value: Any
) -> None:
    rows = [row for row in _ROWS if row[0] != 5]
    names = ["id", "label", "amount", "plain", "ratio", "flag", "payload", "day", "at", "empty"]
    at = names.index(column)
    rows[1] = (*rows[1][:at], value, *rows[1][at + 1 :])
    backup = _backup(tmp_path, rows)
    try:
        by_rows = _restored(backup, postgres_db, by_rows=True)
    except Exception:
        by_rows = None
    loaded: list[tuple[Any, ...]] | None
    by_rows_calls: list[str] = []
    row_load = restore._load

    def counted(conn: sa.Connection, table: Any, *args: Any) -> int:
        by_rows_calls.append(table.name)
        return row_load(conn, table, *args)

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(column_load, "BATCH_ROWS", 2)
            patch.setattr(restore, "_load", counted)
            postgres_db.drop()
            postgres_db.create()
            restore_backup(backup, postgres_db.engine())
        with postgres_db.engine().connect() as conn:
            loaded = [tuple(row) for row in conn.exec_driver_sql("SELECT * FROM t ORDER BY id")]
    except Exception:
        loaded = None
    assert by_rows_calls == ["t"]
    assert (loaded is None) == (by_rows is None)
    if by_rows is not None:
        assert [tuple(map(repr, row)) for row in loaded or []] == [
            tuple(map(repr, row)) for row in by_rows
        ]
