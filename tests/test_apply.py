"""plan/apply end to end on SQLite: idempotency, change detection, consent, stale plans."""

from __future__ import annotations

import io
import json
import re
import sqlite3
import sys
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress

from dsdb_plan.cli.progress import progress_columns
from dsdb_plan.state import open_state
from tests.helpers import make_flights_db, run_cli, sqlite_url, table_names, table_rows

MANIFEST = """\
version: 1
connections:
  local: {driver: sqlite, database: data/local.db}
  scratch: {driver: sqlite, database: data/scratch.db}
backups:
  nightly: {connection: local, keep: 2}
restores:
  into-scratch: {backup: nightly, to: scratch}
"""


@pytest.fixture
def project(tmp_path: Path, write_manifest) -> Path:  # type: ignore[no-untyped-def]
    make_flights_db(tmp_path / "data/local.db")
    return write_manifest(MANIFEST)


def serial(manifest: Path) -> int:
    return open_state(".dsdb/state.db", manifest.parent).read().serial


def test_first_plan_creates_backup_then_restore_in_order(capsys, project: Path) -> None:
    result = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert result.code == 2, result.text
    lines = result.out.splitlines()
    backup = next(i for i, line in enumerate(lines) if "+ backup.nightly (create)" in line)
    restore = next(i for i, line in enumerate(lines) if "+ restore.into-scratch (create)" in line)
    assert backup < restore
    assert "new backup of local: 2 tables, 203 rows" in result.out
    assert "Plan: 2 to create." in result.out
    assert not (project.parent / ".dsdb").exists(), "plan must not write state"


def test_apply_then_apply_again_changes_nothing(capsys, project: Path) -> None:
    first = run_cli(capsys, "apply", project, "--auto-approve")
    assert first.code == 0, first.text
    assert table_rows(sqlite_url(project.parent / "data/scratch.db"), "flights") == table_rows(
        sqlite_url(project.parent / "data/local.db"), "flights"
    )
    before = serial(project)
    second = run_cli(capsys, "apply", project, "--auto-approve")
    assert second.code == 0, second.text
    assert "Nothing to do." in second.out
    assert serial(project) == before
    plan = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert plan.code == 0, plan.text


def test_value_changed_in_place_is_a_resync(capsys, project: Path) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    with sqlite3.connect(project.parent / "data/local.db") as db:
        db.execute("UPDATE flights SET dep_delay = 999.5 WHERE id = 7")
    result = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert result.code == 2
    assert "↻ backup.nightly (resync)" in result.out
    assert "table flights: content changed, still 200 rows" in result.out
    assert "↻ restore.into-scratch (resync)" in result.out


def test_retention_prunes_oldest_backup_with_consent(capsys, project: Path) -> None:
    local = project.parent / "data/local.db"
    folder = project.parent / "backups/nightly"
    taken = []
    for value in (1.0, 2.0):
        with sqlite3.connect(local) as db:
            db.execute("UPDATE flights SET dep_delay = ? WHERE id = 1", (value,))
        assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
        taken.append(max(p.name for p in folder.iterdir()))
    with sqlite3.connect(local) as db:
        db.execute("UPDATE flights SET dep_delay = 3.0 WHERE id = 1")
    plan = run_cli(capsys, "plan", project)
    assert (
        f"- backup.nightly#prune (destroy)\n      prune 1 old backup (keep: 2): {taken[0]}"
        in plan.out
    )
    refused = run_cli(capsys, "apply", project, "--auto-approve")
    assert refused.code == 1 and "--allow-destroy" in refused.err
    assert sorted(p.name for p in folder.iterdir()) == taken
    assert run_cli(capsys, "apply", project, "--auto-approve", "--allow-destroy").code == 0
    kept = sorted(p.name for p in folder.iterdir())
    assert len(kept) == 2 and kept[0] == taken[1], "the oldest backup is the one pruned"
    listing = run_cli(capsys, "backups", "list", project)
    assert all(name in listing.out for name in kept) and taken[0] not in listing.out


