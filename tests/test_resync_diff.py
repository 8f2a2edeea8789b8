"""A resync copies only the key ranges where the target differs from the source subset,
and still leaves the target exactly as a full copy would."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan.errors import DsdbError
from dsdb_plan.migrate import run as run_module
from dsdb_plan.migrate.copier import Mode
from dsdb_plan.migrate.diff import differing_rows
from dsdb_plan.migrate.run import TableOutcome, TableRun, Written, run_migration
from dsdb_plan.migrate.subset import select_tables
from dsdb_plan.models import MigrationTable
from tests.helpers import database, sqlite_url, table_rows

ROWS = 1_000
BATCH = 100  # ten key ranges


def readings(path: Path) -> sa.Engine:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE readings (site TEXT, n INTEGER, value REAL, PRIMARY KEY (site, n))"
        )
        db.executemany(
            "INSERT INTO readings VALUES (?, ?, ?)",
            [("north" if n % 2 else "south", n, n / 7) for n in range(ROWS)],
        )
    return sa.create_engine(sqlite_url(path))


def migrate(
    source: sa.Engine, target: sa.Engine, mode: Mode = "upsert", **table: object
) -> TableOutcome:
    options = {"readings": MigrationTable.model_validate(table)} if table else None
    (selection,) = select_tables(source, options, "none")
    (outcome,) = run_migration(
        source,
        target,
        [TableRun(selection, mode)],
        batch_size=BATCH,
        schema_changes="evolve",
    )
    return outcome


def change(path: Path, *statements: str) -> None:
    with sqlite3.connect(path) as db:
        for statement in statements:
            db.execute(statement)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> sa.Engine:
    (tmp_path / "target").mkdir()
    return database(request, tmp_path / "target", request.param)


def test_a_resync_copies_only_the_ranges_that_changed(tmp_path: Path, target: sa.Engine) -> None:
    local = tmp_path / "local.db"
    source = readings(local)
    assert migrate(source, target).rows_copied == ROWS
    change(
        local,
        "UPDATE readings SET value = -1 WHERE n = 150",  # one range
        "INSERT INTO readings VALUES ('north', 5001, 1.5)",  # the last range
    )
    outcome = migrate(source, target)
    assert 0 < outcome.rows_copied <= 2 * BATCH + 1
    assert outcome.now == Written(outcome.rows_copied, differences_only=True)
    assert table_rows(target.url, "readings") == table_rows(source.url, "readings")
    assert migrate(source, target).rows_copied == 0  # nothing differs any more


def test_rows_deleted_from_the_source_make_no_upsert_range_differ(
    tmp_path: Path, target: sa.Engine
) -> None:
    local = tmp_path / "local.db"
    source = readings(local)
    migrate(source, target)
    kept = table_rows(target.url, "readings")
    change(local, "DELETE FROM readings WHERE n BETWEEN 420 AND 430")
    assert migrate(source, target).now == Written(0, differences_only=True)
    assert table_rows(target.url, "readings") == kept  # upsert keeps them
    change(local, "UPDATE readings SET value = -1 WHERE n = 425 + 300")
    outcome = migrate(source, target)
    assert 0 < outcome.rows_copied <= BATCH  # the changed range only, not the deleted one
    assert migrate(source, target).rows_copied == 0


def test_a_mirror_resync_deletes_and_repairs_drift(tmp_path: Path, target: sa.Engine) -> None:
    local = tmp_path / "local.db"
    source = readings(local)
    migrate(source, target, "mirror")
    change(local, "DELETE FROM readings WHERE n = 420")
    with target.begin() as conn:  # drift: a target row changed outside dsdb
        conn.execute(sa.text("UPDATE readings SET value = 99 WHERE n = 777"))
    outcome = migrate(source, target, "mirror")
    assert outcome.rows_copied <= 2 * BATCH and outcome.rows_deleted == 1
    assert outcome.now == Written(outcome.rows_copied, deleted=1, differences_only=True)
    assert table_rows(target.url, "readings") == table_rows(source.url, "readings")


def test_when_most_ranges_differ_everything_is_copied(tmp_path: Path, target: sa.Engine) -> None:
    local = tmp_path / "local.db"
    source = readings(local)
    migrate(source, target)
    change(local, "UPDATE readings SET value = value + 1 WHERE n % 3 = 0")
    assert migrate(source, target).now == Written(ROWS)
    assert table_rows(target.url, "readings") == table_rows(source.url, "readings")


def test_only_ranges_of_the_filtered_subset_are_compared(tmp_path: Path, target: sa.Engine) -> None:
    local = tmp_path / "local.db"
    source = readings(local)
    where = {"where": {"site": "north"}}
    assert migrate(source, target, **where).rows_copied == ROWS // 2
    change(
        local,
        "UPDATE readings SET value = 0 WHERE n = 3",  # north: in the subset
        "UPDATE readings SET value = 0 WHERE n % 2 = 0",  # south: outside it
    )
    outcome = migrate(source, target, **where)
    assert 0 < outcome.rows_copied <= BATCH
    expected = [row for row in table_rows(source.url, "readings") if row[0] == "north"]
    assert table_rows(target.url, "readings") == expected


def test_append_is_verified_to_hold_every_key(
    tmp_path: Path, target: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = readings(tmp_path / "local.db")
    copy_table = run_module.copy_table

    def copy_then_lose_a_row(*args: Any, **kwargs: Any) -> Any:
        copied = copy_table(*args, **kwargs)
        with target.begin() as conn:
            conn.execute(sa.text("DELETE FROM readings WHERE n = 500"))
        return copied

    monkeypatch.setattr(run_module, "copy_table", copy_then_lose_a_row)
    with pytest.raises(DsdbError, match="verification failed for readings"):
        migrate(source, target, "append")


@pytest.mark.postgres
def test_a_resync_from_postgresql_repairs_drift(tmp_path: Path, postgres_db: Any) -> None:
    """The copy streams from PostgreSQL with a server-side cursor; the ranges' digests that
    follow on the same connection must not be streamed too (PostgreSQL refuses `SHOW` then)."""
    source = postgres_db.engine()
    with source.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE readings (site text, n int, value float8, PRIMARY KEY (site, n))"
        )
        conn.exec_driver_sql(
            "INSERT INTO readings SELECT CASE WHEN n %% 2 = 1 THEN 'north' ELSE 'south' END,"
            f" n, n / 7.0 FROM generate_series(0, {ROWS - 1}) AS n"
        )
    target = sa.create_engine(sqlite_url(tmp_path / "target.db"))
    assert migrate(source, target).rows_copied == ROWS
    with target.begin() as conn:
        conn.exec_driver_sql("UPDATE readings SET value = -1 WHERE n = 150")

    assert 0 < migrate(source, target).rows_copied <= BATCH
    assert table_rows(target.url, "readings") == table_rows(source.url, "readings")
    source.dispose()


def test_a_target_only_its_own_thread_may_use_is_digested_in_that_thread(
    tmp_path: Path,
) -> None:
    """An in-memory SQLite target serves only the thread that opened it: its ranges are
    digested there, after the source's, instead of beside them."""
    source = readings(tmp_path / "local.db")
    (selection,) = select_tables(source, None, "none")
    target = sa.create_engine("sqlite://")
    with source.connect() as source_conn, target.connect() as target_conn:
        target_conn.exec_driver_sql(
            "CREATE TABLE readings (site TEXT, n INTEGER, value REAL, PRIMARY KEY (site, n))"
        )
        rows = source_conn.exec_driver_sql("SELECT * FROM readings WHERE n <> 150").all()
        target_conn.execute(
            sa.text("INSERT INTO readings VALUES (:site, :n, :value)"),
            [row._asdict() for row in rows],
        )
        only = differing_rows(source_conn, selection, target_conn, BATCH)
        assert only is not None
        missing = source_conn.execute(sa.select(sa.func.count()).where(only)).scalar_one()
    assert 0 < missing <= BATCH
