"""Planning resources concurrently: the same plan as one at a time, every change still shown,
each fingerprint read once, dependencies planned first, and errors reported as before."""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan.cli import plan_commands
from dsdb_plan.errors import PlanError
from dsdb_plan.fingerprint import Fingerprint
from dsdb_plan.kinds.backup import BackupKind
from dsdb_plan.payloads import Unchanged
from dsdb_plan.plan import Action, ActionType, Plan
from dsdb_plan.planner import drift_only
from dsdb_plan.project import Project
from dsdb_plan.state import open_state
from dsdb_plan.workspace import Workspace
from tests.helpers import LOCAL_AND_COPY, make_flights_db, run_cli, sqlite_url, table_rows
from tests.servers import ServerDatabase

SQLITE_MANIFEST = """\
version: 1
connections:
  a: {driver: sqlite, database: data/a.db}
  b: {driver: sqlite, database: data/b.db}
  c: {driver: sqlite, database: data/c.db}
  a-copy: {driver: sqlite, database: data/a-copy.db}
  b-copy: {driver: sqlite, database: data/b-copy.db}
  c-copy: {driver: sqlite, database: data/c-copy.db}
  a-restored: {driver: sqlite, database: data/a-restored.db}
backups:
  a-nightly: {connection: a}
migrations:
  a-out: {from: a, to: a-copy, mode: upsert}
  b-out: {from: b, to: b-copy, mode: upsert}
  c-out: {from: c, to: c-copy, mode: upsert}
restores:
  a-back: {backup: a-nightly, to: a-restored}
"""


@pytest.fixture
def sqlite_project(tmp_path: Path, write_manifest) -> Path:  # type: ignore[no-untyped-def]
    for name, flights in (("a", 120), ("b", 90), ("c", 60)):
        make_flights_db(tmp_path / f"data/{name}.db", flights=flights)
    return write_manifest(SQLITE_MANIFEST)


def planned(manifest: Path, parallelism: int) -> dict[str, Any]:
    """The plan as saved to a file, without the time it was made."""
    with Project.open(manifest) as project:
        document = project.plan(parallelism=parallelism).to_dict()
    del document["created_at"]
    return document


def changes(document: dict[str, Any]) -> dict[str, list[str]]:
    """The reasons of every action that changes something, by address."""
    return {
        action["key"]: action["reasons"]
        for action in document["actions"]
        if action["type"] != ActionType.NOOP.value
    }


def apply(capsys: pytest.CaptureFixture[str], manifest: Path) -> None:
    result = run_cli(capsys, "apply", manifest, "--auto-approve")
    assert result.code == 0, result.text


def test_a_row_changed_in_one_of_many_databases_is_exactly_the_change(
    capsys, sqlite_project: Path
) -> None:
    apply(capsys, sqlite_project)
    assert changes(planned(sqlite_project, parallelism=4)) == {}
    with sqlite3.connect(sqlite_project.parent / "data/b.db") as db:
        db.execute("UPDATE flights SET dep_delay = 99.5 WHERE id = 7")
    parallel = planned(sqlite_project, parallelism=4)
    assert changes(parallel) == {
        "migration.b-out": [
            "source table flights: content changed, still 90 rows",
            "unchanged since the last apply, not copied: airlines",
            "flights → b-copy.flights: 90 rows (upsert, only key ranges that differ)",
        ]
    }
    assert parallel == planned(sqlite_project, parallelism=1)
    # The apply copies only that table, and leaves the target equal to the source.
    apply(capsys, sqlite_project)
    data = sqlite_project.parent / "data"
    for table in ("airlines", "flights"):
        assert table_rows(sqlite_url(data / "b-copy.db"), table) == table_rows(
            sqlite_url(data / "b.db"), table
        )
    assert changes(planned(sqlite_project, parallelism=4)) == {}


def test_fingerprints_read_in_parallel_equal_those_read_one_at_a_time(
    sqlite_project: Path,
) -> None:
    parallel, sequential = planned(sqlite_project, 4), planned(sqlite_project, 1)
    assert parallel["fingerprints"] == sequential["fingerprints"]
    assert list(parallel["fingerprints"]) == sorted(sequential["fingerprints"])
    assert parallel == sequential