def test_teardown_without_final_backup_and_of_a_whole_database(capsys, project: Path) -> None:
    project.write_text(
        MANIFEST.split("backups:")[0]
        + "teardowns:\n  gone: {connection: local, drop_database: true, final_backup: false}\n"
    )
    plan = run_cli(capsys, "plan", project)
    assert "drop database local" in plan.out and "no final backup" in plan.out
    assert run_cli(capsys, "apply", project, "--auto-approve", "--allow-destroy").code == 0
    assert not (project.parent / "data/local.db").exists()
    assert not (project.parent / "backups").exists()
    assert "Nothing to do." in run_cli(capsys, "apply", project, "--auto-approve").out


def test_restore_from_a_backup_folder_on_disk(capsys, project: Path) -> None:
    project.write_text(MANIFEST.split("restores:")[0])
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    folder = next((project.parent / "backups/nightly").iterdir())
    project.write_text(
        MANIFEST.split("restores:")[0]
        + f"restores:\n  from-disk: {{path: '{folder}', to: scratch}}\n"
    )
    plan = run_cli(capsys, "plan", project)
    assert f"restore backup {folder.name} into scratch" in plan.out
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    assert table_rows(sqlite_url(project.parent / "data/scratch.db"), "flights") == table_rows(
        sqlite_url(project.parent / "data/local.db"), "flights"
    )


def test_destroy_needs_consent(capsys, project: Path) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    project.write_text(
        MANIFEST.split("restores:")[0] + "teardowns:\n  wipe: {connection: scratch}\n"
    )
    plan = run_cli(capsys, "plan", project)
    assert "Destructive actions" in plan.out
    assert "- teardown.wipe (destroy)" in plan.out
    assert "drop 2 tables in scratch: airlines (3 rows), flights (200 rows)" in plan.out
    refused = run_cli(capsys, "apply", project, "--auto-approve")
    assert refused.code == 1
    assert "--allow-destroy" in refused.err
    assert table_names(sqlite_url(project.parent / "data/scratch.db")) == ["airlines", "flights"]
    done = run_cli(capsys, "apply", project, "--auto-approve", "--allow-destroy")
    assert done.code == 0, done.text
    assert table_names(sqlite_url(project.parent / "data/scratch.db")) == []
    final = list((project.parent / "backups/_teardown-wipe").iterdir())
    assert len(final) == 1, "a final backup is taken before dropping"
    again = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert again.code == 0, again.text


def test_consent_is_read_from_standard_input_as_terraform_reads_it(
    capsys, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    unanswered = run_cli(capsys, "apply", project)
    assert unanswered.code == 1
    assert (
        "Error: not applied: no answer to ask for consent; type or pipe 'yes', or pass "
        "--auto-approve" in unanswered.err
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    refused = run_cli(capsys, "apply", project)
    assert refused.code == 1 and "Error: not applied: consent was not given" in refused.err
    assert run_cli(capsys, "plan", project, "--detailed-exitcode").code == 2

    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))
    applied = run_cli(capsys, "apply", project)
    assert applied.code == 0, applied.text
    assert "Apply it? Only 'yes' is accepted: yes\n" in applied.out
    assert run_cli(capsys, "plan", project, "--detailed-exitcode").code == 0


def test_markdown_plan_shows_a_teardown_above_everything_else(capsys, project: Path) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    with sqlite3.connect(project.parent / "data/local.db") as db:
        db.execute("UPDATE flights SET month = 12 WHERE id = 2")  # a resync listed beside it
    project.write_text(
        MANIFEST.split("restores:")[0] + "teardowns:\n  wipe: {connection: scratch}\n"
    )
    markdown = run_cli(capsys, "plan", project, "--format", "markdown").out
    first_line, _, rest = markdown.partition("\n\n")
    assert first_line == "## dsdb plan"
    verdict, _, rest = rest.partition("\n\n")
    assert "1 destructive action needs consent" in verdict
    callout = rest.split("\n\n", 1)[0]
    assert "**Destructive actions**" in callout and "`teardown.wipe` (destroy)" in callout
    assert "backup.nightly" not in callout
    assert markdown.index("teardown.wipe") < markdown.index("backup.nightly")


def test_protected_connection_refuses_teardown_at_plan_time(capsys, project: Path) -> None:
    project.write_text(
        "version: 1\nconnections:\n"
        "  local: {driver: sqlite, database: data/local.db, protect: true}\n"
        "teardowns:\n  wipe: {connection: local}\n"
    )
    result = run_cli(capsys, "plan", project)
    assert result.code == 1
    assert "teardown.wipe" in result.err and "protected" in result.err
    assert "Traceback" not in result.text


