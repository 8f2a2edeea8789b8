"""Tables load in foreign-key order, and a table's verification overlaps the copy of the
tables that reference it: they wait for its rows, not for its verdict."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan.errors import DsdbError
from dsdb_plan.migrate import run as run_module
from dsdb_plan.migrate.run import TableRun, run_migration
from dsdb_plan.migrate.subset import select_tables
from tests.helpers import make_flights_db, sqlite_url, table_rows
from tests.servers import ServerDatabase


@pytest.fixture
def ends(tmp_path: Path, postgres_db: ServerDatabase) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    """A SQLite source of airlines and the flights that reference them, and PostgreSQL."""
    make_flights_db(tmp_path / "local.db", flights=300)
    target = postgres_db.engine()
    yield sa.create_engine(sqlite_url(tmp_path / "local.db")), target
    target.dispose()


def migrate(source: sa.Engine, target: sa.Engine) -> None:
    runs = [TableRun(selection, "upsert") for selection in select_tables(source, None, "none")]
    run_migration(source, target, runs, batch_size=50, schema_changes="evolve", parallelism=2)


@pytest.mark.postgres
def test_a_child_table_copies_while_its_parent_is_verified(
    ends: tuple[sa.Engine, sa.Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = ends
    events: list[tuple[str, str]] = []
    child_copying = threading.Event()
    overlapped = []
    copy_table, verify_table = run_module.copy_table, run_module.verify_table

    def recorded_copy(source: sa.Engine, target: sa.Engine, selection: Any, **kw: Any) -> Any:
        events.append(("copy starts", selection.name))
        if selection.name == "flights":
            child_copying.set()
        copied = copy_table(source, target, selection, **kw)
        events.append(("copy ends", selection.name))
        return copied

    def slow_parent_verdict(source_conn: Any, selection: Any, *args: Any, **kw: Any) -> Any:
        if selection.name == "airlines":
            overlapped.append(child_copying.wait(timeout=30))
        return verify_table(source_conn, selection, *args, **kw)

    monkeypatch.setattr(run_module, "copy_table", recorded_copy)
    monkeypatch.setattr(run_module, "verify_table", slow_parent_verdict)
    migrate(source, target)

    assert overlapped and all(overlapped)
    assert events.index(("copy ends", "airlines")) < events.index(("copy starts", "flights"))
    for table in ("airlines", "flights"):
        assert table_rows(target.url, table) == table_rows(source.url, table)


@pytest.mark.postgres
def test_a_parent_that_fails_verification_still_fails_the_migration(
    ends: tuple[sa.Engine, sa.Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = ends
    verify_table = run_module.verify_table

    def tamper_then_verify(
        source_conn: Any, selection: Any, target_conn: Any, *a: Any, **kw: Any
    ) -> Any:
        if selection.name == "airlines":
            with target.begin() as conn:
                conn.exec_driver_sql("UPDATE airlines SET name = 'tampered' WHERE carrier = 'UA'")
        return verify_table(source_conn, selection, target_conn, *a, **kw)

    monkeypatch.setattr(run_module, "verify_table", tamper_then_verify)
    with pytest.raises(DsdbError, match="verification failed for airlines"):
        migrate(source, target)


@pytest.mark.postgres
def test_tables_in_parallel_hold_a_bounded_number_of_connections(
    tmp_path: Path, postgres_db: ServerDatabase
) -> None:
    """--parallelism tables copy at once, each with one connection to the target at a time,
    and the ADBC driver's while it loads whole columns (and one more for the fingerprint that
    follows)."""
    local = tmp_path / "many.db"
    with sqlite3.connect(local) as db:
        for n in range(8):
            db.execute(f"CREATE TABLE t{n} (id INTEGER PRIMARY KEY, v TEXT)")
            db.executemany(f"INSERT INTO t{n} VALUES (?, ?)", [(i, "x" * 50) for i in range(3000)])
    source = sa.create_engine(sqlite_url(local))
    target = postgres_db.engine()
    seen: list[int] = []
    done = threading.Event()

    def sample() -> None:
        with target.connect() as conn:
            while not done.is_set():
                count = conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
                seen.append(int(count))
                conn.rollback()
                time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        runs = [TableRun(selection, "upsert") for selection in select_tables(source, None, "none")]
        run_migration(source, target, runs, batch_size=200, schema_changes="evolve", parallelism=3)
    finally:
        done.set()
        sampler.join()
    assert seen and 2 <= max(seen) <= 3 * 2 + 1, max(seen)
    target.dispose()
