"""Migrations end to end through the CLI: subsets, modes, change detection, drift, verify,
a killed apply resumed, and the notebook API."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import dsdb_plan as dsdb
from dsdb_plan.kinds.migration import copy_summary, deletion_note, resume_note
from dsdb_plan.migrate.estimate import RowCount
from dsdb_plan.migrate.run import TableRun, Written, run_migration
from dsdb_plan.migrate.subset import select_tables
from dsdb_plan.models import MigrationTable
from dsdb_plan.state import open_state
from tests.helpers import kill_when, make_flights_db, run_cli, spawn_cli, sqlite_url, table_rows
from tests.servers import ServerDatabase

MANIFEST = """\
version: 1
connections:
  local: {driver: sqlite, database: data/local.db}
  prod: {driver: sqlite, database: data/prod.db}
migrations:
  ua-to-prod:
    from: local
    to: prod
    mode: MODE
    follow: parents
    tables:
      flights:
        where: {carrier: UA, month: {in: [1, 2]}}
"""


#: Two SQLite files side by side, `local` and `copy`: the migrations follow it.
LOCAL_TO_COPY = (
    "version: 1\nconnections:\n"
    "  local: {driver: sqlite, database: local.db}\n"
    "  copy: {driver: sqlite, database: copy.db}\n"
)


def manifest_text(mode: str = "upsert") -> str:
    return MANIFEST.replace("MODE", mode)


@pytest.fixture
def project(tmp_path: Path, write_manifest) -> Path:  # type: ignore[no-untyped-def]
    make_flights_db(tmp_path / "data/local.db", flights=600)
    return write_manifest(manifest_text())


def query(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute(sql).fetchall())


def expected_flights(project: Path) -> list[tuple]:
    return query(
        project.parent / "data/local.db",
        "SELECT * FROM flights WHERE carrier = 'UA' AND month IN (1, 2)",
    )


def test_subset_with_parents_lands_exactly_and_rerun_is_a_no_op(capsys, project: Path) -> None:
    plan = run_cli(capsys, "plan", project)
    assert "+ migration.ua-to-prod (create)" in plan.out
    assert "flights → prod.flights: 50 rows (upsert, new table)" in plan.out
    assert "airlines → prod.airlines: 1 row (upsert, new table; parent of flights" in plan.out
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert applied.code == 0, applied.text
    prod = project.parent / "data/prod.db"
    assert query(prod, "SELECT * FROM flights") == expected_flights(project)
    assert query(prod, "SELECT carrier FROM airlines") == [("UA",)]
    dangling = query(
        prod,
        "SELECT f.id FROM flights f LEFT JOIN airlines a "
        "ON a.carrier = f.carrier WHERE a.carrier IS NULL",
    )
    assert dangling == []
    before = open_state(".dsdb/state.db", project.parent).read().serial
    assert "Nothing to do." in run_cli(capsys, "apply", project, "--auto-approve").out
    assert open_state(".dsdb/state.db", project.parent).read().serial == before


def test_source_change_is_a_resync_that_copies_it(capsys, project: Path) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    with sqlite3.connect(project.parent / "data/local.db") as db:
        db.execute("UPDATE flights SET dep_delay = -1.5 WHERE id = 12")
        db.execute("INSERT INTO flights VALUES (9001, 'UA', 2, 3.25)")
    plan = run_cli(capsys, "plan", project)
    assert "↻ migration.ua-to-prod (resync)" in plan.out
    assert "source subset of table flights changed: 50 → 51 rows" in plan.out
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    assert query(project.parent / "data/prod.db", "SELECT * FROM flights") == expected_flights(
        project
    )


def test_target_drift_shows_in_the_plan_and_verify_catches_it(capsys, project: Path) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    assert run_cli(capsys, "verify", project).code == 0
    with sqlite3.connect(project.parent / "data/prod.db") as db:
        db.execute("UPDATE flights SET dep_delay = 123 WHERE id = (SELECT min(id) FROM flights)")
    verify = run_cli(capsys, "verify", project)
    assert verify.code == 1
    assert "flights" in verify.err
    plan = run_cli(capsys, "plan", project)
    assert "target table flights: content changed" in plan.out
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    assert run_cli(capsys, "verify", project).code == 0


def test_a_target_table_dropped_outside_dsdb_is_drift_and_comes_back(capsys, project: Path) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    with sqlite3.connect(project.parent / "data/prod.db") as db:
        db.execute("DROP TABLE airlines")
    plan = run_cli(capsys, "plan", project)
    assert plan.code == 0, plan.text
    assert "target table airlines removed outside dsdb" in plan.out
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    local, prod = project.parent / "data/local.db", project.parent / "data/prod.db"
    assert query(prod, "SELECT * FROM airlines") == query(
        local, "SELECT * FROM airlines WHERE carrier = 'UA'"
    )
    assert query(prod, "SELECT * FROM flights") == expected_flights(project)
    assert "Nothing to do." in run_cli(capsys, "apply", project, "--auto-approve").out


def test_target_changes_after_an_unfinished_apply_are_not_blamed_on_others(
    capsys, project: Path
) -> None:
    """An apply that stopped part way wrote to the target too: its changes show as made
    since the last finished apply, not outside dsdb."""
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    with sqlite3.connect(project.parent / "data/prod.db") as db:
        db.execute("DELETE FROM flights WHERE id = (SELECT min(id) FROM flights)")
    assert "outside dsdb" in run_cli(capsys, "plan", project).out
    open_state(".dsdb/state.db", project.parent).save_checkpoint(
        "migration.ua-to-prod", {"done": {}, "running": {}}
    )
    plan = run_cli(capsys, "plan", project)
    assert "target table flights changed" in plan.out, plan.text
    assert "since the last finished apply" in plan.out
    assert "outside dsdb" not in plan.out


def test_a_renamed_target_table_leaves_the_old_one_and_the_plan_says_so(
    capsys, project: Path
) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    project.write_text(
        manifest_text().replace(
            "where: {carrier: UA, month: {in: [1, 2]}}",
            "where: {carrier: UA, month: {in: [1, 2]}}\n        rename_to: ua_flights",
        )
    )
    plan = run_cli(capsys, "plan", project)
    assert "target table flights is no longer written; it stays as it is" in plan.out, plan.text
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    prod = project.parent / "data/prod.db"
    assert query(prod, "SELECT * FROM ua_flights") == expected_flights(project)
    assert query(prod, "SELECT * FROM flights") == expected_flights(project)


def test_mirror_deletes_rows_gone_from_the_subset_with_consent(capsys, project: Path) -> None:
    project.write_text(manifest_text("mirror"))
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    prod = project.parent / "data/prod.db"
    (held,) = query(prod, "SELECT count(*) FROM flights")[0]
    with sqlite3.connect(project.parent / "data/local.db") as db:
        db.execute("DELETE FROM flights WHERE carrier = 'UA' AND month = 1")
    gone = held - len(expected_flights(project))
    plan = run_cli(capsys, "plan", project)
    assert "Destructive actions" in plan.out
    assert (
        f"mirror deletes the rows of prod.flights that are not in the subset ({held:,} held; "
        f"at least {gone:,} of them)"
    ) in plan.out, plan.text
    refused = run_cli(capsys, "apply", project, "--auto-approve")
    assert refused.code == 1 and "--allow-destroy" in refused.err
    assert run_cli(capsys, "apply", project, "--auto-approve", "--allow-destroy").code == 0
    assert query(project.parent / "data/prod.db", "SELECT * FROM flights") == expected_flights(
        project
    )


def test_replace_says_how_many_rows_it_deletes(capsys, project: Path) -> None:
    project.write_text(manifest_text("replace"))
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    (held,) = query(project.parent / "data/prod.db", "SELECT count(*) FROM flights")[0]
    with sqlite3.connect(project.parent / "data/local.db") as db:
        db.execute("UPDATE flights SET dep_delay = 1 WHERE carrier = 'UA' AND month = 1")
    plan = run_cli(capsys, "plan", project)
    assert f"replace deletes the {held:,} rows of prod.flights and loads the subset" in plan.out


def test_new_source_column_is_refused_when_strict_and_added_when_evolving(
    capsys, project: Path
) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    with sqlite3.connect(project.parent / "data/local.db") as db:
        db.execute("ALTER TABLE flights ADD COLUMN tail TEXT")
        db.execute("UPDATE flights SET tail = 'N' || id")
    strict = run_cli(capsys, "plan", project)
    assert strict.code == 1
    assert (
        "table 'flights': column 'tail' in the source but not in the target "
        "(schema: strict; `evolve` would add it)"
    ) in strict.err
    project.write_text(
        manifest_text().replace(
            "    follow: parents\n", "    follow: parents\n    schema: evolve\n"
        )
    )
    plan = run_cli(capsys, "plan", project)
    assert "(upsert, adds column tail, only key ranges that differ)" in plan.out
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    assert query(project.parent / "data/prod.db", "SELECT * FROM flights") == expected_flights(
        project
    )


#: Every table of data/local.db into data/prod.db, 2,000 rows a batch.
ALL_OF_LOCAL = (
    "version: 1\nconnections:\n"
    "  local: {driver: sqlite, database: data/local.db}\n"
    "  prod: {driver: sqlite, database: data/prod.db}\n"
    "migrations:\n  all:\n    from: local\n    to: prod\n    batch_size: 2000\n"
)


def killed_mid_flights(project: Path) -> None:
    """Seed 200,000 flights beside `project` and SIGKILL its apply once 20,000 are in."""
    make_flights_db(project.parent / "data/local.db", flights=200_000)
    state = open_state(".dsdb/state.db", project.parent)

    def mid_flights() -> bool:
        try:
            running = state.read().checkpoints.get("migration.all", {}).get("running", {})
        except Exception:  # the state file may be mid-creation; keep polling
            return False
        return running.get("flights", {}).get("rows", 0) >= 20_000

    kill_when(spawn_cli("apply", project, "--auto-approve"), mid_flights)


def test_killed_apply_resumes_without_duplicates_or_gaps(
    capsys, tmp_path: Path, write_manifest
) -> None:
    project = write_manifest(ALL_OF_LOCAL)
    killed_mid_flights(project)
    assert "resuming an interrupted apply" in run_cli(capsys, "plan", project).out
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    local, prod = sqlite_url(tmp_path / "data/local.db"), sqlite_url(tmp_path / "data/prod.db")
    for table in ("airlines", "flights"):
        assert table_rows(prod, table) == table_rows(local, table)


#: The indexes of a SQLite database, less those SQLite makes for its own constraints.
OWN_INDEXES = "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"


def test_a_table_dsdb_created_gets_its_indexes_after_a_kill_and_a_spec_change(
    capsys, tmp_path: Path, write_manifest
) -> None:
    """The interrupted run's checkpoint is set aside when the spec changes, but the table it
    created is still dsdb's: the next apply finishes it with its indexes."""
    manifest = ALL_OF_LOCAL
    project = write_manifest(manifest)
    killed_mid_flights(project)
    project.write_text(
        manifest + "    tables: {airlines: {}, flights: {where: {month: {gte: 2}}}}\n"
    )
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert applied.code == 0, applied.text
    prod = project.parent / "data/prod.db"
    assert query(prod, OWN_INDEXES) == [("flights_month",)]
    # And once more, from the record rather than a checkpoint.
    with sqlite3.connect(prod) as db:
        db.execute("DROP INDEX flights_month")
    project.write_text(manifest)
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    assert query(prod, OWN_INDEXES) == [("flights_month",)]