def test_saved_plan_is_refused_when_data_changed(capsys, project: Path) -> None:
    plan_file = project.parent / "plan.json"
    assert run_cli(capsys, "plan", project, "-o", plan_file).code == 0
    saved = json.loads(plan_file.read_text())
    assert saved["format_version"] == 2 and saved["state_serial"] == 0
    with sqlite3.connect(project.parent / "data/local.db") as db:
        db.execute("INSERT INTO airlines VALUES ('B6', 'JetBlue')")
    result = run_cli(capsys, "apply", plan_file)
    assert result.code == 1
    assert "stale" in result.err
    assert "data in local changed: table airlines changed: 3 → 4 rows" in result.err
    assert not (project.parent / "backups").exists()


def test_saved_plan_is_refused_when_manifest_edited(capsys, project: Path) -> None:
    plan_file = project.parent / "plan.json"
    assert run_cli(capsys, "plan", project, "-o", plan_file).code == 0
    project.write_text(MANIFEST.replace("keep: 2", "keep: 5"))
    result = run_cli(capsys, "apply", plan_file)
    assert result.code == 1
    assert "the manifest was edited since the plan was made" in result.err


def test_saved_plan_applies_when_fresh(capsys, project: Path) -> None:
    plan_file = project.parent / "plan.json"
    assert run_cli(capsys, "plan", project, "-o", plan_file).code == 0
    result = run_cli(capsys, "apply", plan_file)
    assert result.code == 0, result.text
    stale = run_cli(capsys, "apply", plan_file)
    assert stale.code == 1
    assert "serial 0 -> " in stale.err


def test_a_plan_file_that_is_missing_or_not_a_plan_is_named_so(capsys, tmp_path: Path) -> None:
    missing = run_cli(capsys, "apply", tmp_path / "plan.json")
    assert missing.code == 1
    assert missing.err == f"Error: plan file not found: {tmp_path / 'plan.json'}\n"
    (tmp_path / "other.json").write_text('{"a": 1}')
    other = run_cli(capsys, "apply", tmp_path / "other.json")
    assert other.code == 1
    assert "is not a dsdb plan file (from `dsdb plan -o`)" in other.err
    manifest = run_cli(capsys, "apply", tmp_path / "dsdb.yaml")
    assert manifest.err.startswith("Error: manifest not found:")


def test_failed_action_skips_dependents_and_reports(capsys, project: Path) -> None:
    (project.parent / "blocker").write_text("a file where the backup folder should be")
    project.write_text(
        MANIFEST.replace("version: 1\n", "version: 1\nsettings: {backup_root: blocker}\n")
    )
    result = run_cli(capsys, "apply", project, "--auto-approve")
    assert result.code == 1
    assert "backup.nightly: failed" in result.err
    assert "restore.into-scratch: skipped: backup.nightly failed" in result.out
    assert "0 succeeded, 1 failed, 1 skipped" in result.out
    assert "Traceback" not in result.text
    assert table_names(sqlite_url(project.parent / "data/scratch.db")) == []


def test_targeting_warns_about_cut_dependency(capsys, project: Path) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    with sqlite3.connect(project.parent / "data/local.db") as db:
        db.execute("DELETE FROM flights WHERE id = 3")
    result = run_cli(capsys, "plan", project, "--target", "restore.into-scratch")
    assert "backup.nightly (resync)" not in result.out
    assert "depends on backup.nightly, which is not selected" in result.out
    unknown = run_cli(capsys, "plan", project, "--target", "migration.x")
    assert unknown.code == 1
    assert unknown.err == (
        "Error: --target migration.x: unknown resource 'migration.x' (known: backup.nightly, "
        "restore.into-scratch)\n"
    )
    misspelt = run_cli(
        capsys, "apply", project, "--exclude", "restore.into-scrach", "--target", "backup.nighty"
    )
    assert misspelt.code == 1
    assert misspelt.err == (
        "Error: --target backup.nighty: unknown resource 'backup.nighty' — did you mean "
        "'backup.nightly'?\n--exclude restore.into-scrach: unknown resource "
        "'restore.into-scrach' — did you mean 'restore.into-scratch'?\n"
    )


