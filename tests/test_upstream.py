"""Sources written earlier in the same plan: the projection of what they will hold, the
apply's check of the copy planned again, and chained migrations and backups applied at once."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from dsdb_plan.kinds.upstream import copies_beyond, projected_tables
from dsdb_plan.payloads import CopyTables, DropTables, RestoreBackup, TableCopy
from tests.helpers import make_flights_db, run_cli, sqlite_url, table_rows
from tests.servers import ServerDatabase


def _copy(*tables: TableCopy, follows_more: bool = False, unchanged: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    return CopyTables(
        {},
        source="mid",
        target="out",
        tables=tables,
        planned_after=("migration.first",),
        follows_more=follows_more,
        unchanged=unchanged,
    )


def test_a_table_a_copy_creates_holds_the_rows_it_copies() -> None:
    writer = _copy(
        TableCopy("a", "a", "upsert", 4),
        TableCopy("b", "b2", "append", 10, estimated=True),
        TableCopy("c", "c", "upsert", None),
    )

    assert projected_tables([], [writer]) == {"a": 4, "b2": None, "c": None}


def test_rows_already_there_are_unknown_unless_the_copy_replaces_them() -> None:
    writer = _copy(TableCopy("a", "a", "upsert", 4), TableCopy("b", "b", "replace", 7))

    assert projected_tables(["a", "b", "old"], [writer]) == {"a": None, "b": 7, "old": None}


def test_restores_add_tables_and_teardowns_drop_them_in_order() -> None:
    restore = RestoreBackup(
        {},
        connection="mid",
        backup_id=None,
        path=None,
        backup_address="backup.x",
        tables=None,
        writes=("r1", "r2"),
    )
    drop = DropTables({}, connection="mid", tables=("r1", "old"), rows={})
    wipe = DropTables({}, connection="mid", tables=(), rows={}, drop_database=True)

    assert projected_tables(["old"], [restore, drop]) == {"r2": None}
    assert projected_tables(["old"], [restore, wipe]) == {}


def test_the_copy_planned_again_may_not_add_or_lose_tables() -> None:
    planned = _copy(TableCopy("a", "a", "upsert", 4), TableCopy("b", "b", "upsert", 1))

    assert copies_beyond(planned, _copy(TableCopy("a", "a", "upsert", 4))) == [
        "b → out.b (upsert) is not in mid once migration.first applied"
    ]
    grown = _copy(*planned.tables, TableCopy("c", "c", "upsert", 2))
    assert copies_beyond(planned, grown) == [
        "c → out.c (upsert) would be copied; the plan did not show it"
    ]
    mode = _copy(TableCopy("a", "a", "mirror", 4), TableCopy("b", "b", "upsert", 1))
    assert len(copies_beyond(planned, mode)) == 2
    assert copies_beyond(planned, planned) == []


def test_follow_may_add_tables_and_a_resync_may_leave_some_as_they_are() -> None:
    listed = _copy(TableCopy("a", "a", "upsert", 4), follows_more=True)
    assert copies_beyond(listed, _copy(*listed.tables, TableCopy("p", "p", "upsert", 1))) == []

    planned = _copy(TableCopy("a", "a", "upsert", 4), TableCopy("b", "b", "upsert", 1))
    assert copies_beyond(planned, _copy(TableCopy("a", "a", "upsert", 4), unchanged=("b",))) == []


CHAIN = """\
version: 1
settings: {{state: .dsdb/state.db, backup_root: backups/}}
connections:
  src: {{driver: sqlite, database: data/src.db}}
  mid: {{driver: sqlite, database: data/mid.db}}
  out: {{driver: {out_driver}, {out}}}
  back: {{driver: sqlite, database: data/back.db}}
migrations:
  to-mid:
    from: src
    to: mid
    tables:
      flights: {{where: {{carrier: UA}}}}
    follow: parents
  to-out:
    from: mid
    to: out
    mode: mirror
    depends_on: [migration.to-mid]
backups:
  of-out:
    connection: out
    depends_on: [migration.to-out]
restores:
  out-back:
    backup: of-out
    to: back
