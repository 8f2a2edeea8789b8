"""A table that points at itself is copied parents first, so a target that checks keys as
each batch commits takes rows whose parent comes later in key order; a killed copy of it
resumes in that order."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan.migrate.copier import copy_table
from dsdb_plan.migrate.order import copy_order
from dsdb_plan.migrate.subset import TableSelection, select_tables
from dsdb_plan.migrate.target import ensure_target, finish_target, inspect_target
from tests.helpers import database, sqlite_url, table_rows

EMPLOYEES = [
    (1, "a", 9),
    (2, "b", 1),
    (3, "c", 1),
    (4, "d", 9),
    (5, "points at itself", 5),
    (6, "in a cycle", 7),
    (7, "in a cycle", 6),
    (8, "parent not copied", 100),
    (9, "boss", None),
]


def employees(path: Path, rows: list[tuple[Any, ...]]) -> sa.Engine:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE emp (id INTEGER PRIMARY KEY, name TEXT, "
            "manager_id INTEGER REFERENCES emp(id))"
        )
        db.executemany("INSERT INTO emp VALUES (?, ?, ?)", rows)
    return sa.create_engine(sqlite_url(path))


def only(engine: sa.Engine) -> TableSelection:
    (selection,) = select_tables(engine, None, "none")
    return selection


def test_parents_come_first_and_rows_no_root_reaches_come_last(tmp_path: Path) -> None:
    source = employees(tmp_path / "local.db", EMPLOYEES)
    selection = only(source)
    order = copy_order(selection, "postgresql")
    assert order.depth is not None
    query = sa.select(selection.source.c.id, order.depth).select_from(order.source)
    with source.connect() as conn:
        ranked = conn.execute(query.order_by(*order.sort)).all()
    depth = dict(ranked)
    assert depth[9] == depth[5] == depth[8] == 0  # no manager, itself, one not in the table
    assert depth[1] == depth[4] == 1 and depth[2] == depth[3] == 2
    assert [row[0] for row in ranked[-2:]] == [6, 7]  # a cycle: after every other row
    assert copy_order(selection, "sqlite").depth is None  # SQLite checks nothing meanwhile


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_killed_copy_into_a_table_that_checks_its_keys_resumes_parents_first(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    # Every manager has a larger id than the people under them: key order would fail.
    rows = [(n, f"e{n}", None if n == 40 else min(40, n * 2)) for n in range(1, 41)]
    source = employees(tmp_path / "local.db", rows)
    target = database(request, tmp_path, kind)
    selection = only(source)
    with target.begin() as conn:  # the target already holds the table, with its key
        conn.exec_driver_sql(
            "CREATE TABLE emp (id BIGINT PRIMARY KEY, name TEXT, "
            "manager_id BIGINT REFERENCES emp(id))"
        )
    ensure_target(target, selection, inspect_target(target, selection, schema_changes="evolve"))
    saved: list[dict[str, Any]] = []

    class Killed(Exception):
        pass

    def die_on_fourth(checkpoint: dict[str, Any]) -> None:
        if len(saved) == 3:
            raise Killed
        saved.append(checkpoint)

    with pytest.raises(Killed):
        copy_table(
            source, target, selection, mode="upsert", batch_size=4, on_checkpoint=die_on_fourth
        )
    assert len(saved[-1]["last_key"]) == 2  # depth and id
    result = copy_table(source, target, selection, mode="upsert", batch_size=4, resume=saved[-1])
    finish_target(target, selection)
    assert result.rows_copied == 40
    assert table_rows(target.url, "emp") == table_rows(source.url, "emp")
    target.dispose()