@pytest.mark.postgres
def test_library_migrate_into_postgresql(tmp_path: Path, postgres_db: ServerDatabase) -> None:
    make_flights_db(tmp_path / "local.db")
    mngr = dsdb.ConnectionManager(
        {
            "local": {"driver": "sqlite", "database": str(tmp_path / "local.db")},
            "pg": {"url": postgres_db.url_string},
        },
        user="analyst",
    )
    try:
        outcomes = mngr.migrate(
            "local", "pg", tables=["flights"], where={"carrier": "DL"}, follow="parents"
        )
    finally:
        mngr.close()
    assert {o.table for o in outcomes} == {"airlines", "flights"}
    expected = [
        row for row in table_rows(sqlite_url(tmp_path / "local.db"), "flights") if row[1] == "DL"
    ]
    assert table_rows(postgres_db.url, "flights") == expected


@pytest.mark.postgres
def test_independent_tables_copy_in_parallel_into_postgresql(
    capsys, tmp_path: Path, write_manifest, postgres_db: ServerDatabase
) -> None:
    make_flights_db(tmp_path / "data/local.db", flights=3000)
    with sqlite3.connect(tmp_path / "data/local.db") as db:
        for name in ("alpha", "beta", "gamma"):
            db.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, label TEXT)")
            db.executemany(
                f"INSERT INTO {name} VALUES (?, ?)", [(i, f"{name} {i}") for i in range(2000)]
            )
    project = write_manifest(
        "version: 1\nconnections:\n"
        "  local: {driver: sqlite, database: data/local.db}\n"
        f"  pg: {{url: '{postgres_db.url_string}'}}\n"
        "migrations:\n  everything: {from: local, to: pg, batch_size: 500}\n"
    )
    result = run_cli(capsys, "apply", project, "--auto-approve", "--parallelism", "3")
    assert result.code == 0, result.text
    local = sqlite_url(tmp_path / "data/local.db")
    for table in ("airlines", "flights", "alpha", "beta", "gamma"):
        assert table_rows(postgres_db.url, table) == table_rows(local, table), table
    assert "Nothing to do." in run_cli(capsys, "apply", project, "--auto-approve").out