def test_corrupted_backup_is_refused_naming_the_file(capsys, project: Path) -> None:
    project.write_text(MANIFEST.split("restores:")[0])
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    data_file = next((project.parent / "backups/nightly").glob("*/*flights*"))
    corrupted = bytearray(data_file.read_bytes())
    corrupted[len(corrupted) // 2] ^= 0xFF
    data_file.write_bytes(bytes(corrupted))

    verify = run_cli(capsys, "backups", "verify", project)
    assert verify.code == 1
    assert data_file.name in verify.err

    project.write_text(MANIFEST)
    restore = run_cli(capsys, "apply", project, "--auto-approve")
    assert restore.code == 1
    assert data_file.name in restore.err
    assert table_names(sqlite_url(project.parent / "data/scratch.db")) == []


def test_keep_change_updates_the_record_without_a_new_backup(capsys, project: Path) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    project.write_text(MANIFEST.replace("keep: 2", "keep: 4"))
    plan = run_cli(capsys, "plan", project)
    assert "~ backup.nightly (update)" in plan.out
    assert "keep: 2 → 4" in plan.out
    assert "restore.into-scratch (resync)" not in plan.out
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    assert len(list((project.parent / "backups/nightly").iterdir())) == 1
    assert "Nothing to do." in run_cli(capsys, "apply", project, "--auto-approve").out


def test_restore_over_a_protected_target_holding_data_is_refused(capsys, project: Path) -> None:
    make_flights_db(project.parent / "data/scratch.db", flights=5)
    project.write_text(
        MANIFEST.replace(
            "scratch: {driver: sqlite, database: data/scratch.db}",
            "scratch: {driver: sqlite, database: data/scratch.db, protect: true}",
        ).replace(
            "{backup: nightly, to: scratch}",
            "{backup: nightly, to: scratch, replace_existing: true}",
        )
    )
    result = run_cli(capsys, "plan", project)
    assert result.code == 1
    assert "restore.into-scratch: connection 'scratch' is protected" in result.err
    assert len(table_rows(sqlite_url(project.parent / "data/scratch.db"), "flights")) == 5


def test_restore_over_rows_changed_outside_dsdb_needs_consent(capsys, project: Path) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    with sqlite3.connect(project.parent / "data/scratch.db") as db:
        db.execute("INSERT INTO airlines VALUES ('ZZ', 'Made in scratch')")
    with sqlite3.connect(project.parent / "data/local.db") as db:
        db.execute("UPDATE flights SET month = 12 WHERE id = 2")
    plan = run_cli(capsys, "plan", project)
    assert "Destructive actions" in plan.out
    assert "target changed outside dsdb: table airlines changed: 3 → 4 rows" in plan.out
    refused = run_cli(capsys, "apply", project, "--auto-approve")
    assert refused.code == 1 and "--allow-destroy" in refused.err
    scratch = sqlite_url(project.parent / "data/scratch.db")
    assert ("ZZ", "Made in scratch") in table_rows(scratch, "airlines")


def test_saved_plan_is_refused_when_a_table_it_overwrites_changed(capsys, project: Path) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    with sqlite3.connect(project.parent / "data/local.db") as db:
        db.execute("UPDATE flights SET month = 12 WHERE id = 2")
    plan_file = project.parent / "plan.json"
    assert run_cli(capsys, "plan", project, "-o", plan_file).code == 0
    with sqlite3.connect(project.parent / "data/scratch.db") as db:
        db.execute("INSERT INTO airlines VALUES ('ZZ', 'Made in scratch')")
    result = run_cli(capsys, "apply", plan_file)
    assert result.code == 1
    assert "data in scratch changed: table airlines changed: 3 → 4 rows" in result.err


def test_target_and_exclude_read_only_what_they_select(capsys, project: Path) -> None:
    project.write_text(
        MANIFEST.replace(
            "connections:\n", "connections:\n  down: {url: 'postgresql://u@127.0.0.1:1/x'}\n"
        ).replace("backups:\n", "backups:\n  down-nightly: {connection: down}\n")
    )
    everything = run_cli(capsys, "plan", project)
    assert everything.code == 1 and "cannot reach connection 'down'" in everything.err
    targeted = run_cli(capsys, "plan", project, "--target", "backup.nightly")
    assert targeted.code == 0, targeted.text
    assert "backup.nightly (create)" in targeted.out and "restore" not in targeted.out
    excluded = run_cli(capsys, "plan", project, "--exclude", "backup.down-nightly")
    assert excluded.code == 0, excluded.text
    assert "restore.into-scratch (create)" in excluded.out
    applied = run_cli(
        capsys, "apply", project, "--auto-approve", "--exclude", "backup.down-nightly"
    )
    assert applied.code == 0, applied.text


def test_removing_resources_forgets_restores_and_deletes_backups_with_consent(
    capsys, project: Path
) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    backups = project.parent / "backups/nightly"
    (backup_id,) = [p.name for p in backups.iterdir()]
    project.write_text(MANIFEST.split("backups:")[0])
    plan = run_cli(capsys, "plan", project)
    removed = "- backup.nightly (destroy)\n      removed from the manifest\n      delete its"
    assert f"{removed} 1 backup: {backup_id}" in plan.out
    assert "the record is forgotten; restored data stays" in plan.out
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 1
    assert run_cli(capsys, "apply", project, "--auto-approve", "--allow-destroy").code == 0
    assert list(backups.iterdir()) == []
    assert run_cli(capsys, "state", "list", project).out == ""
    assert table_names(sqlite_url(project.parent / "data/scratch.db")) == ["airlines", "flights"]


def test_the_terminal_progress_shows_rows_with_separators_and_rows_per_second() -> None:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    display = Progress(*progress_columns(), console=console)
    task = display.add_task("migration.m flights", total=5000)
    display.update(task, completed=5000)  # one update: too few for rich's own estimate
    unknown_total = display.add_task("backup.b flights", total=None)
    display.update(unknown_total, completed=1234567)

    console.print(display.make_tasks_table(display.tasks))

    first, second = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert "migration.m flights" in first and " 5,000/5,000 " in first
    assert re.search(r" [\d,]+ rows/s ", first), first
    assert " 1,234,567 " in second and re.search(r" [\d,]+ rows/s ", second), second


def test_a_checkpoint_left_by_a_resource_removed_from_the_manifest_is_shown_and_dropped(
    capsys, project: Path
) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    store = open_state(".dsdb/state.db", project.parent)
    store.save_checkpoint("migration.gone", {"done": {"flights": 120}})
    plan = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert plan.code == 2, plan.text
    assert "- migration.gone (destroy)" in plan.out
    assert "the unfinished apply's checkpoint is dropped; what it wrote stays" in plan.out
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert applied.code == 0, applied.text
    assert "migration.gone" not in open_state(".dsdb/state.db", project.parent).read().checkpoints
    assert run_cli(capsys, "plan", project, "--detailed-exitcode").code == 0


def test_a_teardown_of_tables_a_restore_of_every_table_writes_is_a_plan_error(
    capsys, project: Path
) -> None:
    project.write_text(MANIFEST + "teardowns:\n  tidy: {connection: scratch, tables: [flights]}\n")
    assert run_cli(capsys, "validate", project).code == 0  # only the backup's tables tell
    plan = run_cli(capsys, "plan", project)
    assert plan.code == 1
    assert (
        "teardown.tidy: drops flights of 'scratch' that restore.into-scratch writes: "
        "each apply would undo the other"
    ) in plan.err


def test_a_saved_restore_refuses_a_target_table_that_got_data_after_the_plan(
    capsys, project: Path
) -> None:
    assert (
        run_cli(capsys, "apply", project, "--auto-approve", "--target", "backup.nightly").code == 0
    )
    plan_file = project.parent / "plan.json"
    planned = run_cli(capsys, "plan", project, "-o", plan_file)
    assert "+ restore.into-scratch (create)" in planned.out
    with sqlite3.connect(project.parent / "data/scratch.db") as db:
        db.executescript(
            "CREATE TABLE airlines (carrier TEXT); INSERT INTO airlines VALUES ('ZZ');"
        )

    refused = run_cli(capsys, "apply", plan_file)
    assert refused.code == 1
    assert (
        "table airlines in scratch holds 1 row that the plan did not show it replaces"
        in refused.err
    )
    assert table_rows(sqlite_url(project.parent / "data/scratch.db"), "airlines") == [("ZZ",)]
