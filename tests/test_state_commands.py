"""state list/show/rm/mv/pull/push, history, moved:, refresh-only, and variables per environment."""

from __future__ import annotations

import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dsdb_plan.state import open_state
from tests.helpers import make_flights_db, run_cli

MANIFEST = """\
version: 1
connections:
  local: {driver: sqlite, database: data/local.db}
backups:
  nightly: {connection: local}
"""


@pytest.fixture
def applied(capsys, tmp_path: Path, write_manifest) -> Path:  # type: ignore[no-untyped-def]
    make_flights_db(tmp_path / "data/local.db")
    manifest = write_manifest(MANIFEST)
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    return manifest


def serial(manifest: Path) -> int:
    return open_state(".dsdb/state.db", manifest.parent).read().serial


def test_state_list_and_show(capsys, applied: Path) -> None:
    listing = run_cli(capsys, "state", "list", applied)
    assert listing.out.startswith("backup.nightly  applied")
    shown = json.loads(run_cli(capsys, "state", "show", "backup.nightly", applied).out)
    assert shown["record"]["kind"] == "backup"
    missing = run_cli(capsys, "state", "show", "backup.nope", applied)
    assert missing.code == 1 and "backup.nope is not in the state" in missing.err


def test_a_truncated_state_stops_the_plan_and_a_pulled_copy_mends_it(
    capsys, applied: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "state.json"
    copy.write_text(run_cli(capsys, "state", "pull", applied).out)
    state = applied.parent / ".dsdb/state.db"
    for leftover in state.parent.glob("state.db-*"):  # the WAL, which a truncation outlives
        leftover.unlink()
    state.write_bytes(b"")

    planned = run_cli(capsys, "plan", applied)
    assert planned.code == 1
    assert f"state file {state} is empty (0 bytes)" in planned.err
    assert "create" not in planned.out

    state.rename(tmp_path / "damaged.db")
    assert run_cli(capsys, "state", "push", copy, applied).code == 0
    assert "No changes" in run_cli(capsys, "plan", applied).out


def test_pull_then_push_round_trips_and_older_serial_is_refused(
    capsys, applied: Path, tmp_path: Path
) -> None:
    pulled = tmp_path / "state.json"
    pulled.write_text(run_cli(capsys, "state", "pull", applied).out)
    before = json.loads(pulled.read_text())
    pushed = run_cli(capsys, "state", "push", pulled, applied)
    assert pushed.code == 0 and f"Pushed {pulled}: 1 resource (state serial" in pushed.out
    assert json.loads(run_cli(capsys, "state", "pull", applied).out) == before

    with sqlite3.connect(applied.parent / "data/local.db") as db:
        db.execute("DELETE FROM flights WHERE id = 1")
    assert run_cli(capsys, "apply", applied, "--auto-approve").code == 0
    older = run_cli(capsys, "state", "push", pulled, applied)
    assert older.code == 1 and "older than the state" in older.err
    assert run_cli(capsys, "state", "push", pulled, applied, "--force").code == 0


def test_push_of_another_lineage_is_refused(capsys, applied: Path, tmp_path: Path) -> None:
    document = json.loads(run_cli(capsys, "state", "pull", applied).out)
    document["lineage"] = "someone-else"
    document["serial"] += 10
    other = tmp_path / "other.json"
    other.write_text(json.dumps(document))
    result = run_cli(capsys, "state", "push", other, applied)
    assert result.code == 1 and "belongs to another state" in result.err


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ('{"serial": 3, "resources": {}}', 'the field "lineage" is missing'),
        ("{}", 'the fields "lineage" and "serial" are missing'),
        ("[]", 'expected an object with the fields "lineage" and "serial"'),
        ('{"lineage": "x", "serial": "three"}', 'the field "serial" is not a whole number'),
        (
            '{"lineage": "x", "serial": 3, "resources": []}',
            'the field "resources" is not an object',
        ),
        (
            '{"lineage": "x", "serial": 3, "resources": {"backup.a": {"address": "backup.a",'
            ' "kind": "backup", "spec": {}, "spec_digest": "", "fingerprints": {},'
            ' "artifacts": [], "status": "applied"}}}',
            'resource backup.a: the field "updated_at" is missing',
        ),
        ('{"lineage": ', "not JSON (line 1, column 13: Expecting value)"),
    ],
    ids=["lineage", "both", "list", "serial", "resources", "record", "not-json"],
)
def test_push_of_a_malformed_document_says_what_is_wrong(
    capsys, applied: Path, tmp_path: Path, document: str, expected: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(document)
    result = run_cli(capsys, "state", "push", bad, applied)
    assert result.code == 1
    assert result.err == f"Error: {bad} is not a dsdb state document: {expected}\n"


def test_rm_forgets_without_touching_backups(capsys, applied: Path) -> None:
    backups = list((applied.parent / "backups/nightly").iterdir())
    assert run_cli(capsys, "state", "rm", "backup.nightly", applied).code == 0
    assert run_cli(capsys, "state", "list", applied).out == ""
    assert list((applied.parent / "backups/nightly").iterdir()) == backups


def test_renaming_with_moved_plans_no_create_and_no_destroy(capsys, applied: Path) -> None:
    applied.write_text(
        MANIFEST.replace("nightly:", "daily:")
        + "moved:\n  - {from: backup.nightly, to: backup.daily}\n"
    )
    plan = run_cli(capsys, "plan", applied)
    assert "(create)" not in plan.out and "(destroy)" not in plan.out
    assert "→ backup.nightly is now backup.daily" in plan.out
    assert "Plan: 1 to move." in plan.out
    moved = run_cli(capsys, "apply", applied, "--auto-approve")
    assert moved.code == 0
    assert "Apply complete: 0 succeeded, 0 failed, 0 skipped; 1 rename recorded." in moved.out
    assert "backup.daily" in run_cli(capsys, "state", "list", applied).out
    assert "Nothing to do." in run_cli(capsys, "apply", applied, "--auto-approve").out


def test_state_mv_renames_the_record(capsys, applied: Path) -> None:
    assert run_cli(capsys, "state", "mv", "backup.nightly", "backup.daily", applied).code == 0
    applied.write_text(MANIFEST.replace("nightly:", "daily:"))
    assert run_cli(capsys, "plan", applied, "--detailed-exitcode").code == 0
    wrong_kind = run_cli(capsys, "state", "mv", "backup.daily", "restore.daily", applied)
    assert wrong_kind.code == 1


def test_history_shows_who_did_what(capsys, applied: Path, monkeypatch) -> None:
    entries = json.loads(run_cli(capsys, "history", "-m", applied, "--format", "json").out)
    assert entries[0]["address"] == "backup.nightly"
    assert entries[0]["outcome"] == "ok" and entries[0]["rows"] == 203
    text = run_cli(capsys, "history", "backup.nightly", "-m", applied)
    assert "backup.nightly  create  ok  203 rows" in text.out


def test_history_takes_the_manifest_as_other_commands_do(capsys, applied: Path) -> None:
    with_option = run_cli(capsys, "history", "-m", applied, "--format", "json")
    assert json.loads(with_option.out)[0]["address"] == "backup.nightly"
    assert run_cli(capsys, "history", applied, "--format", "json") == with_option
    one = run_cli(capsys, "history", "backup.nightly", applied)
    assert one == run_cli(capsys, "history", "backup.nightly", "-m", applied)
    assert "backup.nightly  create  ok  203 rows" in one.out
    both = run_cli(capsys, "history", "backup.nightly", applied, "-m", applied)
    assert both.code == 1 and "give the manifest once" in both.err


def test_history_help_takes_addr_and_manifest_as_other_commands_do(capsys) -> None:
    history = run_cli(capsys, "history", "--help").out
    assert "Usage: dsdb history [OPTIONS] [ADDR] [MANIFEST]" in history
    assert "--manifest" not in history, "-m still works, but MANIFEST is the argument"
    for command in ("state", "show"), ("state", "rm"):
        assert "ADDR [MANIFEST]" in run_cli(capsys, *command, "--help").out


def test_history_of_an_address_nobody_knows_is_an_error(capsys, applied: Path) -> None:
    unknown = run_cli(capsys, "history", "migration.nope", applied)
    assert unknown.code == 1
    assert unknown.err == "Error: no resource migration.nope in the manifest or the state\n"

    applied.write_text(MANIFEST + "  weekly: {connection: local}\n")
    declared = run_cli(capsys, "history", "backup.weekly", applied)
    assert declared.code == 0 and declared.out == "No history recorded for backup.weekly.\n"


def test_history_of_a_lone_argument_that_is_no_address_nor_file(
    capsys, applied: Path, monkeypatch
) -> None:
    monkeypatch.chdir(applied.parent)
    result = run_cli(capsys, "history", "nope.x")
    assert result.code == 1
    assert "'nope.x' is neither an address (kind.name, e.g. backup.nightly)" in result.err
    assert "nor a manifest file" in result.err
    missing = run_cli(capsys, "history", "other.yaml")
    assert missing.code == 1 and "manifest not found: other.yaml" in missing.err


def test_history_follows_moved_and_state_mv_renames(capsys, applied: Path) -> None:
    applied.write_text(
        MANIFEST.replace("nightly:", "daily:")
        + "moved:\n  - {from: backup.nightly, to: backup.daily}\n"
    )
    assert run_cli(capsys, "apply", applied, "--auto-approve").code == 0
    assert run_cli(capsys, "state", "mv", "backup.daily", "backup.weekly", applied).code == 0

    entries = json.loads(
        run_cli(capsys, "history", "backup.weekly", applied, "--format", "json").out
    )
    assert [(e["address"], e["action"]) for e in entries] == [
        ("backup.weekly", "move"),
        ("backup.daily", "move"),
        ("backup.nightly", "create"),
    ]
    assert [e["message"] for e in entries[:2]] == [
        "moved from backup.daily",
        "moved from backup.nightly",
    ]
    text = run_cli(capsys, "history", "backup.weekly", applied).out
    assert "backup.nightly  create  ok  203 rows" in text


def test_history_of_a_renamed_address_taken_again_starts_at_the_rename(
    capsys, applied: Path
) -> None:
    assert run_cli(capsys, "state", "mv", "backup.nightly", "backup.daily", applied).code == 0
    applied.write_text(MANIFEST + "  daily: {connection: local}\n")
    assert run_cli(capsys, "apply", applied, "--auto-approve").code == 0

    entries = json.loads(
        run_cli(capsys, "history", "backup.nightly", applied, "--format", "json").out
    )
    assert [(e["address"], e["action"]) for e in entries] == [("backup.nightly", "create")]
    assert len(json.loads(run_cli(capsys, "history", applied, "--format", "json").out)) == 3


def test_refresh_only_reports_drift_and_not_manifest_edits(capsys, applied: Path) -> None:
    applied.write_text(MANIFEST + "  weekly: {connection: local}\n")
    quiet = run_cli(capsys, "plan", applied, "--refresh-only", "--detailed-exitcode")
    assert quiet.code == 0, quiet.text
    with sqlite3.connect(applied.parent / "data/local.db") as db:
        db.execute("UPDATE airlines SET name = 'Changed' WHERE carrier = 'UA'")
    drift = run_cli(capsys, "plan", applied, "--refresh-only", "--detailed-exitcode")
    assert drift.code == 2
    assert "backup.nightly (resync)" in drift.out
    assert "backup.weekly" not in drift.out


VARIABLE_MANIFEST = """\
version: 1
variables:
  env: {description: staging or production}
  password: {sensitive: true, default: "s3cret-value-42"}
connections:
  local: {driver: sqlite, database: "data/${var:env}.db"}
  copy: {driver: sqlite, database: "data/${var:env}-copy.db"}
backups:
  nightly: {connection: local}
migrations:
  by-secret:
    from: local
    to: copy
    tables:
      airlines: {where: {carrier: "${var:password}"}}
"""


def test_one_manifest_serves_two_environments(capsys, tmp_path: Path, write_manifest) -> None:
    make_flights_db(tmp_path / "data/staging.db", flights=10)
    make_flights_db(tmp_path / "data/production.db", flights=30)
    manifest = write_manifest(VARIABLE_MANIFEST)
    saved = tmp_path / "plan.json"
    staging = run_cli(capsys, "plan", manifest, "--var", "env=staging", "-o", saved)
    production = run_cli(capsys, "plan", manifest, "--var", "env=production")
    assert "13 rows" in staging.out and "33 rows" in production.out
    applied = run_cli(capsys, "apply", manifest, "--var", "env=staging", "--auto-approve")
    assert applied.code == 0, applied.text
    pulled = run_cli(capsys, "state", "pull", manifest, "--var", "env=staging")
    for output in (staging.text, production.text, saved.read_text(), applied.text, pulled.out):
        assert "s3cret-value-42" not in output
    missing = run_cli(capsys, "plan", manifest)
    assert missing.code == 1 and "variable 'env' is required" in missing.err


def test_refresh_only_plans_cannot_be_saved(capsys, applied: Path, tmp_path: Path) -> None:
    result = run_cli(capsys, "plan", applied, "--refresh-only", "-o", tmp_path / "p.json")
    assert result.code == 1 and "cannot be saved" in result.err
    assert not (tmp_path / "p.json").exists()


def hold_lock(manifest: Path, host: str, pid: int) -> None:
    """Write the lock row a run on `host` with process `pid` would hold."""
    with sqlite3.connect(manifest.parent / ".dsdb/state.db") as db:
        db.execute(
            "INSERT INTO lock (slot, id, user, host, pid, since, operation)"
            " VALUES (1, 'lock-1', 'alice', ?, ?, '2026-12-07T12:00:00Z', 'apply')",
            (host, pid),
        )
    db.close()


def test_force_unlock_asks_and_says_the_holder_is_alive(
    capsys, applied: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hold_lock(applied, socket.gethostname(), os.getpid())
    monkeypatch.setattr(sys, "stdin", io.StringIO("no\n"))
    refused = run_cli(capsys, "force-unlock", "lock-1", applied)
    assert refused.code == 1
    assert f"Its process {os.getpid()} is alive on this host" in refused.out
    assert "Error: not released: consent was not given" in refused.err
    assert open_state(".dsdb/state.db", applied.parent).lock_holder() is not None

    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))
    released = run_cli(capsys, "force-unlock", "lock-1", applied)
    assert released.code == 0, released.text
    assert "Released the lock: it was locked by alice@" in released.out
    assert open_state(".dsdb/state.db", applied.parent).lock_holder() is None


