"""Scheduling: independent actions run in parallel, dependencies and shared databases are
respected; an unreadable database is a clear error."""

from __future__ import annotations

import threading
from pathlib import Path

from dsdb_plan.graph import io_conflict
from dsdb_plan.manifest import parse_manifest
from dsdb_plan.plan import Action, ActionType
from dsdb_plan.project import Project
from tests.helpers import make_flights_db, run_cli, sqlite_url, table_rows

MANIFEST = """\
version: 1
connections:
  a: {driver: sqlite, database: data/a.db}
  b: {driver: sqlite, database: data/b.db}
  a-copy: {driver: sqlite, database: data/a-copy.db}
backups:
  a-nightly: {connection: a}
  b-nightly: {connection: b}
restores:
  a-into-copy: {backup: a-nightly, to: a-copy}
"""


def action(address: str) -> Action:
    return Action(address, address, address.split(".")[0], ActionType.CREATE)


def test_conflicts_follow_the_databases_actions_touch(tmp_path: Path) -> None:
    conflict = io_conflict(parse_manifest(MANIFEST, base_dir=tmp_path))
    a, b = action("backup.a-nightly"), action("backup.b-nightly")
    restore = action("restore.a-into-copy")
    assert not conflict(a, b)
    assert not conflict(a, restore)
    assert conflict(a, a)


def test_only_a_single_writer_database_keeps_two_readers_apart(tmp_path: Path) -> None:
    manifest = (
        "version: 1\n"
        "connections:\n"
        "  file: {driver: sqlite, database: data/file.db}\n"
        "  server: {driver: postgresql, host: 127.0.0.1, database: flights}\n"
        "backups:\n"
        "  file-1: {connection: file}\n"
        "  file-2: {connection: file}\n"
        "  server-1: {connection: server}\n"
        "  server-2: {connection: server}\n"
    )
    conflict = io_conflict(parse_manifest(manifest, base_dir=tmp_path))
    assert conflict(action("backup.file-1"), action("backup.file-2"))
    assert not conflict(action("backup.server-1"), action("backup.server-2"))


def test_parallel_apply_runs_everything_and_orders_dependents(
    capsys, tmp_path: Path, write_manifest
) -> None:
    make_flights_db(tmp_path / "data/a.db", flights=300)
    make_flights_db(tmp_path / "data/b.db", flights=100)
    manifest = write_manifest(MANIFEST)
    result = run_cli(capsys, "apply", manifest, "--auto-approve", "--parallelism", "3")
    assert result.code == 0, result.text
    assert "3 succeeded, 0 failed, 0 skipped" in result.out
    assert result.out.index("backup.a-nightly: done") < result.out.index(
        "restore.a-into-copy: create..."
    )
    assert table_rows(sqlite_url(tmp_path / "data/a-copy.db"), "flights") == table_rows(
        sqlite_url(tmp_path / "data/a.db"), "flights"
    )


def test_unreadable_database_is_a_clear_plan_error(capsys, tmp_path: Path, write_manifest) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data/a.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    make_flights_db(tmp_path / "data/b.db", flights=10)
    manifest = write_manifest(MANIFEST.split("restores:")[0])
    plan = run_cli(capsys, "plan", manifest)
    assert plan.code == 1
    assert "backup.a-nightly: the database refused a read: file is not a database" in plan.err
    assert "bug in dsdb" not in plan.err and "Traceback" not in plan.text


def test_a_cancelled_apply_stops_the_running_action_and_starts_no_other(
    tmp_path: Path, write_manifest
) -> None:
    make_flights_db(tmp_path / "data/a.db", flights=300)
    make_flights_db(tmp_path / "data/b.db", flights=100)
    cancel = threading.Event()
    with Project.open(write_manifest(MANIFEST)) as project, project.locked("apply"):
        # Asked to stop as the first batch of the first action is reported.
        report = project.apply(project.plan(), progress=lambda *_: cancel.set(), cancel=cancel)
        results = {r.key: r for r in report.results}
        stopped = [r for r in report.results if r.message != "not started"]
        assert len(results) == 3 and len(stopped) == 1
        assert stopped[0].status == "interrupted" and "stopped" in stopped[0].message
        assert {r.status for r in results.values()} == {"interrupted"} and not report.ok
        assert project.store.read().resources == {}
        assert [(e.address, e.outcome) for e in project.store.history()] == [
            (stopped[0].key, "interrupted")
        ]
    # The backup it stopped left nothing behind, not even its temporary folder.
    assert list((tmp_path / "backups").glob("*/*")) == []