def test_changes_outside_the_subset_are_not_a_resync(capsys, project: Path) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    with sqlite3.connect(project.parent / "data/local.db") as db:
        db.execute("UPDATE flights SET dep_delay = 77 WHERE carrier = 'DL'")
    assert run_cli(capsys, "plan", project, "--detailed-exitcode").code == 0
    with sqlite3.connect(project.parent / "data/local.db") as db:
        db.execute("UPDATE flights SET dep_delay = 77 WHERE id = 12")  # UA, month 1
    plan = run_cli(capsys, "plan", project, "--detailed-exitcode")
    assert plan.code == 2
    assert "source subset of table flights: content changed, still 50 rows" in plan.out


def test_batch_size_change_records_settings_without_copying(capsys, project: Path) -> None:
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    project.write_text(
        manifest_text().replace(
            "    follow: parents\n", "    follow: parents\n    batch_size: 500\n"
        )
    )
    plan = run_cli(capsys, "plan", project)
    assert "~ migration.ua-to-prod (update)" in plan.out
    assert "batch_size: 10000 → 500" in plan.out
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert "no data moved" in applied.out
    assert "Nothing to do." in run_cli(capsys, "apply", project, "--auto-approve").out


@pytest.mark.postgres
def test_columns_of_types_sqlalchemy_does_not_know_copy_quietly(
    tmp_path: Path,
    write_manifest,
    postgres_db: ServerDatabase,  # type: ignore[no-untyped-def]
) -> None:
    with sa.create_engine(postgres_db.url).begin() as conn:
        conn.exec_driver_sql("CREATE TABLE geo (id int PRIMARY KEY, p point, x xml)")
        conn.exec_driver_sql("INSERT INTO geo VALUES (1, '(1,2)', '<a/>')")
    project = write_manifest(
        "version: 1\nconnections:\n"
        f"  pg: {{url: '{postgres_db.url_string}'}}\n"
        "  local: {driver: sqlite, database: local.db}\n"
        "migrations:\n  geo: {from: pg, to: local}\n"
    )
    process = spawn_cli("apply", project, "--auto-approve", cwd=tmp_path)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, out + err
    assert "Warning" not in err, err
    assert query(tmp_path / "local.db", "SELECT * FROM geo") == [(1, "(1,2)", "<a/>")]


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_rows_pointing_at_rows_of_later_batches_in_their_own_table(
    capsys,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    write_manifest,
    kind: str,  # type: ignore[no-untyped-def]
) -> None:
    """A self-reference (employee -> manager) may point forward, past the batch being
    written: into a new table and into one that already holds the key."""
    local = tmp_path / "local.db"
    with sqlite3.connect(local) as db:
        db.execute(
            "CREATE TABLE emp (id INTEGER PRIMARY KEY, name TEXT, "
            "manager_id INTEGER REFERENCES emp(id))"
        )
        db.executemany(
            "INSERT INTO emp VALUES (?, ?, ?)",
            [(1, "a", 9), (2, "b", 1), (3, "c", 1), (4, "d", 9), (9, "boss", None)],
        )
    server = request.getfixturevalue("postgres_db" if kind == "postgresql" else "mariadb_db")
    project = write_manifest(
        "version: 1\nconnections:\n"
        "  local: {driver: sqlite, database: local.db}\n"
        f"  server: {{url: '{server.url_string}'}}\n"
        "migrations:\n  emp: {from: local, to: server, batch_size: 2}\n"
    )
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert applied.code == 0, applied.text
    assert table_rows(server.url, "emp") == table_rows(sqlite_url(local), "emp")
    with sa.create_engine(server.url, poolclass=sa.pool.NullPool).connect() as conn:
        (key,) = sa.inspect(conn).get_foreign_keys("emp")
    assert key["referred_table"] == "emp" and key["constrained_columns"] == ["manager_id"]

    with sqlite3.connect(local) as db:
        db.executemany(
            "INSERT INTO emp VALUES (?, ?, ?)",
            [(5, "e", 20), (6, "f", 20), (7, "g", 5), (20, "new boss", None)],
        )
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert applied.code == 0, applied.text
    assert table_rows(server.url, "emp") == table_rows(sqlite_url(local), "emp")


