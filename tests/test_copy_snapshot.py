"""A migration digests its source once, in the snapshot the copy reads, in the database
where it can."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan.dbschema import ColumnSchema, TableSchema
from dsdb_plan.kinds import migration as migration_kind
from dsdb_plan.migrate import verify as verify_module
from dsdb_plan.migrate.run import TableRun, run_migration
from dsdb_plan.migrate.subset import select_tables
from tests.helpers import database, fill, make_flights_db, run_cli, table_rows

SCHEMA = TableSchema(
    "readings",
    (
        ColumnSchema("id", "bigint", nullable=False),
        ColumnSchema("value", "double"),
        ColumnSchema("note", "text"),
    ),
    primary_key=("id",),
)
ROWS = [(n, n / 7, f"reading {n}") for n in range(1, 501)]


def _migrate(source: sa.Engine, target: sa.Engine) -> None:
    runs = [TableRun(selection, "upsert") for selection in select_tables(source, None, "none")]
    run_migration(source, target, runs, batch_size=100, schema_changes="evolve")


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_write_to_the_source_during_the_copy_neither_lands_nor_fails_verification(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    source = database(request, tmp_path, kind)
    fill(source, SCHEMA, ROWS)
    target = sa.create_engine(f"sqlite:///{tmp_path / 'target.db'}")
    digested_in_database = []
    real = verify_module.in_database

    def digest_then_write(conn: sa.Connection, *args: Any) -> Any:
        summer = real(conn, *args)
        if conn.dialect.name == "sqlite":  # the target, verified in Python
            return summer
        digested_in_database.append(summer is not None)

        def digest(where: Any) -> Any:
            digested = summer(where)
            # Another session commits a new row after the digest, before the copy reads.
            with source.begin() as other:
                other.execute(sa.text("INSERT INTO readings VALUES (9999, 1.5, 'late')"))
            return digested

        return digest

    monkeypatch.setattr(verify_module, "in_database", digest_then_write)
    _migrate(source, target)  # raises if verification fails
    assert digested_in_database and all(digested_in_database)
    assert table_rows(target.url, "readings") == sorted(ROWS, key=repr)
    source.dispose()


def test_postgresql_digests_the_source_while_the_copy_reads_it(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The digest runs on a second connection holding the copy's snapshot, beside it: what
    commits meanwhile is in neither, and verification holds."""
    source = database(request, tmp_path, "postgresql")
    fill(source, SCHEMA, ROWS)
    target = sa.create_engine(f"sqlite:///{tmp_path / 'target.db'}")
    batch_written = threading.Event()
    waited = []
    real = verify_module.in_database

    def digest_after_a_batch(conn: sa.Connection, *args: Any) -> Any:
        if conn.dialect.name == "sqlite":  # the target, verified in Python
            return real(conn, *args)
        if threading.current_thread().name.startswith("dsdb-snapshot"):
            # Committed after the copy's snapshot was taken, before the digest's connection
            # read anything: in neither, since that connection holds the copy's snapshot.
            with source.begin() as other:
                other.execute(sa.text("INSERT INTO readings VALUES (9999, 1.5, 'late')"))
        summer = real(conn, *args)

        def digest(where: Any) -> Any:
            waited.append(batch_written.wait(timeout=10))
            return summer(where)

        return digest

    monkeypatch.setattr(verify_module, "in_database", digest_after_a_batch)
    runs = [TableRun(selection, "upsert") for selection in select_tables(source, None, "none")]
    run_migration(
        source,
        target,
        runs,
        batch_size=100,
        schema_changes="evolve",
        progress=lambda table, rows: batch_written.set(),
    )
    assert waited == [True]
    assert table_rows(target.url, "readings") == sorted(ROWS, key=repr)
    source.dispose()


def test_server_tables_are_verified_without_reading_rows_into_python(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = database(request, tmp_path, "postgresql")
    fill(source, SCHEMA, ROWS)
    target = request.getfixturevalue("mariadb_db").engine()

    def no_python_reads(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a server-side table was read through Python to verify it")

    monkeypatch.setattr(verify_module, "read_chunks", no_python_reads)
    _migrate(source, target)
    assert table_rows(target.url, "readings") == sorted(ROWS, key=repr)
    source.dispose()
    target.dispose()


def test_apply_records_the_subset_digest_verification_took_without_reading_it_again(
    capsys: Any, tmp_path: Path, write_manifest: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_flights_db(tmp_path / "data/local.db", flights=200)
    manifest = write_manifest(
        "version: 1\n"
        "connections:\n"
        "  local: {driver: sqlite, database: data/local.db}\n"
        "  prod: {driver: sqlite, database: data/prod.db}\n"
        "migrations:\n"
        "  ua:\n"
        "    from: local\n"
        "    to: prod\n"
        "    tables: {flights: {where: {carrier: UA}}}\n"
    )

    def read_again(*args: Any) -> Any:
        raise AssertionError("the subset was digested again after verification")

    monkeypatch.setattr(migration_kind, "_subset_fingerprint", read_again)
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    monkeypatch.undo()
    # The recorded digest is the subset's: an unchanged source plans nothing.
    assert run_cli(capsys, "plan", manifest, "--detailed-exitcode").code == 0
