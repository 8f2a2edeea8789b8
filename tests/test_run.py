"""Running a migration under foreign keys: replace and mirror follow whatever the source
deleted, into every kind of target, and the target equals the source subset afterwards."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.helpers import EVERY_DATABASE, run_cli, sqlite_url, table_rows

SOURCE = """
CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE child (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER REFERENCES parent(id),
    note TEXT
);
INSERT INTO parent VALUES (1, 'one'), (2, 'two'), (3, 'three');
INSERT INTO child VALUES (10, 2, 'ten'), (11, 3, 'eleven'), (12, 1, 'twelve');
"""


def target_url(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> str:
    if kind == "sqlite":
        return sqlite_url(tmp_path / "target.db")
    server = request.getfixturevalue("postgres_db" if kind == "postgresql" else "mariadb_db")
    return str(server.url_string)


@pytest.mark.parametrize("kind", EVERY_DATABASE)
@pytest.mark.parametrize("mode", ["replace", "mirror"])
def test_a_parent_deleted_in_the_source_is_followed_by_replace_and_mirror(
    capsys, request, tmp_path: Path, write_manifest, kind: str, mode: str
) -> None:
    source = tmp_path / "source.db"
    with sqlite3.connect(source) as db:
        db.executescript(SOURCE)
    url = target_url(request, tmp_path, kind)
    manifest = write_manifest(
        "version: 1\nconnections:\n"
        f"  local: {{driver: sqlite, database: {source}}}\n"
        f"  target: {{url: '{url}'}}\n"
        "migrations:\n"
        f"  both:\n    from: local\n    to: target\n    mode: {mode}\n"
        "    tables: [parent, child]\n"
    )
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    with sqlite3.connect(source) as db:
        # Child 10 and its parent 2 go; child 11 moves to parent 1 and its parent 3 goes;
        # a new parent arrives with a new child.
        db.executescript(
            "DELETE FROM child WHERE id = 10; DELETE FROM parent WHERE id = 2;"
            "UPDATE child SET parent_id = 1 WHERE id = 11; DELETE FROM parent WHERE id = 3;"
            "INSERT INTO parent VALUES (4, 'four'); INSERT INTO child VALUES (13, 4, 'new');"
        )
    applied = run_cli(capsys, "apply", manifest, "--auto-approve", "--allow-destroy")
    assert applied.code == 0, applied.text
    for table in ("parent", "child"):
        assert table_rows(url, table) == table_rows(sqlite_url(source), table)
    again = run_cli(capsys, "plan", manifest, "--detailed-exitcode")
    assert again.code == 0, again.text