def test_append_leaves_rows_the_target_holds_and_adds_the_new_ones(
    capsys,
    tmp_path: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    local, copy = tmp_path / "local.db", tmp_path / "copy.db"
    with sqlite3.connect(local) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(1, "a"), (2, "b")])
    project = write_manifest(
        LOCAL_TO_COPY + "migrations:\n  m: {from: local, to: copy, mode: append}\n"
    )
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    with sqlite3.connect(local) as db:
        db.execute("UPDATE t SET v = 'changed' WHERE id = 1")
        db.execute("INSERT INTO t VALUES (3, 'c')")
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert applied.code == 0, applied.text
    # All three rows were sent again; append inserted one of them.
    assert "copied 1 row into 1 table, verified" in applied.out
    assert query(copy, "SELECT * FROM t") == [(1, "a"), (2, "b"), (3, "c")]
    assert "Nothing to do." in run_cli(capsys, "apply", project, "--auto-approve").out
    verified = run_cli(capsys, "verify", project)  # by append's promise: every key is there
    assert verified.code == 0, verified.text

    with sqlite3.connect(copy) as db:  # a row removed outside dsdb comes back
        db.execute("DELETE FROM t WHERE id = 2")
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert applied.code == 0, applied.text
    assert query(copy, "SELECT * FROM t") == [(1, "a"), (2, "b"), (3, "c")]


