"""A database that refuses rows a migration COPYs in gives one clear message, not a trace."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import EVERY_DATABASE, database, run_cli
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


@pytest.mark.parametrize("kind", EVERY_DATABASE)
def test_rows_that_swap_unique_values_are_explained_and_replace_copies_them(
    capsys, tmp_path: Path, write_manifest, request: pytest.FixtureRequest, kind: str
) -> None:  # type: ignore[no-untyped-def]
    """The servers and SQLite check a unique index row by row, so an upsert cannot swap two
    rows' emails; the error says so and how to get past it, and nothing is half-written."""
    (tmp_path / "data").mkdir()
    source = tmp_path / "data/local.db"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE)")
        db.executemany("INSERT INTO users VALUES (?, ?)", [(1, "a@x"), (2, "b@x"), (3, "c@x")])
    target = database(request, tmp_path / "data", kind)
    target_url = target.url.render_as_string(hide_password=False)

    def manifest(mode: str) -> Path:
        return write_manifest(
            "version: 1\n"
            "connections:\n"
            "  local: {driver: sqlite, database: data/local.db}\n"
            f"  remote: {{url: '{target_url}'}}\n"
            "migrations:\n"
            f"  users: {{from: local, to: remote, mode: {mode}, tables: [users]}}\n"
        )

    def rows(engine: sa.Engine) -> list[tuple[object, ...]]:
        with engine.connect() as conn:
            found = conn.exec_driver_sql("SELECT id, email FROM users ORDER BY id")
            return [tuple(row) for row in found]

    assert run_cli(capsys, "apply", manifest("upsert"), "--auto-approve").code == 0
    with sqlite3.connect(source) as db:
        db.execute("UPDATE users SET email = 'tmp' WHERE id = 1")
        db.execute("UPDATE users SET email = 'a@x' WHERE id = 2")
        db.execute("UPDATE users SET email = 'b@x' WHERE id = 1")

    refused = run_cli(capsys, "apply", manifest("upsert"), "--auto-approve")
    if kind == "duckdb":  # DuckDB checks a unique index once per statement: the swap goes in
        assert refused.code == 0, refused.out + refused.err
        assert rows(target) == rows(sa.create_engine(f"sqlite:///{source}"))
        return
    assert refused.code == 1
    output = refused.out + refused.err
    assert "takes a unique value that another row of the target still holds" in output
    assert "`mode: replace`" in output and "Traceback" not in output
    assert rows(target) == [(1, "a@x"), (2, "b@x"), (3, "c@x")]  # rolled back, not half done

    replaced = run_cli(capsys, "apply", manifest("replace"), "--auto-approve", "--allow-destroy")
    assert replaced.code == 0, replaced.out + replaced.err
    assert rows(target) == rows(sa.create_engine(f"sqlite:///{source}"))
    target.dispose()