def test_force_unlock_without_an_answer_needs_force(capsys, applied: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    hold_lock(applied, socket.gethostname(), dead.pid)
    refused = run_cli(capsys, "force-unlock", "lock-1", applied)
    assert refused.code == 1
    assert f"Its process {dead.pid} no longer runs on this host." in refused.out
    assert "not released: no answer to ask; type or pipe 'yes', or --force" in refused.err
    forced = run_cli(capsys, "force-unlock", "lock-1", applied, "--force")
    assert forced.code == 0 and "Its process" not in forced.out


def test_force_unlock_of_another_hosts_lock_says_it_cannot_tell(
    capsys, applied: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hold_lock(applied, "build-agent-7", 4242)
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))
    released = run_cli(capsys, "force-unlock", "lock-1", applied)
    assert released.code == 0, released.text
    assert (
        "It was taken on another host (build-agent-7): whether process 4242 still runs there "
        "cannot be told from here." in released.out
    )


@pytest.mark.parametrize(
    "command",
    [
        ("state", "list"),
        ("state", "show", "backup.nightly"),
        ("history",),
        ("history", "backup.nightly"),
        ("backups", "list"),
        ("backups", "verify"),
    ],
)
def test_reading_state_needs_no_secret_of_a_connection_or_a_mask(
    capsys, applied: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    applied.write_text(
        MANIFEST.replace(
            "backups:",
            "  prod: {driver: postgresql, host: db, database: app, password: '${env:DSDB_T_PW}'}\n"
            "migrations:\n"
            "  out: {from: local, to: prod, mask_seed: '${env:DSDB_T_SEED}', mask: {name: hash}}\n"
            "backups:",
        )
    )
    monkeypatch.delenv("DSDB_T_PW", raising=False)
    monkeypatch.delenv("DSDB_T_SEED", raising=False)

    result = run_cli(capsys, *command, applied)

    assert result.code == 0, result.text
    assert "backup.nightly" in result.out


def test_a_state_url_whose_secret_is_unset_is_named(
    capsys, applied: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    applied.write_text(MANIFEST + "settings: {state: '${env:DSDB_T_STATE_URL}'}\n")
    monkeypatch.delenv("DSDB_T_STATE_URL", raising=False)

    result = run_cli(capsys, "state", "list", applied)

    assert result.code == 1
    assert "settings.state: environment variable DSDB_T_STATE_URL is not set" in result.err
