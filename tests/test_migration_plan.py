"""What a migration's plan says about each table it copies."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dsdb_plan.fingerprint import RowDigest
from dsdb_plan.kinds import migration
from dsdb_plan.kinds.migration import grown_since
from dsdb_plan.payloads import CopyTables, TableCopy
from dsdb_plan.state import open_state
from tests.helpers import LOCAL_AND_COPY, make_flights_db, run_cli, sqlite_url, table_rows
from tests.servers import ServerDatabase

WIDENED = (
    LOCAL_AND_COPY
    + """\
migrations:
  out:
    from: local
    to: copy
    follow: parents
    tables:
      airlines: {where: {carrier: UA}}
      flights: {}
"""
)


def test_the_plan_says_when_follow_widens_a_filtered_table(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    make_flights_db(tmp_path / "data/local.db")
    plan = run_cli(capsys, "plan", write_manifest(WIDENED))
    assert plan.code == 0, plan.text
    assert (
        "airlines → copy.airlines: 3 rows (upsert, new table; parent of flights via "
        "flights.carrier); its filter selects 1 row, follow: parents adds 2"
    ) in plan.out
    assert "flights → copy.flights: 200 rows (upsert, new table)\n" in plan.out


def test_a_filter_that_follow_does_not_widen_gets_no_note(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    make_flights_db(tmp_path / "data/local.db")
    manifest = write_manifest(WIDENED.replace("      flights: {}\n", ""))
    plan = run_cli(capsys, "plan", manifest)
    assert plan.code == 0, plan.text
    assert "airlines → copy.airlines: 1 row (upsert, new table)\n" in plan.out
    assert "follow" not in plan.out.split("Plan:")[0].split("airlines →")[1]


REPLACE = (
    LOCAL_AND_COPY
    + """\
migrations:
  out:
    from: local
    to: copy
    mode: replace
    tables:
      airlines: {}
"""
)


def test_a_saved_replace_refuses_a_target_that_gained_rows_since_the_plan(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    make_flights_db(tmp_path / "data/local.db")
    with sqlite3.connect(tmp_path / "data/copy.db") as db:
        db.executescript(
            "CREATE TABLE airlines (carrier TEXT PRIMARY KEY, name TEXT NOT NULL);"
            "INSERT INTO airlines VALUES ('ZZ', 'Old'), ('YY', 'Older');"
        )
    manifest = write_manifest(REPLACE)
    plan_file = tmp_path / "plan.json"
    planned = run_cli(capsys, "plan", manifest, "-o", plan_file)
    assert "replace deletes the 2 rows of copy.airlines" in planned.out
    with sqlite3.connect(tmp_path / "data/copy.db") as db:
        db.execute("INSERT INTO airlines VALUES ('XX', 'Newest')")

    refused = run_cli(capsys, "apply", plan_file, "--allow-destroy")
    assert refused.code == 1
    assert "copy.airlines holds 3 rows, the plan showed 2 (replace deletes from them)" in (
        refused.err
    )
    assert len(table_rows(sqlite_url(tmp_path / "data/copy.db"), "airlines")) == 3


def test_a_resync_takes_the_rows_replace_deletes_from_the_targets_fingerprint(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_flights_db(tmp_path / "data/local.db")
    manifest = write_manifest(REPLACE)
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    with sqlite3.connect(tmp_path / "data/local.db") as db:
        db.execute("UPDATE airlines SET name = 'renamed' WHERE carrier = 'UA'")
    db.close()
    counts: list[list[str]] = []
    monkeypatch.setattr(
        migration, "row_counts", lambda engine, tables: counts.append(list(tables)) or {}
    )
    plan = run_cli(capsys, "plan", manifest)
    assert "replace deletes the 3 rows of copy.airlines" in plan.out
    assert counts == []  # the drift check's fingerprint of the target holds its rows

    monkeypatch.undo()
    with sqlite3.connect(tmp_path / "data/copy.db") as db:
        db.execute("INSERT INTO airlines VALUES ('XX', 'Added outside dsdb')")
    db.close()
    plan = run_cli(capsys, "plan", manifest)
    assert "replace deletes the 4 rows of copy.airlines" in plan.out
    assert "target table airlines changed: 3 → 4 rows outside dsdb" in plan.out


def test_grown_since_names_only_deleting_tables_that_hold_more_than_planned() -> None:
    planned = CopyTables(
        {},
        source="local",
        target="copy",
        tables=(
            TableCopy("a", "a", "replace", 5, held=2),
            TableCopy("b", "b", "mirror", 5, held=0),
            TableCopy("c", "c", "upsert", 5),
        ),
    )
    assert grown_since(planned, {"a": 2, "b": 0, "c": 99}) == []
    assert grown_since(planned, {"a": 1, "b": 1}) == [
        "copy.b holds 1 row, the plan showed 0 (mirror deletes from them)"
    ]


@pytest.mark.postgres
def test_a_first_copy_from_sqlite_plans_on_row_counts_and_records_them(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest,  # type: ignore[no-untyped-def]
    postgres_db: ServerDatabase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    postgres_db.reset()
    make_flights_db(tmp_path / "data/local.db")
    manifest = write_manifest(
        "version: 1\nconnections:\n  local: {driver: sqlite, database: data/local.db}\n"
        f"  pg: {{url: '{postgres_db.url_string}'}}\n"
        "migrations:\n  out: {from: local, to: pg}\n"
    )
    hashed = [0]
    add = RowDigest.add

    def counted(self: RowDigest, rows: Sequence[tuple[Any, ...]]) -> None:
        hashed[0] += len(rows)
        add(self, rows)

    monkeypatch.setattr(RowDigest, "add", counted)
    plan = run_cli(capsys, "plan", manifest)
    assert plan.code == 0, plan.text
    assert "flights → pg.flights: 200 rows (upsert, new table)" in plan.out
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    assert hashed[0] == 0  # neither the plan nor the apply read the source's content
    read = open_state(".dsdb/state.db", tmp_path).read().resources["migration.out"]
    recorded = read.fingerprints["read"]["tables"]
    assert {name: table["checksum"] for name, table in recorded.items()} == {
        "airlines": "counted:",
        "flights": "counted:",
    }
    assert all(table["token"].startswith("pages:") for table in recorded.values())
    assert run_cli(capsys, "plan", manifest, "--detailed-exitcode").code == 0

    with sqlite3.connect(tmp_path / "data/local.db") as db:
        db.execute("UPDATE flights SET month = month + 1 WHERE id = 7")
    db.close()
    plan = run_cli(capsys, "plan", manifest)
    # Each table's pages tell the one that changed from the one that did not.
    assert "source table flights: its pages changed since it was first copied, still 200 rows" in (
        plan.out
    )
    assert "source table airlines" not in plan.out
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    source = sqlite_url(tmp_path / "data/local.db")
    assert table_rows(postgres_db.url_string, "flights") == table_rows(source, "flights")
    assert run_cli(capsys, "plan", manifest, "--detailed-exitcode").code == 0
