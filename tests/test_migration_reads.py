"""How often a SQLite-to-SQLite migration reads each table through Python: once per side.

The plan fingerprints the source; verification reuses that fingerprint for a whole table
the source provably did not change since, reads the target once, and the record keeps that
reading of the target instead of reading it again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan import checksum
from dsdb_plan.checksum import row_hash_sum
from dsdb_plan.engines import sqlite_pages
from dsdb_plan.errors import DsdbError
from dsdb_plan.fingerprint import Fingerprint, fingerprint_database
from dsdb_plan.migrate import run as migrate_run
from dsdb_plan.migrate.run import TableRun, run_migration
from dsdb_plan.migrate.subset import select_tables
from dsdb_plan.state import open_state
from tests.helpers import make_flights_db, run_cli

MANIFEST = """\
version: 1
connections:
  local: {driver: sqlite, database: data/local.db}
  copy: {driver: sqlite, database: data/copy.db}
migrations:
  everything: {from: local, to: copy}
"""


def count_hashed_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A one-item list holding how many rows Python has hashed since (row by row, or leaf
    page by leaf page)."""
    hashed = [0]

    def counting(rows: Sequence[tuple[Any, ...]]) -> int:
        hashed[0] += len(rows)
        return row_hash_sum(rows)

    monkeypatch.setattr(checksum, "row_hash_sum", counting)
    monkeypatch.setattr(sqlite_pages, "row_hash_sum", counting)
    return hashed


def test_a_whole_copy_reads_the_source_once_and_the_target_once(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_flights_db(tmp_path / "data/local.db", flights=600)
    project = write_manifest(MANIFEST)
    hashed = count_hashed_rows(monkeypatch)
    result = run_cli(capsys, "apply", project, "--auto-approve")
    assert result.code == 0, result.text
    rows = 600 + 3  # flights and airlines
    assert hashed[0] == 2 * rows

    record = open_state(".dsdb/state.db", tmp_path).read().resources["migration.everything"]
    written = Fingerprint.from_dict(record.fingerprints["written"])
    fresh = fingerprint_database(sa.create_engine(f"sqlite:///{tmp_path / 'data/copy.db'}"))
    assert written == fresh and written.tables["flights"].rows == 600
    assert "Nothing to do." in run_cli(capsys, "apply", project, "--auto-approve").out


def test_a_source_written_during_the_copy_is_not_taken_for_its_earlier_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_flights_db(tmp_path / "local.db", flights=50)
    source = sa.create_engine(f"sqlite:///{tmp_path / 'local.db'}")
    target = sa.create_engine(f"sqlite:///{tmp_path / 'copy.db'}")
    before = fingerprint_database(source)
    copy_table = migrate_run.copy_table

    def copy_then_write_source(*args: Any, **kwargs: Any) -> Any:
        copied = copy_table(*args, **kwargs)
        with sqlite3.connect(tmp_path / "local.db") as db:
            db.execute("UPDATE airlines SET name = 'changed' WHERE carrier = 'UA'")
        return copied

    monkeypatch.setattr(migrate_run, "copy_table", copy_then_write_source)
    (airlines,) = [s for s in select_tables(source, None, "none") if s.name == "airlines"]
    with pytest.raises(DsdbError, match="verification failed for airlines"):
        run_migration(
            source,
            target,
            [TableRun(airlines, "upsert")],
            batch_size=100,
            schema_changes="evolve",
            source_fingerprint=before,
        )