"""


def _chain(tmp_path: Path, out_driver: str = "sqlite", out: str = "database: data/out.db") -> Path:
    make_flights_db(tmp_path / "data" / "src.db")
    manifest = tmp_path / "dsdb.yaml"
    manifest.write_text(CHAIN.format(out_driver=out_driver, out=out))
    return manifest


def _united(tmp_path: Path) -> dict[str, list[tuple[object, ...]]]:
    src = sqlite_url(tmp_path / "data" / "src.db")
    return {
        "flights": [row for row in table_rows(src, "flights") if row[1] == "UA"],
        "airlines": [row for row in table_rows(src, "airlines") if row[0] == "UA"],
    }


def test_a_chain_written_in_one_plan_applies_in_one_apply_and_then_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _chain(tmp_path)
    monkeypatch.chdir(tmp_path)

    plan = run_cli(capsys, "plan", manifest)
    assert plan.code == 0, plan.text
    assert "source mid is written earlier in this plan by migration.to-mid" in plan.out
    assert "flights → out.flights: 66 rows (mirror, new table)" in plan.out
    assert "airlines → out.airlines: 1 row (mirror, new table)" in plan.out
    assert "new backup of out once migration.to-out has written it: 2 tables" in plan.out

    applied = run_cli(capsys, "apply", "--auto-approve", manifest)
    assert applied.code == 0, applied.text

    expected = _united(tmp_path)
    for database in ("mid", "out", "back"):
        url = sqlite_url(tmp_path / "data" / f"{database}.db")
        for table, rows in expected.items():
            assert table_rows(url, table) == rows, (database, table)
    again = run_cli(capsys, "plan", "--detailed-exitcode", manifest)
    assert again.code == 0, again.text

    # A source change flows down the chain in one apply too.
    with sqlite3.connect(tmp_path / "data" / "src.db") as db:
        db.execute("UPDATE flights SET dep_delay = 99.5 WHERE id = 3")
    changed = run_cli(capsys, "apply", "--auto-approve", "--allow-destroy", manifest)
    assert changed.code == 0, changed.text
    expected = _united(tmp_path)
    assert (3, "UA", 4, 99.5) in expected["flights"]
    for database in ("mid", "out", "back"):
        url = sqlite_url(tmp_path / "data" / f"{database}.db")
        assert table_rows(url, "flights") == expected["flights"], database
    assert run_cli(capsys, "plan", "--detailed-exitcode", manifest).code == 0


def test_a_saved_chain_refuses_a_table_that_appeared_in_its_source_since(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _chain(tmp_path)
    monkeypatch.chdir(tmp_path)
    saved = tmp_path / "plan.json"
    assert run_cli(capsys, "plan", "--out", saved, manifest).code == 0
    planned = json.loads(saved.read_text())
    to_out = next(a for a in planned["actions"] if a["address"] == "migration.to-out")
    assert to_out["payload"]["planned_after"] == ["migration.to-mid"]
    with sqlite3.connect(tmp_path / "data" / "mid.db") as db:
        db.execute("CREATE TABLE stray (id INTEGER PRIMARY KEY)")

    applied = run_cli(capsys, "apply", "--auto-approve", saved)

    assert applied.code == 1
    assert "stray → out.stray (mirror) would be copied; the plan did not show it" in applied.text
    assert not (tmp_path / "data" / "out.db").exists()


@pytest.mark.postgres
def test_an_empty_server_database_in_the_middle_of_a_chain(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    postgres_db: ServerDatabase,
) -> None:
    manifest = _chain(tmp_path, "postgresql", f"url: '{postgres_db.url_string}'")
    text = manifest.read_text()
    # PostgreSQL in the middle: the SQLite subset lands there, and is read out of it.
    manifest.write_text(
        text.replace("to: mid", "to: out-pg")
        .replace("from: mid", "from: out-pg")
        .replace("to: out\n", "to: mid\n")
        .replace("connection: out", "connection: mid")
        .replace("  out: ", "  out-pg: ")
    )
    monkeypatch.chdir(tmp_path)

    plan = run_cli(capsys, "plan", manifest)
    assert plan.code == 0, plan.text
    assert "flights → mid.flights: 66 rows (mirror, new table)" in plan.out

    applied = run_cli(capsys, "apply", "--auto-approve", manifest)
    assert applied.code == 0, applied.text
    expected = _united(tmp_path)
    for table, rows in expected.items():
        assert table_rows(postgres_db.url, table) == rows
        assert table_rows(sqlite_url(tmp_path / "data" / "mid.db"), table) == rows
        assert table_rows(sqlite_url(tmp_path / "data" / "back.db"), table) == rows
    assert run_cli(capsys, "plan", "--detailed-exitcode", manifest).code == 0


@pytest.mark.parametrize(
    "order",
    [
        "  a-to-b: {from: a, to: b}\n  b-to-c: {from: b, to: c, depends_on: [migration.a-to-b]}\n",
        "  a-to-b: {from: a, to: b, depends_on: [migration.b-to-c]}\n  b-to-c: {from: b, to: c}\n",
    ],
    ids=["read-after-write", "read-before-write"],
)
def test_a_read_of_a_written_connection_is_valid_in_either_order_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], order: str
) -> None:
    manifest = tmp_path / "dsdb.yaml"
    manifest.write_text(
        "version: 1\nconnections:\n"
        + "".join(f"  {n}: {{driver: sqlite, database: {n}.db}}\n" for n in "abc")
        + "migrations:\n"
        + order
    )

    assert run_cli(capsys, "validate", manifest).code == 0


def test_a_listed_table_neither_there_nor_written_there_first_fails_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _chain(tmp_path)
    listed = "mode: mirror\n    tables: [flights, planes]\n"
    manifest.write_text(manifest.read_text().replace("mode: mirror\n", listed))
    monkeypatch.chdir(tmp_path)

    plan = run_cli(capsys, "plan", manifest)

    assert plan.code == 1
    assert (
        "migration.to-out: table planes not in 'mid', nor written there by migration.to-mid first"
        in plan.err
    )
