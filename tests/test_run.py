"""Running a migration under foreign keys: replace and mirror follow whatever the source
deleted, into every kind of target, and the target equals the source subset afterwards."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

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


def sqlite_source_into(
    tmp_path: Path, write_manifest, url: str, script: str, migrations: str
) -> tuple[Path, Path]:
    """A SQLite source made by `script`, and a manifest migrating it into `url`."""
    source = tmp_path / "source.db"
    with sqlite3.connect(source) as db:
        db.executescript(script)
    manifest = write_manifest(
        "version: 1\nconnections:\n"
        f"  local: {{driver: sqlite, database: {source}}}\n"
        f"  target: {{url: '{url}'}}\n"
        f"migrations:\n{migrations}"
    )
    return source, manifest


@pytest.mark.parametrize("kind", EVERY_DATABASE)
@pytest.mark.parametrize(
    ("parent", "child"),
    [("replace", "replace"), ("mirror", "mirror"), ("replace", "mirror"), ("mirror", "replace")],
)
def test_a_parent_deleted_in_the_source_is_followed_by_replace_and_mirror(
    capsys, request, tmp_path: Path, write_manifest, kind: str, parent: str, child: str
) -> None:
    url = target_url(request, tmp_path, kind)
    source, manifest = sqlite_source_into(
        tmp_path,
        write_manifest,
        url,
        SOURCE,
        "  both:\n    from: local\n    to: target\n"
        f"    tables: {{parent: {{mode: {parent}}}, child: {{mode: {child}}}}}\n",
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
    if kind == "postgresql":  # no key was left unchecked
        with sa.create_engine(url, poolclass=sa.pool.NullPool).connect() as conn:
            checked = "SELECT bool_and(convalidated) FROM pg_constraint WHERE contype = 'f'"
            assert conn.exec_driver_sql(checked).scalar() is True


@pytest.mark.parametrize("kind", EVERY_DATABASE)
@pytest.mark.parametrize("mode", ["replace", "mirror"])
def test_rows_of_a_chain_within_one_table_go_together(
    capsys, request, tmp_path: Path, write_manifest, kind: str, mode: str
) -> None:
    url = target_url(request, tmp_path, kind)
    source, manifest = sqlite_source_into(
        tmp_path,
        write_manifest,
        url,
        "CREATE TABLE staff (id INTEGER PRIMARY KEY, boss INTEGER REFERENCES staff(id));"
        "INSERT INTO staff VALUES (1, NULL), (2, 1), (3, 2), (4, 3), (5, 1);",
        f"  staff: {{from: local, to: target, mode: {mode}}}\n",
    )
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    with sqlite3.connect(source) as db:  # a chain of bosses leaves, lowest key first
        db.execute("DELETE FROM staff WHERE id IN (2, 3, 4)")
    applied = run_cli(capsys, "apply", manifest, "--auto-approve", "--allow-destroy")
    assert applied.code == 0, applied.text
    assert table_rows(url, "staff") == [(1, None), (5, 1)]


@pytest.mark.mariadb
def test_a_mirror_leaves_no_row_of_another_table_pointing_at_a_deleted_one(
    capsys, mariadb_db, tmp_path: Path, write_manifest
) -> None:
    url = mariadb_db.url_string
    source, manifest = sqlite_source_into(
        tmp_path,
        write_manifest,
        url,
        "CREATE TABLE staff (id INTEGER PRIMARY KEY, boss INTEGER REFERENCES staff(id));"
        "INSERT INTO staff VALUES (1, NULL), (2, 1), (3, 2);",
        "  staff: {from: local, to: target, mode: mirror}\n",
    )
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    engine = mariadb_db.engine()
    with engine.begin() as conn:  # a table of the target's own points at staff 3
        conn.exec_driver_sql("CREATE TABLE badge (id INT PRIMARY KEY, holder BIGINT)")
        conn.exec_driver_sql("ALTER TABLE badge ADD FOREIGN KEY (holder) REFERENCES staff(id)")
        conn.exec_driver_sql("INSERT INTO badge VALUES (1, 3)")
    engine.dispose()
    with sqlite3.connect(source) as db:
        db.execute("DELETE FROM staff WHERE id IN (2, 3)")
    applied = run_cli(capsys, "apply", manifest, "--auto-approve", "--allow-destroy")
    assert applied.code == 1
    assert (
        "table 'staff': deleting the rows gone from the source would leave rows of 'badge' "
        "pointing at them (holder); nothing was deleted"
    ) in applied.err
    assert table_rows(url, "staff") == [(1, None), (2, 1), (3, 2)]
    engine = mariadb_db.engine()
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM badge")
    engine.dispose()
    # The next apply carries on with the deletion.
    resumed = run_cli(capsys, "apply", manifest, "--auto-approve", "--allow-destroy")
    assert resumed.code == 0, resumed.text
    assert table_rows(url, "staff") == [(1, None)]


@pytest.mark.parametrize("kind", EVERY_DATABASE[1:])
def test_a_mirror_refused_by_rows_it_keeps_says_why_and_deletes_nothing(
    capsys, request, tmp_path: Path, write_manifest, kind: str
) -> None:
    url = target_url(request, tmp_path, kind)
    source, manifest = sqlite_source_into(
        tmp_path,
        write_manifest,
        url,
        SOURCE,
        "  both:\n    from: local\n    to: target\n"
        "    tables: {parent: {mode: mirror}, child: {mode: upsert}}\n",
    )
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    with sqlite3.connect(source) as db:  # upsert keeps child 10, which points at parent 2
        db.executescript("DELETE FROM child WHERE id = 10; DELETE FROM parent WHERE id = 2;")
    applied = run_cli(capsys, "apply", manifest, "--auto-approve", "--allow-destroy")
    assert applied.code == 1
    assert (
        "table 'parent': rows gone from the source are still referenced in the target by rows "
        "this migration keeps (append, upsert) or does not copy, so nothing was deleted: "
    ) in applied.err
    assert [row[0] for row in table_rows(url, "parent")] == [1, 2, 3], applied.err