def test_after_source_deletes_upsert_plans_nothing_and_verify_names_the_rows_it_keeps(
    capsys,
    tmp_path: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    local = tmp_path / "local.db"
    with sqlite3.connect(local) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 101)])
    project = write_manifest(
        LOCAL_TO_COPY + "migrations:\n  m: {from: local, to: copy, mode: upsert, batch_size: 10}\n"
    )
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    with sqlite3.connect(local) as db:
        db.execute("DELETE FROM t WHERE id IN (15, 16, 17)")
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert applied.code == 0, applied.text
    assert "copied 0 rows" in applied.out  # no range differs but for the rows upsert keeps
    assert run_cli(capsys, "plan", project, "--detailed-exitcode").code == 0
    verified = run_cli(capsys, "verify", project)
    assert verified.code == 0, verified.text
    assert (
        "t → copy.t: 97 rows match; 3 target rows whose key the source no longer has are "
        "kept by mode upsert" in verified.out
    )

    project.write_text(project.read_text().replace("mode: upsert", "mode: mirror"))
    verified = run_cli(capsys, "verify", project)  # mirror promises equality
    assert verified.code == 1
    assert "target t has 100 rows, 3 more than the 97 rows of the source subset" in verified.err


def test_incremental_copy_leaves_rows_whose_cursor_did_not_move_and_stays_verified(
    capsys,
    tmp_path: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    local, copy = tmp_path / "local.db", tmp_path / "copy.db"
    with sqlite3.connect(local) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, updated_at TEXT)")
        db.executemany(
            "INSERT INTO t VALUES (?, ?, ?)",
            [(1, "a", "2024-01-01"), (2, "b", "2024-01-02"), (3, "c", "2024-01-03")],
        )
    project = write_manifest(
        LOCAL_TO_COPY + "migrations:\n  m:\n    from: local\n    to: copy\n    mode: upsert\n"
        "    tables: {t: {incremental: {cursor: updated_at}}}\n"
    )
    assert run_cli(capsys, "apply", project, "--auto-approve").code == 0
    with sqlite3.connect(local) as db:
        db.execute("UPDATE t SET v = 'unnoticed' WHERE id = 1")  # the cursor stays
        db.execute("UPDATE t SET v = 'moved', updated_at = '2024-02-01' WHERE id = 2")
        db.execute("INSERT INTO t VALUES (4, 'd', '2024-02-02')")
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert applied.code == 0, applied.text
    assert query(copy, "SELECT id, v FROM t") == [(1, "a"), (2, "moved"), (3, "c"), (4, "d")]
    assert "Nothing to do." in run_cli(capsys, "apply", project, "--auto-approve").out
    verified = run_cli(capsys, "verify", project)
    assert verified.code == 0, verified.text

    with sqlite3.connect(copy) as db:  # a copied row lost from the target is still caught
        db.execute("DELETE FROM t WHERE id = 3")
    assert run_cli(capsys, "verify", project).code != 0


