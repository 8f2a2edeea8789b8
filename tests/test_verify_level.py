"""A migration's verification level (`verify: content | counts`) end to end: what the plan
and the apply say, what a counts-only apply still catches, what it records, and a change
of level."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from dsdb_plan.checksum import ChecksumMethod
from dsdb_plan.fingerprint import Fingerprint
from dsdb_plan.state import open_state
from tests.helpers import run_cli, sqlite_url, table_rows
from tests.servers import ServerDatabase

COUNTS_LINE = "verify: counts — each table's row count is compared with the source subset's"


def _manifest(target: str, level: str, mode: str = "upsert") -> str:
    return (
        "version: 1\nconnections:\n"
        "  local: {driver: sqlite, database: local.db}\n"
        f"  copy: {target}\n"
        f"migrations:\n  m: {{from: local, to: copy, mode: {mode}, verify: {level}}}\n"
    )


@pytest.fixture
def local(tmp_path: Path) -> Path:
    path = tmp_path / "local.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE p (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute("CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p (id), x REAL)")
        db.executemany("INSERT INTO p VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 301)])
        db.executemany(
            "INSERT INTO c VALUES (?, ?, ?)", [(i, i % 300 + 1, i / 7) for i in range(1, 901)]
        )
    return path


def _project(write_manifest, level: str, mode: str = "upsert") -> Path:  # type: ignore[no-untyped-def]
    return write_manifest(_manifest("{driver: sqlite, database: copy.db}", level, mode))


def _record(project: Path):  # type: ignore[no-untyped-def]
    store = open_state(".dsdb/state.db", project.parent)
    try:
        return store.read().resources["migration.m"]
    finally:
        store.close()


def test_counts_only_lands_every_row_says_so_and_records_counts(
    capsys,
    local: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    project = _project(write_manifest, "counts")
    plan = run_cli(capsys, "plan", project)
    assert COUNTS_LINE in plan.out
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert applied.code == 0, applied.text
    assert "copied 1,200 rows into 2 tables, verified: row counts only" in applied.out
    copy = project.parent / "copy.db"
    for table in ("p", "c"):
        assert table_rows(sqlite_url(copy), table) == table_rows(sqlite_url(local), table)

    record = _record(project)
    assert record.spec["verify"] == "counts"
    assert record.fingerprints["verified"] == "counts"
    written = Fingerprint.from_dict(record.fingerprints["written"])
    assert {t.method for t in written.tables.values()} == {ChecksumMethod.COUNTED}
    assert "Nothing to do." in run_cli(capsys, "apply", project, "--auto-approve").out

    verified = run_cli(capsys, "verify", project)
    assert verified.code == 0, verified.text
    assert "p → copy.p: 300 rows are there (row counts only)" in verified.out
    assert (
        "p → copy.p: 300 rows match" in run_cli(capsys, "verify", project, "--level", "content").out
    )


def test_counts_only_still_detects_source_changes(
    capsys,
    local: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    project = _project(write_manifest, "counts")
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    with sqlite3.connect(local) as db:  # the same count, another value
        db.execute("UPDATE p SET v = 'changed' WHERE id = 7")
    plan = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert plan.code == 2, plan.text
    assert "source table p: its pages changed since it was first copied" in plan.out
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    assert table_rows(sqlite_url(project.parent / "copy.db"), "p") == table_rows(
        sqlite_url(local), "p"
    )
    assert run_cli(capsys, "plan", project, "--detailed-exitcode").code == 0


def test_counts_only_refuses_a_target_that_lost_a_row(
    capsys,
    local: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    project = _project(write_manifest, "counts")
    with sqlite3.connect(project.parent / "copy.db") as db:  # a target that drops a row
        db.execute("CREATE TABLE p (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute(
            "CREATE TRIGGER lose AFTER INSERT ON p WHEN NEW.id = 5 BEGIN "
            "DELETE FROM p WHERE id = 5; END"
        )
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert applied.code == 1
    assert (
        "verification (counts only) failed for p → p: target p has 299 of 300 rows" in applied.err
    )
    assert "Traceback" not in applied.err


def test_counts_only_into_a_table_with_rows_besides_looks_every_key_up(
    capsys,
    local: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    project = _project(write_manifest, "counts")
    copy = project.parent / "copy.db"
    with sqlite3.connect(copy) as db:  # upsert keeps the target's own rows
        db.execute("CREATE TABLE p (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute("INSERT INTO p VALUES (1000, 'theirs')")
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert applied.code == 0, applied.text
    verified = run_cli(capsys, "verify", project)
    assert verified.code == 0, verified.text
    assert (
        "p → copy.p: 300 rows are there (row counts only); 1 target row whose key the source "
        "no longer has is kept by mode upsert" in verified.out
    )
    with sqlite3.connect(copy) as db:  # as many rows, one of the subset's keys gone
        db.execute("UPDATE p SET id = 2000 WHERE id = 3")
    verified = run_cli(capsys, "verify", project)
    assert verified.code == 1
    assert "target p has 299 of 300 rows (matched by id)" in verified.err


def test_raising_the_level_to_content_repairs_what_counts_missed(
    capsys,
    local: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    project = _project(write_manifest, "counts, batch_size: 10")  # key ranges of 10 rows
    copy = project.parent / "copy.db"
    with sqlite3.connect(copy) as db:  # a target that changes a value as it lands
        db.execute("CREATE TABLE p (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute(
            "CREATE TRIGGER spoil AFTER INSERT ON p WHEN NEW.id = 5 BEGIN "
            "UPDATE p SET v = 'spoilt' WHERE id = 5; END"
        )
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0  # counts agree
    assert run_cli(capsys, "verify", project).code == 0
    content = run_cli(capsys, "verify", project, "--level", "content")
    assert content.code == 1
    assert "target p has all 300 rows (matched by id) but content differs" in content.err

    project.write_text(project.read_text().replace("verify: counts", "verify: content"))
    plan = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert plan.code == 2, plan.text
    assert "~ migration.m (update)" in plan.out
    assert "verify: counts → content: the last apply compared row counts only" in plan.out
    assert COUNTS_LINE not in plan.out
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert applied.code == 0, applied.text
    # Only the key range holding the spoilt row differed (upsert does not fire the trigger).
    found = re.search(r"copied ([0-9,]+) rows? \(only the key ranges that differed\)", applied.out)
    assert found is not None, applied.out
    assert found[1] == "10"
    assert ", verified content" in applied.out
    assert table_rows(sqlite_url(copy), "p") == table_rows(sqlite_url(local), "p")
    assert _record(project).fingerprints["verified"] == "content"
    assert "Nothing to do." in run_cli(capsys, "apply", project, "--auto-approve").out


def test_lowering_the_level_records_it_without_copying(
    capsys,
    local: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    project = _project(write_manifest, "content")
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert applied.code == 0, applied.text
    assert ", verified content" in applied.out
    assert "verify" not in _record(project).spec  # the default, recorded as before it existed
    project.write_text(project.read_text().replace("verify: content", "verify: counts"))
    plan = run_cli(capsys, "plan", project)
    assert "verify: set to counts" in plan.out
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert applied.code == 0, applied.text
    assert "recorded the new settings; no data moved" in applied.out
    assert _record(project).spec["verify"] == "counts"
    assert "Nothing to do." in run_cli(capsys, "apply", project, "--auto-approve").out


@pytest.mark.postgres
def test_counts_only_into_postgresql_mirrors_exactly(
    capsys,
    local: Path,
    postgres_db: ServerDatabase,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    project = write_manifest(_manifest(f"{{url: '{postgres_db.url_string}'}}", "counts", "mirror"))
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert applied.code == 0, applied.text
    assert "verified: row counts only" in applied.out
    with sqlite3.connect(local) as db:
        db.execute("DELETE FROM c WHERE id > 800")
    applied = run_cli(capsys, "apply", project, "--auto-approve", "--allow-destroy")
    assert applied.code == 0, applied.text
    for table in ("p", "c"):
        assert table_rows(postgres_db.url, table) == table_rows(sqlite_url(local), table)
    assert "Nothing to do." in run_cli(capsys, "apply", project, "--auto-approve").out