def test_independent_resources_read_their_databases_at_the_same_time(
    capsys, sqlite_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply(capsys, sqlite_project)
    # Each copy's read waits until the other two copies are being read as well.
    copies_read = threading.Barrier(3, timeout=10)
    read = Workspace.fingerprint

    def meeting(self: Workspace, name: str, *args: Any, **kwargs: Any) -> Fingerprint:
        if name in ("a-copy", "b-copy", "c-copy"):
            copies_read.wait()
        return read(self, name, *args, **kwargs)

    monkeypatch.setattr(Workspace, "fingerprint", meeting)
    assert changes(planned(sqlite_project, parallelism=3)) == {}


def test_a_fingerprint_two_resources_ask_for_at_once_is_read_once(
    tmp_path: Path, write_manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_flights_db(tmp_path / "data/a.db")
    manifest = write_manifest(
        "version: 1\nconnections:\n"
        "  a: {driver: sqlite, database: data/a.db}\n"
        "  one: {driver: sqlite, database: data/one.db}\n"
        "  two: {driver: sqlite, database: data/two.db}\n"
        "migrations:\n"
        "  to-one: {from: a, to: one, tables: [airlines, flights]}\n"
        "  to-two: {from: a, to: two, tables: [airlines, flights]}\n"
    )
    reads: Counter[tuple[str, str]] = Counter()
    read = Workspace.fingerprint

    def slow(self: Workspace, name: str, tables: list[str] | None, **kwargs: Any) -> Fingerprint:
        reads[name, ",".join(tables or ["*"])] += 1
        time.sleep(0.2)  # long enough for the other resource to ask meanwhile
        return read(self, name, tables, **kwargs)

    monkeypatch.setattr(Workspace, "fingerprint", slow)
    planned(manifest, parallelism=2)
    assert reads == {("a", "airlines,flights"): 1}


def test_a_resource_is_planned_after_those_it_depends_on(
    sqlite_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_backup = BackupKind.plan

    def slow(self: BackupKind, *args: Any) -> Any:
        time.sleep(0.3)
        return plan_backup(self, *args)

    monkeypatch.setattr(BackupKind, "plan", slow)
    reasons = changes(planned(sqlite_project, parallelism=4))["restore.a-back"]
    assert reasons == [
        "restore the backup that backup.a-nightly takes in this apply into a-restored"
    ]


def test_unreachable_databases_give_one_clear_message_naming_each(
    capsys, sqlite_project: Path
) -> None:
    refused = {
        "a-copy": "mysql+pymysql://nobody@127.0.0.1:1/none",
        "c-copy": "postgresql+psycopg://nobody@127.0.0.1:1/none",
    }
    text = sqlite_project.read_text()
    for name, url in refused.items():
        text = text.replace(
            f"{name}: {{driver: sqlite, database: data/{name}.db}}", f"{name}: {{url: '{url}'}}"
        )
    sqlite_project.write_text(text)
    sequential, parallel = (
        run_cli(capsys, "plan", sqlite_project, "--parallelism", str(parallelism))
        for parallelism in (1, 4)
    )
    assert parallel == sequential
    assert parallel.code == 1
    lines = parallel.err.splitlines()
    assert lines[0] == "Error: cannot plan:"
    assert lines[1].startswith("  migration.a-out: cannot reach connection 'a-copy'")
    assert lines[2].startswith("  migration.c-out: cannot reach connection 'c-copy'")
    assert len(lines) == 3
    assert "Traceback" not in parallel.text and "bug in dsdb" not in parallel.text


def test_the_error_of_a_resource_is_the_same_planned_alone_or_with_others(
    sqlite_project: Path,
) -> None:
    (sqlite_project.parent / "data/c.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    messages = []
    for parallelism in (1, 4):
        with Project.open(sqlite_project) as project, pytest.raises(PlanError) as error:
            project.plan(parallelism=parallelism)
        messages.append(error.value.message)
    assert messages[0] == messages[1]
    assert messages[0] == (
        "cannot plan:\n  migration.c-out: the database refused a read: file is not a database"
    )


def test_a_saved_plan_reads_its_data_again_concurrently(
    capsys, sqlite_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan_file = sqlite_project.parent / "plan.json"
    assert run_cli(capsys, "plan", sqlite_project, "-o", plan_file).code == 0
    keys = json.loads(plan_file.read_text())["fingerprints"]
    assert len(keys) == 4
    # The first reads (those checking the saved plan) each wait until all are being read.
    reads_meet = threading.Barrier(len(keys), timeout=10)
    calls = itertools.count()
    read = Workspace.fingerprint

    def meeting(self: Workspace, *args: Any, **kwargs: Any) -> Fingerprint:
        if next(calls) < len(keys):
            reads_meet.wait()
        return read(self, *args, **kwargs)

    monkeypatch.setattr(Workspace, "fingerprint", meeting)
    result = run_cli(capsys, "apply", plan_file, "--parallelism", "4")
    assert result.code == 0, result.text


def test_a_stale_saved_plan_gives_the_same_reasons_read_concurrently(
    capsys, sqlite_project: Path
) -> None:
    plan_file = sqlite_project.parent / "plan.json"
    assert run_cli(capsys, "plan", sqlite_project, "-o", plan_file).code == 0
    for name in ("c", "b"):
        with sqlite3.connect(sqlite_project.parent / f"data/{name}.db") as db:
            db.execute("DELETE FROM flights WHERE id = 7")
    sequential, parallel = (
        run_cli(capsys, "apply", plan_file, "--parallelism", str(parallelism))
        for parallelism in (1, 4)
    )
    assert parallel == sequential
    assert parallel.code == 1
    assert parallel.err.splitlines()[1:3] == [
        "  - data in b changed: table flights changed: 90 → 89 rows",
        "  - data in c changed: table flights changed: 60 → 59 rows",
    ]
    assert not (sqlite_project.parent / "backups").exists()


@pytest.mark.parametrize("step", ["plan", "ensure_fresh"])
def test_ctrl_c_while_planning_or_checking_a_saved_plan_ends_the_command_at_once(
    capsys, sqlite_project: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    plan_file = sqlite_project.parent / "plan.json"
    assert run_cli(capsys, "plan", sqlite_project, "-o", plan_file).code == 0
    # Planning a manifest, or checking that a saved plan still holds, before applying it.
    command = ("plan", sqlite_project) if step == "plan" else ("apply", plan_file)

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    def exit_now(code: int) -> None:
        raise SystemExit(code)

    monkeypatch.setattr(Project, step, interrupted)
    monkeypatch.setattr(plan_commands.os, "_exit", exit_now)
    with pytest.raises(SystemExit) as stopped:
        run_cli(capsys, *command)
    assert stopped.value.code == 130
    assert "Interrupted. Nothing was changed: planning only reads." in capsys.readouterr().err


SERVER_MANIFEST = """\
version: 1
connections:
  local: {{driver: sqlite, database: data/local.db}}
  other: {{driver: sqlite, database: data/other.db}}
  pg: {{url: '{pg}'}}
  maria: {{url: '{maria}'}}
backups:
  local-nightly: {{connection: local}}
migrations:
  to-pg: {{from: local, to: pg, mode: upsert}}
  to-maria: {{from: other, to: maria, mode: upsert}}
"""


@pytest.mark.postgres
@pytest.mark.mariadb
def test_a_row_changed_in_one_server_database_is_exactly_the_change(
    capsys,
    tmp_path: Path,
    write_manifest,
    postgres_db: ServerDatabase,
    mariadb_db: ServerDatabase,
) -> None:
    make_flights_db(tmp_path / "data/local.db", flights=300)
    make_flights_db(tmp_path / "data/other.db", flights=200)
    manifest = write_manifest(
        SERVER_MANIFEST.format(pg=postgres_db.url_string, maria=mariadb_db.url_string)
    )
    apply(capsys, manifest)
    unchanged = planned(manifest, parallelism=4)
    assert changes(unchanged) == {}
    # The servers have no cheap sign of change, and the plan says how it read them; SQLite
    # files have one.
    assert [line.split(":")[0] for line in unchanged["checks"]] == [
        "maria (MySQL/MariaDB)",
        "pg (PostgreSQL)",
    ]
    for server, address, rows in (
        (postgres_db, "migration.to-pg", 300),
        (mariadb_db, "migration.to-maria", 200),
    ):
        engine = server.engine()
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE flights SET month = 12 WHERE id = 5"))
        engine.dispose()
        parallel = planned(manifest, parallelism=4)
        reasons = changes(parallel)
        assert list(reasons) == [address]
        assert (
            f"target table flights: content changed, still {rows} rows outside dsdb"
            in (reasons[address])
        )
        assert parallel == planned(manifest, parallelism=1)
        apply(capsys, manifest)


EVERY_PROBLEM = (
    LOCAL_AND_COPY
    + """\
migrations:
  out:
    from: local
    to: copy
    tables:
      notes: {mode: upsert}
      flights: {incremental: {cursor: no_such_column}}
"""
)


def test_every_problem_of_a_resource_is_reported_at_once(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    make_flights_db(tmp_path / "data/local.db")
    with sqlite3.connect(tmp_path / "data/local.db") as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    result = run_cli(capsys, "plan", write_manifest(EVERY_PROBLEM))
    assert result.code == 1
    lines = result.err.splitlines()
    assert "  migration.out: table 'notes': mode upsert needs a key to match rows" in "\n".join(
        lines
    )
    assert "  migration.out: table 'flights': no cursor column 'no_such_column'" in lines


def test_two_copies_of_one_source_each_compare_with_their_own_sort_of_record(
    capsys,
    tmp_path: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    """A first copy into another engine records counts (and page tokens); a copy into SQLite
    records content. Planned one after the other, neither may be handed the other's sort."""
    make_flights_db(tmp_path / "data/src.db")
    manifest = write_manifest(
        "version: 1\nconnections:\n"
        "  src: {driver: sqlite, database: data/src.db}\n"
        "  duck: {driver: duckdb, database: data/copy.duckdb}\n"
        "  lite: {driver: sqlite, database: data/copy.db}\n"
        "migrations:\n  a-to-duck: {from: src, to: duck}\n  b-to-lite: {from: src, to: lite}\n"
    )
    apply(capsys, manifest)
    for parallelism in (1, 4):
        assert changes(planned(manifest, parallelism)) == {}
    with sqlite3.connect(tmp_path / "data/src.db") as db:
        db.execute("UPDATE flights SET dep_delay = 99.5 WHERE id = 7")
    assert changes(planned(manifest, parallelism=1)) == {
        "migration.a-to-duck": [
            "source table flights: its pages changed since it was first copied, still 200 rows",
            "unchanged since the last apply, not copied: airlines",
            "flights → duck.flights: 200 rows (upsert, only key ranges that differ)",
        ],
        "migration.b-to-lite": [
            "source table flights: content changed, still 200 rows",
            "unchanged since the last apply, not copied: airlines",
            "flights → lite.flights: 200 rows (upsert, only key ranges that differ)",
        ],
    }


def test_an_incremental_table_a_resync_leaves_alone_keeps_its_high_water_mark(
    capsys,
    tmp_path: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    make_flights_db(tmp_path / "data/src.db")
    manifest = write_manifest(
        "version: 1\nconnections:\n"
        "  src: {driver: sqlite, database: data/src.db}\n"
        "  lite: {driver: sqlite, database: data/copy.db}\n"
        "migrations:\n  out:\n    from: src\n    to: lite\n"
        "    tables: {airlines: {}, flights: {incremental: {cursor: id}}}\n"
    )
    apply(capsys, manifest)
    marks = open_state(".dsdb/state.db", tmp_path).read().resources["migration.out"]
    assert marks.fingerprints["high_water"] == {"flights": 200}
    with sqlite3.connect(tmp_path / "data/src.db") as db:
        db.execute("UPDATE airlines SET name = 'United Airlines' WHERE carrier = 'UA'")
    assert changes(planned(manifest, parallelism=1))["migration.out"][1] == (
        "unchanged since the last apply, not copied: flights"
    )
    apply(capsys, manifest)
    after = open_state(".dsdb/state.db", tmp_path).read().resources["migration.out"]
    assert after.fingerprints["high_water"] == {"flights": 200}
    assert changes(planned(manifest, parallelism=1)) == {}


def test_refresh_only_keeps_a_resync_after_the_resyncs_it_reads_from() -> None:
    def action(address: str, type_: ActionType, *after: str) -> Action:
        made = Action.on(address, address.split(".")[0], type_, Unchanged({}))
        return replace(made, depends_on=after)

    plan = Plan(
        "dsdb.yaml",
        "digest",
        "lineage",
        1,
        (
            action("backup.b", ActionType.CREATE),
            action("migration.a", ActionType.RESYNC, "backup.b"),
            action("migration.b", ActionType.RESYNC, "migration.a", "backup.b"),
        ),
    )

    drift = drift_only(plan)

    assert [(a.key, a.depends_on) for a in drift.actions] == [
        ("migration.a", ()),
        ("migration.b", ("migration.a",)),
    ]
