"""Applying a backup or a restore records the fingerprint of exactly the data involved.

The plan fingerprints a backup's source; the apply reuses that fingerprint while the SQLite
file is untouched, and otherwise hashes the rows the backup reads (one read, not two). A
restore fingerprints each table it loaded (on a server while the next one loads).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan import fingerprint
from dsdb_plan.archive import iter_rows, read_backup_info
from dsdb_plan.fingerprint import fingerprint_database
from dsdb_plan.kinds.backup import BackupKind
from dsdb_plan.state import open_state
from tests.helpers import EVERY_DATABASE, make_flights_db, run_cli, sqlite_url
from tests.servers import ServerDatabase

MANIFEST = """\
version: 1
connections:
  local: {driver: sqlite, database: data/local.db}
backups:
  nightly: {connection: local, keep: 2}
"""


@pytest.fixture
def project(tmp_path: Path, write_manifest) -> Path:  # type: ignore[no-untyped-def]
    make_flights_db(tmp_path / "data/local.db")
    return write_manifest(MANIFEST)


def _recorded(manifest: Path) -> dict[str, Any]:
    record = open_state(".dsdb/state.db", manifest.parent).read().resources["backup.nightly"]
    return {"read": record.fingerprints["read"], "latest": record.artifacts[0]}


def _live(manifest: Path) -> dict[str, Any]:
    engine = sa.create_engine(sqlite_url(manifest.parent / "data/local.db"))
    try:
        return fingerprint_database(engine).to_dict()
    finally:
        engine.dispose()


def test_backup_records_the_planned_fingerprint_of_unchanged_data(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    recorded = _recorded(project)
    assert recorded["read"] == _live(project)
    assert recorded["latest"]["fingerprint"] == recorded["read"]
    assert run_cli(capsys, "plan", project, "--detailed-exitcode").code == 0


def test_rows_written_between_plan_and_backup_are_in_the_backup_and_its_fingerprint(
    capsys: pytest.CaptureFixture[str], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    take = BackupKind.take

    def take_after_a_write(self: BackupKind, *args: Any, **kwargs: Any) -> Any:
        with sqlite3.connect(project.parent / "data/local.db") as db:
            db.execute("INSERT INTO airlines VALUES ('B6', 'JetBlue')")
        return take(self, *args, **kwargs)

    monkeypatch.setattr(BackupKind, "take", take_after_a_write)
    result = run_cli(capsys, "apply", project, "--auto-approve")
    assert result.code == 0, result.text
    monkeypatch.undo()

    recorded = _recorded(project)
    assert recorded["read"] == _live(project)
    assert recorded["read"]["tables"]["airlines"]["rows"] == 4
    info = read_backup_info(Path(recorded["latest"]["path"]))
    assert ["B6", "JetBlue"] in list(iter_rows(info, "airlines"))
    assert recorded["latest"]["fingerprint"] == recorded["read"]
    plan = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert plan.code == 0, plan.text


@pytest.mark.parametrize("kind", EVERY_DATABASE)
def test_restore_records_what_it_wrote_and_sees_later_edits(
    capsys: pytest.CaptureFixture[str],
    project: Path,
    request: pytest.FixtureRequest,
    kind: str,
) -> None:
    if kind == "sqlite":
        url = sqlite_url(project.parent / "data/restored.db")
    else:
        url = request.getfixturevalue("postgres_db" if kind == "postgresql" else "mariadb_db").url
    target = f"  target: {{url: '{sa.make_url(url).render_as_string(hide_password=False)}'}}\n"
    project.write_text(
        MANIFEST.replace("connections:\n", "connections:\n" + target)
        + "restores:\n  back: {backup: nightly, to: target}\n"
    )
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0

    state = open_state(".dsdb/state.db", project.parent).read()
    written = state.resources["restore.back"].fingerprints["written"]
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        assert written["tables"] == fingerprint_database(engine).to_dict()["tables"]
        assert written["tables"]["flights"]["rows"] == 200
        assert run_cli(capsys, "plan", project, "--detailed-exitcode").code == 0
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE flights SET month = 7 WHERE id = 3")
    finally:
        engine.dispose()
    plan = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert plan.code == 2, plan.text
    assert "target changed outside dsdb: table flights: content changed, still 200 rows" in plan.out


def test_a_restored_table_dropped_outside_dsdb_is_restored_again(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    restored = project.parent / "data/restored.db"
    project.write_text(
        MANIFEST.replace(
            "connections:\n",
            "connections:\n  target: {driver: sqlite, database: data/restored.db}\n",
        )
        + "restores:\n  back: {backup: nightly, to: target}\n"
    )
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    with sqlite3.connect(restored) as db:
        db.execute("DROP TABLE flights")
    plan = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert plan.code == 2, plan.text
    assert "target table flights removed outside dsdb" in plan.out
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    with sqlite3.connect(restored) as db, sqlite3.connect(project.parent / "data/local.db") as src:
        query = "SELECT * FROM flights ORDER BY id"
        assert db.execute(query).fetchall() == src.execute(query).fetchall()
    assert run_cli(capsys, "plan", project, "--detailed-exitcode").code == 0


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_teardown_of_a_whole_server_database_is_then_already_gone(
    capsys: pytest.CaptureFixture[str],
    project: Path,
    request: pytest.FixtureRequest,
    kind: str,
) -> None:
    server: ServerDatabase = request.getfixturevalue(f"{kind}_db")
    doomed = ServerDatabase(server.kind, server.admin_url, f"{server.name}_doomed")
    doomed.create()
    try:
        project.write_text(
            "version: 1\nconnections:\n"
            f"  doomed: {{url: '{doomed.url_string}'}}\n"
            "teardowns:\n  gone: {connection: doomed, drop_database: true, final_backup: false}\n"
        )
        done = run_cli(capsys, "apply", project, "--auto-approve", "--allow-destroy")
        assert done.code == 0, done.text
        assert "drop database doomed" in done.out

        again = run_cli(capsys, "plan", project, "--detailed-exitcode")
        assert again.code == 0, again.text  # the teardown's database is gone: nothing to do
    finally:
        doomed.drop()


def test_a_plan_reads_no_row_of_a_restored_sqlite_file_that_did_not_change(
    capsys: pytest.CaptureFixture[str], project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.write_text(
        MANIFEST.replace(
            "connections:\n", "connections:\n  target: {driver: sqlite, database: data/to.db}\n"
        )
        + "restores:\n  back: {backup: nightly, to: target}\n"
    )
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0

    def no_reads(*args: Any) -> Any:
        raise AssertionError("the plan read rows although the file's change token held")

    with monkeypatch.context() as patched:
        patched.setattr(fingerprint, "read_chunks", no_reads)
        assert run_cli(capsys, "plan", project, "--detailed-exitcode").code == 0
    with sqlite3.connect(project.parent / "data/to.db") as conn:
        conn.execute("UPDATE flights SET month = 7 WHERE id = 3")
    plan = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert "target changed outside dsdb: table flights: content changed" in plan.out


def test_a_restore_of_a_backup_not_taken_says_so_plainly(
    capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    project.write_text(
        MANIFEST.replace(
            "connections:\n", "connections:\n  target: {driver: sqlite, database: t.db}\n"
        )
        + "restores:\n  back: {backup: nightly, to: target}\n"
    )
    untaken = run_cli(capsys, "plan", project, "--exclude", "backup.nightly")
    assert untaken.code == 1
    assert "  restore.back: backup.nightly has no backup yet to restore\n" in untaken.err

    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    project.write_text(project.read_text().replace("to: target}", "to: target, backup_id: nope}"))
    unknown = run_cli(capsys, "plan", project)
    assert unknown.code == 1
    assert "  restore.back: backup.nightly has no backup nope to restore\n" in unknown.err


def test_a_restore_path_is_read_relative_to_the_manifest_not_the_current_folder(
    capsys: pytest.CaptureFixture[str],
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    backup_id = _recorded(project)["latest"]["id"]
    project.write_text(
        MANIFEST.replace("backups:", "  copy: {driver: sqlite, database: data/copy.db}\nbackups:")
        + f"restores:\n  from_folder: {{path: backups/nightly/{backup_id}, to: copy}}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0

    def rows(name: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(project.parent / "data" / name) as db:
            return db.execute("SELECT * FROM flights ORDER BY id").fetchall()

    assert rows("copy.db") == rows("local.db") != []
    assert not (elsewhere / "backups").exists()
    assert run_cli(capsys, "plan", project, "--detailed-exitcode").code == 0
