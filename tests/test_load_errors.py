"""A database that refuses rows a migration COPYs in gives one clear message, not a trace."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.helpers import run_cli
from tests.servers import ServerDatabase


def test_a_row_the_postgresql_target_refuses_is_a_clear_database_error(
    capsys, tmp_path: Path, write_manifest, postgres_db: ServerDatabase
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "data").mkdir()
    with sqlite3.connect(tmp_path / "data/local.db") as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        db.executemany("INSERT INTO notes VALUES (?, ?)", [(1, "ok"), (2, "far too long")])
    with postgres_db.engine().begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE notes (id bigint PRIMARY KEY, body text CHECK (length(body) < 5))"
        )
    manifest = write_manifest(
        "version: 1\n"
        "connections:\n"
        "  local: {driver: sqlite, database: data/local.db}\n"
        f"  pg: {{url: '{postgres_db.url_string}'}}\n"
        "migrations:\n"
        "  notes: {from: local, to: pg, mode: append, tables: [notes]}\n"
    )
    applied = run_cli(capsys, "apply", manifest, "--auto-approve")
    assert applied.code == 1
    output = applied.out + applied.err
    assert "database error:" in output and "violates check constraint" in output
    assert "Traceback" not in output and "psycopg.errors" not in output
