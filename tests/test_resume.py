"""Killed applies resume, and a second apply against a held lock fails fast."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dsdb_plan.cli.interrupt import ACKNOWLEDGEMENT
from dsdb_plan.state import open_state
from tests.helpers import (
    OutputLines,
    kill_when,
    make_flights_db,
    run_cli,
    spawn_cli,
    sqlite_url,
    table_names,
    table_rows,
)

TABLES = ("t1", "t2", "t3", "t4")
ROWS = 40_000

MANIFEST = """\
version: 1
connections:
  local: {driver: sqlite, database: data/local.db}
  scratch: {driver: sqlite, database: data/scratch.db}
backups:
  nightly: {connection: local}
restores:
  into-scratch: {backup: nightly, to: scratch}
"""


def make_big_db(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        for table in TABLES:
            db.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, label TEXT, x REAL)")
            db.executemany(
                f"INSERT INTO {table} VALUES (?, ?, ?)",
                ((i, f"row {i} of {table}", i / 7) for i in range(ROWS)),
            )


@pytest.fixture
def project(tmp_path: Path, write_manifest) -> Path:  # type: ignore[no-untyped-def]
    make_big_db(tmp_path / "data/local.db")
    return write_manifest(MANIFEST)


def assert_scratch_equals_local(project: Path) -> None:
    local = sqlite_url(project.parent / "data/local.db")
    scratch = sqlite_url(project.parent / "data/scratch.db")
    assert table_names(scratch) == table_names(local)
    for table in table_names(local):
        assert table_rows(scratch, table) == table_rows(local, table), table


def test_killed_restore_resumes_without_loss_or_duplicates(capsys, project: Path) -> None:
    state = open_state(".dsdb/state.db", project.parent)

    def some_tables_restored() -> bool:
        try:
            checkpoint = state.read().checkpoints.get("restore.into-scratch", {})
        except Exception:  # the file may be mid-creation; a reader only retries
            return False
        return len(checkpoint.get("completed", [])) >= 1

    apply = spawn_cli("apply", project, "--auto-approve")
    kill_when(apply, some_tables_restored)

    snapshot = open_state(".dsdb/state.db", project.parent).read()
    assert "backup.nightly" in snapshot.resources
    assert "restore.into-scratch" not in snapshot.resources
    plan = run_cli(capsys, "plan", project)
    assert "resuming an interrupted restore" in plan.out
    result = run_cli(capsys, "apply", project, "--auto-approve")
    assert result.code == 0, result.text
    assert_scratch_equals_local(project)
    assert "Nothing to do." in run_cli(capsys, "apply", project, "--auto-approve").out


def test_killed_backup_leaves_readable_state_and_next_apply_completes(
    capsys, project: Path
) -> None:
    backups = project.parent / "backups/nightly"

    def backup_in_progress() -> bool:
        return backups.is_dir() and any(p.name.endswith(".tmp") for p in backups.iterdir())

    apply = spawn_cli("apply", project, "--auto-approve")
    kill_when(apply, backup_in_progress)

    assert open_state(".dsdb/state.db", project.parent).read().resources == {}
    result = run_cli(capsys, "apply", project, "--auto-approve")
    assert result.code == 0, result.text
    assert not any(p.name.endswith(".tmp") for p in backups.iterdir())
    assert run_cli(capsys, "backups", "verify", project).code == 0
    assert_scratch_equals_local(project)


HOLD_LOCK = """
import sys, time
from pathlib import Path
from dsdb_plan.state import open_state
store = open_state(".dsdb/state.db", Path(sys.argv[1]))
with store.lock("apply", "alice"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_second_apply_fails_fast_naming_the_holder(capsys, project: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(project.parent)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = run_cli(capsys, "apply", project, "--auto-approve")
        assert result.code == 1
        assert "alice" in result.err and f"pid {holder.pid}" in result.err
        assert "dsdb force-unlock" in result.err
        assert not (project.parent / "backups").exists()
    finally:
        holder.kill()
        holder.wait()
    result = run_cli(capsys, "apply", project, "--auto-approve")
    assert result.code == 0, result.text


def test_ctrl_c_stops_at_once_and_the_next_apply_resumes(capsys, project: Path) -> None:
    # Many tables, and a large one last: the signal is sent once the restore reports the
    # last table's first batch, so most of its batches are still to come, however busy or
    # fast the machine is.
    with sqlite3.connect(project.parent / "data/local.db") as db:
        for n in range(24):
            db.execute(f"CREATE TABLE extra{n} (id INTEGER PRIMARY KEY, label TEXT)")
            db.executemany(f"INSERT INTO extra{n} VALUES (?, ?)", ((i, "x") for i in range(2000)))
        db.execute("CREATE TABLE zz_last (id INTEGER PRIMARY KEY, label TEXT)")
        db.executemany("INSERT INTO zz_last VALUES (?, ?)", ((i, "x") for i in range(100_000)))

    apply = spawn_cli("apply", project, "--auto-approve")
    assert apply.stderr is not None
    seen = []
    for line in apply.stderr:  # progress lines arrive as they are written
        seen.append(line)
        if line.strip().startswith("restore.into-scratch zz_last:"):
            break
    else:
        pytest.fail("the restore never reached zz_last:\n" + "".join(seen))
    apply.send_signal(signal.SIGINT)
    _, err = apply.communicate(timeout=20)
    err = "".join(seen) + err
    assert apply.returncode == 130, err
    assert "Interrupted" in err and "Traceback" not in err
    result = run_cli(capsys, "apply", project, "--auto-approve")
    assert result.code == 0, result.text
    assert_scratch_equals_local(project)


def test_lock_timeout_waits_for_the_holder_then_gives_up(capsys, project: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(project.parent)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = run_cli(capsys, "apply", project, "--auto-approve", "--lock-timeout", "0.5")
        assert result.code == 1
        assert "waited 0.5s" in result.err and "alice" in result.err
    finally:
        holder.kill()
        holder.wait()


def pause_between_state_writes(process: subprocess.Popen[str], state: Path) -> None:
    """SIGSTOP `process` at a moment it is not writing the state, which others then can."""
    while True:
        process.send_signal(signal.SIGSTOP)
        probe = sqlite3.connect(state, timeout=0.05, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:  # stopped inside a write: let it finish and retry
            process.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        finally:
            probe.close()


def test_two_applies_at_once_one_runs_and_the_other_fails_fast(capsys, project: Path) -> None:
    state = open_state(".dsdb/state.db", project.parent)

    def lock_holder_pid() -> int | None:
        try:
            holder = state.lock_holder()
        except Exception:  # the state file may be mid-creation; keep polling
            return None
        return None if holder is None else holder.pid

    first = spawn_cli("apply", project, "--auto-approve", env={"DSDB_USER": "first-apply"})
    deadline = time.monotonic() + 120
    while lock_holder_pid() != first.pid:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first apply never took the lock"
        time.sleep(0.01)

    # Paused while it holds the lock, the first apply cannot finish before the second starts,
    # however fast its work is; it stays a live holder.
    pause_between_state_writes(first, project.parent / ".dsdb/state.db")
    try:
        second = run_cli(capsys, "apply", project, "--auto-approve")
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.poll() is None, "the second apply waited for the first to finish"
    assert second.code == 1, second.text
    assert "locked by first-apply@" in second.err and f"(pid {first.pid})" in second.err
    assert "for apply" in second.err and "Traceback" not in second.text

    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert_scratch_equals_local(project)
    assert run_cli(capsys, "backups", "verify", project).code == 0
    assert [e.address for e in state.history()] == ["restore.into-scratch", "backup.nightly"]
    assert run_cli(capsys, "plan", project, "--detailed-exitcode").code == 0


FLIGHTS = 60_000


@pytest.mark.parametrize(
    ("target", "signum"),
    [
        ("sqlite", signal.SIGINT),
        ("sqlite", signal.SIGTERM),  # as a CI runner stops a job
        ("duckdb", signal.SIGINT),
        pytest.param("postgresql", signal.SIGINT, marks=pytest.mark.postgres),
        pytest.param("mariadb", signal.SIGINT, marks=pytest.mark.mariadb),
    ],
)
def test_first_signal_stops_a_migration_at_a_batch_and_the_next_apply_resumes(
    request: pytest.FixtureRequest, tmp_path: Path, write_manifest, target: str, signum: int
) -> None:
    make_flights_db(tmp_path / "data/local.db", flights=FLIGHTS)
    if target in ("sqlite", "duckdb"):
        path = tmp_path / ("data/prod.db" if target == "sqlite" else "data/prod.duckdb")
        target_url = f"{target}{'+dsdb' if target == 'duckdb' else ''}:///{path}"
        link = f"{{driver: {target}, database: data/{path.name}}}"
    else:
        server = request.getfixturevalue(f"{'postgres' if target == 'postgresql' else target}_db")
        target_url, link = server.url_string, f"{{url: '{server.url_string}'}}"
    project = write_manifest(
        "version: 1\nconnections:\n"
        "  local: {driver: sqlite, database: data/local.db}\n"
        f"  prod: {link}\n"
        "migrations:\n  all:\n    from: local\n    to: prod\n    batch_size: 2000\n"
    )

    apply = spawn_cli("apply", project, "--auto-approve")
    assert apply.stdout is not None and apply.stderr is not None
    out, err = OutputLines(apply.stdout), OutputLines(apply.stderr)
    # Progress is reported once a batch is committed and checkpointed; the first line of a
    # table comes with its first batch.
    err.wait_for("migration.all flights: ")
    apply.send_signal(signum)
    err.wait_for(ACKNOWLEDGEMENT, timeout=5)  # at once, not when the work is done
    assert apply.wait(timeout=20) == 128 + signum, out.close() + err.close()
    output = out.close() + err.close()
    assert "Interrupted. Finished work is recorded" in output and "Traceback" not in output
    assert "migration.all: interrupted: table 'flights': stopped after" in output
    copied = len(table_rows(target_url, "flights"))
    assert 0 < copied < FLIGHTS
    state = open_state(".dsdb/state.db", project.parent)
    assert state.lock_holder() is None
    # History keeps the rows the interrupted apply committed: the airlines, and flights so far.
    (entry,) = state.history()
    assert (entry.outcome, entry.rows) == (
        "interrupted",
        copied + len(table_rows(target_url, "airlines")),
    )

    again = spawn_cli("apply", project, "--auto-approve")
    again_out, again_err = again.communicate(timeout=120)
    assert again.returncode == 0, again_out + again_err
    assert "stale state lock" not in again_err
    # Only what this apply wrote counts: the rows of flights the first one had not.
    assert (
        f"copied {FLIGHTS - copied:,} rows into 1 table, resuming an interrupted apply, "
        "verified content"
    ) in again_out
    local = sqlite_url(tmp_path / "data/local.db")
    for table in ("airlines", "flights"):
        assert table_rows(target_url, table) == table_rows(local, table), table


def test_second_ctrl_c_stops_at_once_and_frees_the_lock(capsys, project: Path) -> None:
    state = open_state(".dsdb/state.db", project.parent)
    apply = spawn_cli("apply", project, "--auto-approve")
    assert apply.stderr is not None
    err = OutputLines(apply.stderr)
    err.wait_for("backup.nightly ")
    apply.send_signal(signal.SIGINT)
    err.wait_for(ACKNOWLEDGEMENT, timeout=5)
    apply.send_signal(signal.SIGINT)
    assert apply.wait(timeout=20) == 130
    assert "Traceback" not in err.close()
    assert state.lock_holder() is None
    result = run_cli(capsys, "apply", project, "--auto-approve")
    assert result.code == 0, result.text
    assert_scratch_equals_local(project)
