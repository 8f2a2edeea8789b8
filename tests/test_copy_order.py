"""A table that points at itself, through one foreign key or several, is copied parents
first, so a target that checks keys as each batch commits takes rows whose parent comes later
in key order; a killed copy of it resumes in that order."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan.engines.mysql import ENGINE as MYSQL
from dsdb_plan.engines.postgresql import ENGINE as POSTGRESQL
from dsdb_plan.engines.sqlite import ENGINE as SQLITE
from dsdb_plan.migrate import order
from dsdb_plan.migrate.copier import copy_table
from dsdb_plan.migrate.order import copy_order
from dsdb_plan.migrate.subset import TableSelection, select_tables
from dsdb_plan.migrate.target import ensure_target, finish_target, inspect_target
from tests.helpers import EVERY_DATABASE, database, sqlite_url, table_rows

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


def ranked_ids(source: sa.Engine, selection: TableSelection) -> list[Any]:
    """(id, depth) of every row, in the order they are copied into PostgreSQL."""
    order = copy_order(selection, POSTGRESQL)
    assert order.depth is not None
    query = sa.select(selection.source.c.id, order.depth).select_from(order.source)
    with source.connect() as conn:
        return list(conn.execute(query.order_by(*order.sort)).all())


def test_parents_come_first_and_rows_no_root_reaches_come_last(tmp_path: Path) -> None:
    source = employees(tmp_path / "local.db", EMPLOYEES)
    selection = only(source)
    ranked = ranked_ids(source, selection)
    depth = dict(ranked)
    assert depth[9] == depth[5] == depth[8] == 0  # no manager, itself, one not in the table
    assert depth[1] == depth[4] == 1 and depth[2] == depth[3] == 2
    assert [row[0] for row in ranked[-2:]] == [6, 7]  # a cycle: after every other row
    assert copy_order(selection, SQLITE).depth is None  # SQLite checks nothing meanwhile


def kill_then_resume(source: sa.Engine, target: sa.Engine, table: str, *, batch_size: int) -> None:
    """Copy `emp` into the target's table of it (created by the `table` statement first, as
    a table the target already holds, keys included), kill the copy at its fourth
    checkpoint, resume it, and check the target then equals the source."""
    with target.begin() as conn:
        conn.exec_driver_sql(table)
    selection = only(source)
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
            source,
            target,
            selection,
            mode="upsert",
            batch_size=batch_size,
            on_checkpoint=die_on_fourth,
        )
    assert len(saved[-1]["last_key"]) == 2  # depth and id
    result = copy_table(
        source, target, selection, mode="upsert", batch_size=batch_size, resume=saved[-1]
    )
    finish_target(target, selection)
    assert result.rows_copied == 40
    assert table_rows(target.url, "emp") == table_rows(source.url, "emp")
    target.dispose()


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_killed_copy_into_a_table_that_checks_its_keys_resumes_parents_first(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    # Every manager has a larger id than the people under them: key order would fail.
    rows = [(n, f"e{n}", None if n == 40 else min(40, n * 2)) for n in range(1, 41)]
    source = employees(tmp_path / "local.db", rows)
    table = (
        "CREATE TABLE emp (id BIGINT PRIMARY KEY, name TEXT, manager_id BIGINT REFERENCES emp(id))"
    )
    kill_then_resume(source, database(request, tmp_path, kind), table, batch_size=4)


#: (id, name, manager_id, mentor_id): every row's depth is above both the rows it points at.
MENTORED = [
    (1, "boss", None, None),
    (2, "a", 1, None),
    (3, "shallow manager, deep mentor", 1, 6),
    (4, "manager and mentor alike", 2, 2),
    (5, "points at itself, mentor not copied", 5, 100),
    (6, "c", 4, 5),
    (7, "a diamond below 1", 2, 8),
    (8, "mentors itself", 1, 8),
    (9, "e", 7, 4),
    (10, "a cycle a root reaches by mentor", 11, 1),
    (11, "in that cycle", 10, None),
    (12, "mentor in that cycle", 2, 11),
    (13, "a cycle no root reaches", 14, None),
    (14, "in that cycle", 13, None),
    (15, "mentor in that cycle", 1, 13),
]


def mentored(engine: sa.Engine, rows: list[tuple[Any, ...]]) -> sa.Engine:
    """`emp` pointing at itself twice (manager, mentor), holding `rows` unchecked."""
    columns = ["id BIGINT PRIMARY KEY", "name VARCHAR(40)", "manager_id BIGINT", "mentor_id BIGINT"]
    references = [
        f"FOREIGN KEY ({name}) REFERENCES emp(id)" for name in ("manager_id", "mentor_id")
    ]
    later = engine.dialect.name == "postgresql"  # added NOT VALID: the rows stay unchecked
    table = sa.table("emp", *(sa.column(name.split()[0]) for name in columns))
    with engine.begin() as conn:
        if engine.dialect.name in ("mysql", "mariadb"):
            conn.exec_driver_sql("SET foreign_key_checks = 0")
        conn.exec_driver_sql(
            f"CREATE TABLE emp ({', '.join(columns + ([] if later else references))})"
        )
        conn.execute(
            sa.insert(table), [dict(zip(table.c.keys(), row, strict=True)) for row in rows]
        )
        for reference in references if later else []:
            conn.exec_driver_sql(f"ALTER TABLE emp ADD {reference} NOT VALID")
    return engine


@pytest.mark.parametrize("kind", EVERY_DATABASE)
def test_with_two_references_each_row_comes_after_both_and_cycles_come_last(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    source = mentored(database(request, tmp_path, kind), MENTORED)
    selection = only(source)
    ranked = ranked_ids(source, selection)
    depth = {key: int(value) for key, value in ranked}
    assert depth[1] == depth[5] == 0  # no references; itself and one not in the table
    assert depth[2] == depth[8] == 1 and depth[4] == depth[7] == 2  # 7: 1 -> 2 and 1 -> 8
    assert depth[6] == depth[9] == 3 and depth[3] == 4  # 3: its mentor 6 is the deeper one
    # In or below a cycle, whether a root reaches it by another reference or none does.
    assert [row[0] for row in ranked[-6:]] == [10, 11, 12, 13, 14, 15]
    assert len({depth[n] for n in range(10, 16)}) == 1 and depth[10] > depth[3]
    source.dispose()


def test_two_composite_references_pair_their_columns(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "local.db") as db:
        db.execute(
            "CREATE TABLE emp (org TEXT, id INTEGER, boss_org TEXT, boss_id INTEGER, "
            "buddy_org TEXT, buddy_id INTEGER, PRIMARY KEY (org, id), "
            "FOREIGN KEY (boss_org, boss_id) REFERENCES emp(org, id), "
            "FOREIGN KEY (buddy_org, buddy_id) REFERENCES emp(org, id))"
        )
        rows = [
            ("a", 1, "b", 1, None, None),
            ("a", 2, "a", 1, "b", 2),
            ("b", 1, None, None, None, None),
            ("b", 2, "b", 1, "a", 1),  # ("b", 1) would be a root's key in another org
        ]
        db.executemany("INSERT INTO emp VALUES (?, ?, ?, ?, ?, ?)", rows)
    source = sa.create_engine(sqlite_url(tmp_path / "local.db"))
    selection = only(source)
    order = copy_order(selection, MYSQL)
    assert order.depth is not None
    table = selection.source
    query = sa.select(table.c.org, table.c.id, order.depth).select_from(order.source)
    with source.connect() as conn:
        ranked = conn.execute(query.order_by(*order.sort)).all()
    assert [tuple(row) for row in ranked] == [("b", 1, 0), ("a", 1, 1), ("b", 2, 2), ("a", 2, 3)]


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_killed_copy_into_a_table_with_two_references_resumes_parents_first(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    # Managers and mentors have larger ids than the people they lead: key order would fail,
    # and so would ordering by managers alone (a mentor can be as deep as those it mentors).
    rows = [
        (n, f"e{n}", None if n == 40 else min(40, n * 2), n + 1 if n % 5 == 0 and n < 40 else None)
        for n in range(1, 41)
    ]
    source = mentored(sa.create_engine(sqlite_url(tmp_path / "local.db")), rows)
    table = (
        "CREATE TABLE emp (id BIGINT PRIMARY KEY, name TEXT, manager_id BIGINT, "
        "mentor_id BIGINT, FOREIGN KEY (manager_id) REFERENCES emp(id), "
        "FOREIGN KEY (mentor_id) REFERENCES emp(id))"
    )
    kill_then_resume(source, database(request, tmp_path, kind), table, batch_size=3)


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_new_table_gets_both_its_references_to_itself_after_the_load(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    rows = [(n, f"e{n}", None if n == 9 else n + 1, None if n > 6 else n + 3) for n in range(1, 10)]
    source = mentored(sa.create_engine(sqlite_url(tmp_path / "local.db")), rows)
    target = database(request, tmp_path, kind)
    selection = only(source)
    ensure_target(target, selection, inspect_target(target, selection, schema_changes="evolve"))
    copy_table(source, target, selection, mode="append", batch_size=2)
    finish_target(target, selection)
    references = sa.inspect(target).get_foreign_keys("emp")
    assert sorted(fk["constrained_columns"] for fk in references) == [["manager_id"], ["mentor_id"]]
    assert table_rows(target.url, "emp") == table_rows(source.url, "emp")
    target.dispose()


def test_with_two_references_rows_past_the_deepest_walk_come_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk over several references stops at DEEPEST_SHARED levels (below a cycle it
    would go on to the row count): rows deeper than that come last, by key."""
    chain = [(n, f"e{n}", n - 1 if n > 1 else None, None) for n in range(1, 7)]
    source = mentored(sa.create_engine(sqlite_url(tmp_path / "local.db")), chain)
    selection = only(source)
    assert dict(ranked_ids(source, selection)) == {n: n - 1 for n in range(1, 7)}
    monkeypatch.setattr(order, "DEEPEST_SHARED", 3)
    ranked = ranked_ids(source, selection)
    assert [row[0] for row in ranked] == [1, 2, 3, 4, 5, 6]
    assert [int(row[1]) for row in ranked[:3]] == [0, 1, 2]
    (last,) = {int(row[1]) for row in ranked[3:]}  # one depth for them, after every other
    assert last > 2