@pytest.mark.postgres
def test_a_target_table_dsdb_did_not_create_keeps_its_own_keys_and_indexes(
    capsys, tmp_path: Path, write_manifest, postgres_db: ServerDatabase
) -> None:
    """The user's table takes the rows and nothing else: no foreign key dsdb would have
    given a table of its own (which the row it holds already would break), no index."""
    make_flights_db(tmp_path / "local.db")
    with postgres_db.engine().begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE flights (id bigint PRIMARY KEY, carrier text NOT NULL, "
            "month bigint NOT NULL, dep_delay double precision)"
        )
        conn.exec_driver_sql("INSERT INTO flights VALUES (999999, 'ZZ', 1, NULL)")
    project = write_manifest(
        "version: 1\nconnections:\n"
        "  local: {driver: sqlite, database: local.db}\n"
        f"  pg: {{url: '{postgres_db.url_string}'}}\n"
        "migrations:\n  m: {from: local, to: pg, follow: parents, "
        "tables: {flights: {where: {carrier: UA}}}}\n"
    )
    for _ in range(2):
        applied = run_cli(capsys, "apply", project, "--auto-approve")
        assert applied.code == 0, applied.text
    inspector = sa.inspect(postgres_db.engine())
    assert inspector.get_foreign_keys("flights") == []
    assert inspector.get_indexes("flights") == []
    assert inspector.get_foreign_keys("airlines") == []  # the table dsdb created has none
    expected = [
        row for row in table_rows(sqlite_url(tmp_path / "local.db"), "flights") if row[1] == "UA"
    ]
    assert table_rows(postgres_db.url, "flights") == sorted(
        [*expected, (999999, "ZZ", 1, None)], key=repr
    )


@pytest.mark.postgres
def test_a_foreign_key_to_a_table_not_copied_is_dropped_and_the_plan_says_so(
    capsys, tmp_path: Path, write_manifest, postgres_db: ServerDatabase
) -> None:
    """Whether or not the target holds a table of that name: it may lack the rows."""
    make_flights_db(tmp_path / "local.db")
    with postgres_db.engine().begin() as conn:
        conn.exec_driver_sql("CREATE TABLE airlines (carrier text PRIMARY KEY, name text)")
        conn.exec_driver_sql("INSERT INTO airlines VALUES ('UA', 'United')")
    project = write_manifest(
        "version: 1\nconnections:\n"
        "  local: {driver: sqlite, database: local.db}\n"
        f"  pg: {{url: '{postgres_db.url_string}'}}\n"
        "migrations:\n  m: {from: local, to: pg, tables: {flights: {where: {carrier: DL}}}}\n"
    )
    planned = run_cli(capsys, "plan", project)
    assert "foreign key flights.carrier dropped: airlines is not copied" in planned.out
    assert "listed" not in planned.out
    applied = run_cli(capsys, "apply", project, "--auto-approve")
    assert applied.code == 0, applied.text
    assert sa.inspect(postgres_db.engine()).get_foreign_keys("flights") == []
    assert sa.inspect(postgres_db.engine()).get_indexes("flights") != []  # its own, dsdb made
    expected = [
        row for row in table_rows(sqlite_url(tmp_path / "local.db"), "flights") if row[1] == "DL"
    ]
    assert table_rows(postgres_db.url, "flights") == expected


