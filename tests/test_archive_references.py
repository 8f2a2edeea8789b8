"""archive/references: the foreign keys a backup's rows break, read from its files."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from dsdb_plan.archive import BackupInfo, iter_rows, new_backup_id, write_backup
from dsdb_plan.archive.references import count_dangling, rows_kept

FORMATS = ["parquet", "jsonl"]


def _backup(tmp_path: Path, script: str, data_format: str) -> BackupInfo:
    source = tmp_path / "source.db"
    with sqlite3.connect(source) as db:
        db.executescript(script)
    engine = sa.create_engine(f"sqlite:///{source}")
    try:
        return write_backup(
            engine,
            tmp_path / "backups",
            new_backup_id(dt.datetime.now(dt.UTC)),
            data_format=data_format,  # type: ignore[arg-type]
        )
    finally:
        engine.dispose()


PAIRS = """
CREATE TABLE parent (a INTEGER, b TEXT, PRIMARY KEY (a, b));
CREATE TABLE child (
    id INTEGER PRIMARY KEY, a INTEGER, b TEXT, FOREIGN KEY (a, b) REFERENCES parent (a, b)
);
INSERT INTO parent VALUES (1, 'x'), (2, 'y');
INSERT INTO child VALUES
    (1, 1, 'x'), (2, 2, 'x'), (3, NULL, 'x'), (4, 3, NULL), (5, 2, 'x'), (6, 9, 'z'),
    (7, 8, 'z'), (8, 7, 'z'), (9, 2, 'y');
"""


@pytest.mark.parametrize("data_format", FORMATS)
def test_a_reference_is_dangling_when_no_parent_row_has_it_and_none_of_it_is_null(
    tmp_path: Path, data_format: str
) -> None:
    info = _backup(tmp_path, PAIRS, data_format)
    (found,) = count_dangling(info, info.tables)
    assert (found.table, found.columns, found.ref_table, found.ref_columns) == (
        "child",
        ("a", "b"),
        "parent",
        ("a", "b"),
    )
    # (2, 'x') twice, (9, 'z'), (8, 'z'), (7, 'z'); the rows with a NULL point nowhere.
    assert found.rows == 5
    assert found.examples == ("(2, 'x')", "(7, 'z')", "(8, 'z')") and found.more
    kept = rows_kept(info, info.tables)
    assert kept == {"child": [True, False, True, True, False, False, False, False, True]}


@pytest.mark.parametrize("data_format", FORMATS)
def test_keys_to_a_table_not_restored_are_not_counted(tmp_path: Path, data_format: str) -> None:
    info = _backup(tmp_path, PAIRS, data_format)
    children = [table for table in info.tables if table.name == "child"]
    assert count_dangling(info, children) == []
    assert rows_kept(info, children) == {}


STAFF = """
CREATE TABLE teams (id INTEGER PRIMARY KEY, lead INTEGER REFERENCES staff (id));
CREATE TABLE staff (
    id INTEGER PRIMARY KEY, boss INTEGER REFERENCES staff (id), team INTEGER REFERENCES teams (id)
);
INSERT INTO teams VALUES (1, 1), (2, 4);
INSERT INTO staff VALUES
    (1, NULL, 1), (2, 1, 1), (3, 99, 1), (4, 3, 2), (5, 4, 1), (6, 2, 1), (7, 6, 5);
"""


@pytest.mark.parametrize("data_format", FORMATS)
def test_skip_leaves_out_every_row_that_points_at_a_left_out_row_down_chains_and_cycles(
    tmp_path: Path, data_format: str
) -> None:
    info = _backup(tmp_path, STAFF, data_format)
    found = {(d.table, d.columns): d.rows for d in count_dangling(info, info.tables)}
    assert found == {("staff", ("boss",)): 1, ("staff", ("team",)): 1}
    kept = rows_kept(info, info.tables)
    staff = [row[0] for row in iter_rows(info, "staff")]
    teams = [row[0] for row in iter_rows(info, "teams")]
    # 3's boss is missing and 7's team: 4 and 5 report to a skipped row, team 2 is led by
    # a skipped row, and nothing else points at those.
    skipped_staff = {staff[i] for i, loaded in enumerate(kept["staff"]) if not loaded}
    skipped_teams = {teams[i] for i, loaded in enumerate(kept["teams"]) if not loaded}
    assert skipped_staff == {3, 4, 5, 7}
    assert skipped_teams == {2}
