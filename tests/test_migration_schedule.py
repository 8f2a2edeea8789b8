"""Tables load in foreign-key order, and a table's verification overlaps the copy of the
tables that reference it: they wait for its rows, not for its verdict."""

from __future__ import annotations

import threading
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


def migrate(source: sa.Engine, target: sa.Engine) -> None:
    runs = [TableRun(selection, "upsert") for selection in select_tables(source, None, "none")]
    run_migration(source, target, runs, batch_size=50, schema_changes="evolve", parallelism=2)


@pytest.mark.postgres
def test_a_child_table_copies_while_its_parent_is_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_db: ServerDatabase
) -> None:
    make_flights_db(tmp_path / "local.db", flights=300)
    source = sa.create_engine(sqlite_url(tmp_path / "local.db"))
    target = postgres_db.engine()
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
        assert table_rows(postgres_db.url, table) == table_rows(
            sqlite_url(tmp_path / "local.db"), table
        )
    target.dispose()


@pytest.mark.postgres
def test_a_parent_that_fails_verification_still_fails_the_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_db: ServerDatabase
) -> None:
    make_flights_db(tmp_path / "local.db", flights=300)
    source = sa.create_engine(sqlite_url(tmp_path / "local.db"))
    target = postgres_db.engine()
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
    target.dispose()