def test_options_the_copy_would_refuse_fail_the_plan_not_the_apply(
    capsys,
    tmp_path: Path,
    write_manifest,  # type: ignore[no-untyped-def]
) -> None:
    with sqlite3.connect(tmp_path / "local.db") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.execute("CREATE TABLE keyless (v TEXT)")
    project = write_manifest(
        LOCAL_TO_COPY + "migrations:\n"
        "  cursor: {from: local, to: copy, tables: {t: {incremental: {cursor: nope}}}}\n"
        "  keyless: {from: local, to: copy, mode: upsert, tables: [keyless]}\n"
    )
    planned = run_cli(capsys, "plan", project)
    assert planned.code == 1
    assert "no cursor column 'nope'" in planned.err
    assert "mode upsert needs a key" in planned.err
    assert "Traceback" not in planned.text
    assert not (tmp_path / "copy.db").exists()


@pytest.mark.parametrize(("listed", "indexed"), [(False, True), (True, False)])
def test_a_resumed_run_finishes_only_the_tables_dsdb_created(
    tmp_path: Path, listed: bool, indexed: bool
) -> None:
    """A table already there when a resumed run starts gets indexes only if the checkpoint
    lists it as created by dsdb; a checkpoint from before that list was kept, as then."""
    make_flights_db(tmp_path / "local.db")
    source = sa.create_engine(sqlite_url(tmp_path / "local.db"))
    target = sa.create_engine(sqlite_url(tmp_path / "copy.db"))
    chosen = select_tables(source, {"flights": MigrationTable()}, "none")
    runs = [TableRun(selection, "upsert") for selection in chosen]
    with target.begin() as conn:  # there before the run: as an interrupted run left it
        conn.exec_driver_sql(
            "CREATE TABLE flights (id INTEGER PRIMARY KEY, carrier TEXT NOT NULL, "
            "month INTEGER NOT NULL, dep_delay REAL)"
        )
    resume: dict[str, Any] = {"done": {}, "running": {}}
    if listed:
        resume["created"] = []
    run_migration(source, target, runs, batch_size=50, schema_changes="strict", resume=resume)
    indexes = sa.inspect(target).get_indexes("flights")
    assert bool(indexes) is indexed
    assert table_rows(target.url, "flights") == table_rows(source.url, "flights")


def test_mirror_bounds_what_it_deletes_only_by_a_counted_subset(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "local.db") as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    source = sa.create_engine(sqlite_url(tmp_path / "local.db"))
    (selection,) = select_tables(source, {"t": MigrationTable()}, "none")
    run = TableRun(selection, "mirror")
    counted_line = deletion_note(run.mode, "prod.t", 1_000, RowCount(600, estimated=False))
    estimated_line = deletion_note(run.mode, "prod.t", 1_000, RowCount(600, estimated=True))
    assert counted_line.endswith("(1,000 held; at least 400 of them)")
    assert estimated_line.endswith("(1,000 held)")  # an estimate bounds nothing


def test_an_apply_says_what_it_wrote_itself() -> None:
    nothing, resumed = Written(), Written(rows=7)
    assert copy_summary([nothing, resumed], resumed=True) == (
        "copied 7 rows into 1 table, resuming an interrupted apply, verified"
    )
    ranges = Written(rows=1, differences_only=True)
    assert copy_summary([ranges, Written(deleted=2)], resumed=False) == (
        "copied 1 row (only the key ranges that differed) into 2 tables, deleted 2, verified"
    )
    assert copy_summary([nothing], resumed=False) == "copied 0 rows into 0 tables, verified"
    checked = [Written(rows=5, verifying=0.25), Written(rows=2, verifying=1.0)]
    assert copy_summary(checked, resumed=False) == (
        "copied 7 rows into 2 tables, verified; verifying took 1.2 s"
    )


def test_the_resume_line_says_how_many_rows_of_each_unfinished_table_are_in() -> None:
    checkpoint = {
        "done": {"airlines": {}},
        "running": {"flights": {"rows": 20_000}, "airports": {"rows": 1}},
    }
    assert resume_note(checkpoint) == (
        "resuming an interrupted apply: 1 table already copied, 1 row of airports already "
        "in, 20,000 rows of flights already in"
    )


def test_a_table_the_source_lacks_is_named_with_the_source(capsys, project: Path) -> None:
    project.write_text(manifest_text().replace("      flights:\n", "      flihgts:\n"))
    planned = run_cli(capsys, "plan", project)
    assert planned.code == 1
    assert "no table 'flihgts' in the source database 'local'; did you mean 'flights'?" in (
        planned.err
    )
