"""The copy engine: exact copies across dialects, modes on reruns, atomic replace, incremental
copies, resume after a kill, hostile names, and the batch writers.

Every test runs on real databases, parametrised over the source → target pairs of issue 4;
server pairs skip without their server. Values are compared after `_normalise` (see
tests/test_archive.py for the documented dialect limits it absorbs). Targets are always
renamed (`<table>_t`), so PostgreSQL → PostgreSQL works inside one database.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan.archive import new_backup_id, restore_backup, write_backup
from dsdb_plan.dbschema import ColumnSchema, TableSchema, create_tables, reflect_tables
from dsdb_plan.errors import DsdbError, Interrupted, PlanError
from dsdb_plan.migrate import arrow_copy, copier
from dsdb_plan.migrate.convert import batch_converter
from dsdb_plan.migrate.copier import Mode, copy_table
from dsdb_plan.migrate.filters import column_type
from dsdb_plan.migrate.load import Operation, _GenericWriter, batch_writer
from dsdb_plan.migrate.read_ahead import read_ahead_of
from dsdb_plan.migrate.subset import TableSelection
from dsdb_plan.migrate.target import ensure_target, finish_target, inspect_target
from dsdb_plan.values import canonical, row_converter
from tests.servers import ServerDatabase
from tests.test_archive import (
    HOSTILE_COLUMNS,
    NOW,
    _make_awkward,
    _normalised,
    _rows,
    _structure,
)

PAIRS = [
    ("sqlite", "postgres"),
    ("postgres", "mariadb"),
    ("mariadb", "sqlite"),
    ("postgres", "postgres"),
    ("sqlite", "sqlite"),
]
MODES: list[Mode] = ["append", "upsert", "replace", "mirror"]
HOSTILE_TABLE = 'order "items"; drop ☃ 日本 %s'  # MySQL identifiers cannot hold emoji


@dataclass
class Ends:
    """A source and a target database (the same one for PostgreSQL → PostgreSQL)."""

    source: sa.Engine
    target: sa.Engine
    tmp: Path

    @property
    def label(self) -> str:
        return f"{self.source.dialect.name}->{self.target.dialect.name}"


def _engine(kind: str, role: str, request: pytest.FixtureRequest, tmp: Path) -> sa.Engine:
    if kind == "sqlite":
        return sa.create_engine(f"sqlite:///{tmp / f'{role}.db'}")
    server: ServerDatabase = request.getfixturevalue(f"{kind}_db")
    return server.engine()


@pytest.fixture(params=PAIRS, ids=["->".join(pair) for pair in PAIRS])
def ends(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ends]:
    source_kind, target_kind = request.param
    source = _engine(source_kind, "source", request, tmp_path)
    target = _engine(target_kind, "target", request, tmp_path)
    yield Ends(source, target, tmp_path)
    source.dispose()
    target.dispose()


def selection(
    engine: sa.Engine,
    table: str,
    *,
    target: str | None = None,
    key: tuple[str, ...] | None = None,
    where: Callable[[sa.Table], sa.ColumnElement[bool]] | None = None,
    columns: tuple[str, ...] | None = None,
) -> TableSelection:
    """A selection of one reflected table, as dsdb_plan.migrate.subset builds them."""
    (schema,) = reflect_tables(engine, [table])
    source = sa.Table(
        table, sa.MetaData(), *(sa.Column(c.name, column_type(c)) for c in schema.columns)
    )
    if columns is not None:
        schema = dataclasses.replace(
            schema, columns=tuple(c for c in schema.columns if c.name in columns)
        )
    return TableSelection(
        name=table,
        target=target or f"{table}_t",
        source=source,
        schema=schema,
        key=schema.primary_key if key is None else key,
        where=None if where is None else where(source),
        reason="listed",
    )


def migrate(
    ends: Ends, chosen: TableSelection, mode: Mode, **options: Any
) -> tuple[Any, list[dict[str, Any]]]:
    """inspect → ensure → copy → finish, as the migration runner does; returns the result
    and the checkpoints reported."""
    check = inspect_target(ends.target, chosen, schema_changes="evolve")
    assert not check.problems, check.problems
    known = options.pop("known_tables", ())
    ensure_target(ends.target, chosen, check, known_tables=known)
    checkpoints: list[dict[str, Any]] = []
    options.setdefault("batch_size", 2)
    result = copy_table(
        ends.source, ends.target, chosen, mode=mode, on_checkpoint=checkpoints.append, **options
    )
    finish_target(ends.target, chosen, known_tables=known)
    return result, checkpoints


# -- a simple table the mode tests change -----------------------------------------------

PEOPLE = TableSchema(
    "people",
    (
        ColumnSchema("id", "integer", nullable=False),
        ColumnSchema("name", "varchar", length=40),
        ColumnSchema("score", "double"),
        ColumnSchema("updated", "integer"),
    ),
    primary_key=("id",),
)


def _people(engine: sa.Engine) -> sa.Table:
    return sa.Table(
        "people",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(40)),
        sa.Column("score", sa.Float),
        sa.Column("updated", sa.Integer),
    )


def make_people(engine: sa.Engine, rows: int = 7) -> None:
    create_tables(engine, [PEOPLE])
    with engine.begin() as conn:
        conn.execute(
            sa.insert(_people(engine)),
            [{"id": i, "name": f"p{i}", "score": i / 10, "updated": 1} for i in range(1, rows + 1)],
        )


NEW = (100, 101)


def change_people(engine: sa.Engine) -> None:
    """Insert 100 and 101, update 2 (cursor advanced), delete 3."""
    people = _people(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(people),
            [{"id": i, "name": f"p{i}", "score": 0.5, "updated": 2} for i in NEW],
        )
        conn.execute(sa.update(people).where(people.c.id == 2).values(name="changed", updated=2))
        conn.execute(sa.delete(people).where(people.c.id == 3))


def rows_of(engine: sa.Engine, table: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        found = conn.execute(
            sa.text(f"SELECT id, name, score, updated FROM {table} ORDER BY id")
        ).all()
    return [(int(r[0]), r[1], float(r[2]) if r[2] is not None else None, r[3]) for r in found]


# -- exact copies ------------------------------------------------------------------------


def _awkward_source(ends: Ends) -> None:
    if ends.source.dialect.name == "sqlite":
        _make_awkward(Path(str(ends.source.url.database)))
        return
    seed = _make_awkward(ends.tmp / "seed.db")
    info = write_backup(seed, ends.tmp / "backups", new_backup_id(NOW))
    restore_backup(info.path, ends.source)


def test_every_awkward_type_copies_exactly(ends: Ends) -> None:
    _awkward_source(ends)
    renames = {"awkward": "awkward_t", "note": "note_t"}
    for table in ("awkward", "note"):
        chosen = selection(ends.source, table)
        result, checkpoints = migrate(ends, chosen, "upsert", known_tables=renames)
        assert result.rows_copied == 3 and checkpoints[-1]["rows"] == 3
    for table in reflect_tables(ends.source, renames):
        copied = dataclasses.replace(table, name=renames[table.name])
        assert _normalised(ends.target, copied) == _normalised(ends.source, table), ends.label
    # Keys, foreign keys (to the renamed parent) and indexes arrived.
    targets = {t.name: t for t in reflect_tables(ends.target, renames.values())}
    assert _structure(targets["awkward_t"]) == _structure(
        reflect_tables(ends.source, ["awkward"])[0]
    )
    assert [(fk.columns, fk.ref_table) for fk in targets["note_t"].foreign_keys] == [
        (("awkward_id",), "awkward_t")
    ]


def test_sqlite_to_sqlite_keeps_text_timestamps(tmp_path: Path) -> None:
    source = _make_awkward(tmp_path / "source.db")
    ends = Ends(source, sa.create_engine(f"sqlite:///{tmp_path / 'target.db'}"), tmp_path)
    migrate(ends, selection(source, "awkward"), "upsert")
    columns = reflect_tables(source, ["awkward"])[0].column_names
    assert _rows(ends.target, "awkward_t", columns) == _rows(source, "awkward", columns)
    assert _rows(ends.target, "awkward_t", ("id", "happened"))[0] == (1, "2024-01-01 10:00:37")


# -- modes on reruns -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_modes_on_a_rerun_after_source_changes(ends: Ends, mode: Mode) -> None:
    make_people(ends.source)
    chosen = selection(ends.source, "people")
    migrate(ends, chosen, mode)
    before = rows_of(ends.target, "people_t")
    assert before == rows_of(ends.source, "people")

    change_people(ends.source)
    result, _ = migrate(ends, chosen, mode)
    after = rows_of(ends.target, "people_t")
    source = rows_of(ends.source, "people")
    if mode == "append":  # new rows only: the old version of 2 and the deleted 3 stay
        assert after == sorted(before + [r for r in source if r[0] in NEW])
    elif mode == "upsert":  # 2 updated, 8 and 9 added, 3 kept
        assert after == sorted(source + [r for r in before if r[0] == 3])
    else:  # replace and mirror: exactly the source
        assert after == source
    assert result.rows_deleted == (1 if mode == "mirror" else 0)

    again, _ = migrate(ends, chosen, mode)
    assert rows_of(ends.target, "people_t") == after  # nothing changed: nothing changes
    assert again.rows_deleted == 0


def test_keyed_modes_need_a_key(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.db'}")
    make_people(engine)
    chosen = selection(engine, "people", key=())
    for mode in ("append", "upsert", "mirror"):
        with pytest.raises(PlanError, match=r"'people': mode .* needs a key"):
            copy_table(engine, engine, chosen, mode=mode, batch_size=10)  # type: ignore[arg-type]


def test_replace_without_a_key_and_mirror_of_a_subset(ends: Ends) -> None:
    make_people(ends.source)
    keyless = selection(ends.source, "people", key=())
    migrate(ends, keyless, "replace")
    assert rows_of(ends.target, "people_t") == rows_of(ends.source, "people")

    subset = selection(ends.source, "people", target="people_t", where=lambda t: t.c.id > 4)
    result, _ = migrate(ends, subset, "mirror")
    assert [r[0] for r in rows_of(ends.target, "people_t")] == [5, 6, 7]
    assert result.rows_deleted == 4


def test_replace_is_atomic_for_readers(ends: Ends, monkeypatch: pytest.MonkeyPatch) -> None:
    # A commit per batch, even in whole columns (which commit every two seconds), to look
    # between each two.
    monkeypatch.setattr(arrow_copy, "COMMIT_SECONDS", 0.0)
    make_people(ends.source, rows=9)
    chosen = selection(ends.source, "people")
    migrate(ends, chosen, "replace")
    old = rows_of(ends.target, "people_t")
    change_people(ends.source)
    seen: list[list[tuple[Any, ...]]] = []
    reader = sa.create_engine(ends.target.url, poolclass=sa.pool.NullPool)

    def look(rows: int) -> None:  # between batches, from another connection
        seen.append(rows_of(reader, "people_t"))

    migrate(ends, chosen, "replace", progress=look)
    # Five batches of 2 rows (SQLite to SQLite, fewer, as they grow: `_load_attached`).
    assert 3 <= len(seen) <= 5 and all(rows == old for rows in seen)
    assert rows_of(reader, "people_t") == rows_of(ends.source, "people")
    assert "people_t__dsdb_new" not in sa.inspect(ends.target).get_table_names()


# -- incremental ---------------------------------------------------------------------------


def test_incremental_copies_only_advanced_rows(ends: Ends) -> None:
    make_people(ends.source)
    chosen = selection(ends.source, "people")
    first, _ = migrate(ends, chosen, "upsert", cursor_column="updated")
    assert first.rows_copied == 7 and first.high_water == 1

    change_people(ends.source)
    with ends.source.begin() as conn:  # changed without advancing the cursor: not copied
        conn.execute(sa.text("UPDATE people SET name = 'quiet' WHERE id = 4"))
    second, _ = migrate(ends, chosen, "upsert", cursor_column="updated", since=first.high_water)
    assert second.rows_copied == 3 and second.high_water == 2
    names = {r[0]: r[1] for r in rows_of(ends.target, "people_t")}
    assert names[2] == "changed" and names[4] == "p4" and set(NEW) <= set(names)

    third, _ = migrate(ends, chosen, "upsert", cursor_column="updated", since=second.high_water)
    assert third.rows_copied == 0 and third.high_water == 2


# -- resume ---------------------------------------------------------------------------------


class Killed(Exception):
    pass


@pytest.mark.parametrize("mode", MODES)
def test_a_killed_copy_resumes_without_duplicates_or_gaps(ends: Ends, mode: Mode) -> None:
    make_people(ends.source, rows=11)
    chosen = selection(ends.source, "people")
    migrate(ends, chosen, mode)
    change_people(ends.source)
    old = rows_of(ends.target, "people_t")
    check = inspect_target(ends.target, chosen, schema_changes="evolve")
    saved: list[dict[str, Any]] = []

    def die_on_third(checkpoint: dict[str, Any]) -> None:
        # The third batch is committed, but its checkpoint is never stored: the resume
        # replays it from the second one.
        if len(saved) == 2:
            raise Killed
        saved.append(checkpoint)

    ensure_target(ends.target, chosen, check)
    with pytest.raises(Killed):
        copy_table(
            ends.source, ends.target, chosen, mode=mode, batch_size=2, on_checkpoint=die_on_third
        )
    if mode == "replace":
        assert rows_of(ends.target, "people_t") == old  # the staging table was being filled
    result = copy_table(ends.source, ends.target, chosen, mode=mode, batch_size=2, resume=saved[-1])
    finish_target(ends.target, chosen)
    target = rows_of(ends.target, "people_t")
    source = rows_of(ends.source, "people")
    assert len({r[0] for r in target}) == len(target)  # no duplicate
    if mode in ("replace", "mirror"):
        assert target == source
    elif mode == "upsert":
        assert target == sorted(source + [r for r in old if r[0] == 3])
    else:
        assert target == sorted(old + [r for r in source if r[0] in NEW])
    assert result.rows_copied == len(source)


@pytest.mark.parametrize("mode", MODES)
def test_a_cancelled_copy_stops_after_a_committed_batch_and_resumes(
    ends: Ends, mode: Mode, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A commit per batch, even in whole columns (which commit every two seconds and at once
    # when asked to stop), so that it is asked during the second.
    monkeypatch.setattr(arrow_copy, "COMMIT_SECONDS", 0.0)
    make_people(ends.source, rows=11)
    chosen = selection(ends.source, "people")
    ensure_target(ends.target, chosen, inspect_target(ends.target, chosen, schema_changes="evolve"))
    cancel = threading.Event()
    saved: list[dict[str, Any]] = []

    def stop_during_second(checkpoint: dict[str, Any]) -> None:
        saved.append(checkpoint)
        if len(saved) == 2:
            cancel.set()

    with pytest.raises(Interrupted):
        copy_table(
            ends.source,
            ends.target,
            chosen,
            mode=mode,
            batch_size=2,
            on_checkpoint=stop_during_second,
            cancel=cancel,
        )
    # It stopped right after the batch it was asked during, with that batch checkpointed
    # (SQLite to SQLite, the second batch may have grown: `_load_attached`).
    assert len(saved) == 2 and saved[-1]["rows"] in (4, 6)
    if mode != "replace":  # (which fills a staging table)
        assert len(rows_of(ends.target, "people_t")) == saved[-1]["rows"]
    copy_table(ends.source, ends.target, chosen, mode=mode, batch_size=2, resume=saved[-1])
    finish_target(ends.target, chosen)
    assert rows_of(ends.target, "people_t") == rows_of(ends.source, "people")


@pytest.mark.parametrize(("seconds", "batches"), [(1e9, [2, 6, 14, 30, 40]), (0.0, [2, 4, 6, 8])])
def test_sqlite_to_sqlite_batches_grow_while_each_commits_quickly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seconds: float, batches: list[int]
) -> None:
    """Rows never pass through Python there, so a batch doubles while the last one took
    under half of `_ATTACHED_BATCH_SECONDS`; each is checkpointed, and a resume from any of
    them finishes the copy."""
    monkeypatch.setattr(copier, "_ATTACHED_BATCH_SECONDS", seconds)
    ends = Ends(
        sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}"),
        sa.create_engine(f"sqlite:///{tmp_path / 'target.db'}"),
        tmp_path,
    )
    make_people(ends.source, rows=40 if seconds else 8)
    chosen = selection(ends.source, "people")
    result, checkpoints = migrate(ends, chosen, "upsert")
    assert [checkpoint["rows"] for checkpoint in checkpoints] == batches
    assert result.rows_copied == batches[-1]
    assert rows_of(ends.target, "people_t") == rows_of(ends.source, "people")
    with ends.target.begin() as conn:
        conn.execute(sa.text("DELETE FROM people_t WHERE id > :last"), {"last": batches[1]})
    copy_table(ends.source, ends.target, chosen, mode="upsert", batch_size=2, resume=checkpoints[1])
    assert rows_of(ends.target, "people_t") == rows_of(ends.source, "people")


# -- hostile names ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["upsert", "mirror", "replace"])
def test_hostile_names_copy(ends: Ends, mode: Mode) -> None:
    table = TableSchema(
        HOSTILE_TABLE,
        (
            ColumnSchema("select", "integer", nullable=False),
            *(ColumnSchema(name, "varchar", length=40) for name in HOSTILE_COLUMNS),
        ),
        primary_key=("select",),
    )
    create_tables(ends.source, [table])
    clause = sa.table(HOSTILE_TABLE, *(sa.column(c.name) for c in table.columns))
    values = ["x'; DROP TABLE t; --", "日本", "a b", '"', "%s", "%(x)s", "`"]
    with ends.source.begin() as conn:
        conn.execute(
            sa.insert(clause),
            [
                {"select": i, **{n: values[(i + j) % 7] for j, n in enumerate(HOSTILE_COLUMNS)}}
                for i in range(5)
            ],
        )
    chosen = selection(ends.source, HOSTILE_TABLE, target=HOSTILE_TABLE + " t")
    migrate(ends, chosen, mode)
    migrate(ends, chosen, mode)
    copied = dataclasses.replace(table, name=HOSTILE_TABLE + " t")
    assert _rows(ends.target, copied.name, copied.column_names) == _rows(
        ends.source, HOSTILE_TABLE, table.column_names
    )


# -- the batch writers -----------------------------------------------------------------------


def test_generic_writer_inserts_ignores_and_upserts(tmp_path: Path) -> None:
    """The path for dialects without a fast path, run on SQLite."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.db'}")
    make_people(engine, rows=2)
    columns = PEOPLE.columns
    rows = [(2, "two", 2.5, 9), (3, "three", None, 9)]
    with engine.begin() as conn:
        _GenericWriter(conn, "people", columns, ("id",), "insert_ignore").write(rows)
    assert rows_of(engine, "people")[1:] == [(2, "p2", 0.2, 1), (3, "three", None, 9)]
    with engine.begin() as conn:
        _GenericWriter(conn, "people", columns, ("id",), "upsert").write(rows)
    assert rows_of(engine, "people")[1:] == [(2, "two", 2.5, 9), (3, "three", None, 9)]


def test_a_source_in_memory_copies_though_its_connection_serves_one_thread(
    tmp_path: Path,
) -> None:
    """SQLite in memory keeps a connection per thread, which refuses to be read from another
    one: its rows are read without a worker thread."""
    source = sa.create_engine("sqlite://")
    make_people(source, rows=5)
    ends = Ends(source, sa.create_engine(f"sqlite:///{tmp_path / 'target.db'}"), tmp_path)
    migrate(ends, selection(source, "people"), "upsert")
    assert rows_of(ends.target, "people_t") == rows_of(source, "people")


def test_read_ahead_keeps_order_raises_what_the_reader_raises_and_stops_early() -> None:
    assert list(read_ahead_of(iter(range(5)))) == [0, 1, 2, 3, 4]

    def failing() -> Iterator[int]:
        yield 1
        raise DsdbError("unreadable")

    with pytest.raises(DsdbError, match="unreadable"):
        list(read_ahead_of(failing()))
    produced: list[int] = []

    def counted() -> Iterator[int]:
        for item in range(1000):
            produced.append(item)
            yield item

    for item in read_ahead_of(counted()):
        if item == 2:
            break
    assert len(produced) <= 5  # the one taken, the one waiting, the one being made


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "mariadb"])
def test_batch_writers_per_dialect(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    engine = _engine(kind, "db", request, tmp_path)
    make_people(engine, rows=2)
    rows = [(2, "two", 2.5, 9), (3, "three", None, 9)]
    for operation, expected in (
        ("insert_ignore", [(1, "p1", 0.1, 1), (2, "p2", 0.2, 1), (3, "three", None, 9)]),
        ("upsert", [(1, "p1", 0.1, 1), (2, "two", 2.5, 9), (3, "three", None, 9)]),
    ):
        with engine.begin() as conn:
            writer = batch_writer(conn, "people", PEOPLE.columns, operation=operation, key=("id",))
            writer.write(rows)
            writer.write(rows)  # a replayed batch changes nothing more
        assert rows_of(engine, "people") == expected
    engine.dispose()


def test_postgres_copy_is_binary_where_exact_and_text_otherwise(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A batch whose values all have their column's class goes in binary; one holding a
    value of another class (left for PostgreSQL to parse) goes as text, and both land."""
    engine = _engine("postgres", "db", request, tmp_path)
    table = TableSchema(
        "typed",
        (
            ColumnSchema("id", "integer", nullable=False),
            ColumnSchema("amount", "decimal", precision=12, scale=2),
            ColumnSchema("day", "date"),
            ColumnSchema("at", "datetime", timezone=True),
            ColumnSchema("blob", "binary"),
        ),
        primary_key=("id",),
    )
    create_tables(engine, [table])
    at = dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    blob = bytes(range(256))
    binary = [(1, Decimal("1.505"), dt.date(2024, 1, 2), at, blob), (2, None, None, None, None)]
    text = [(3, 7, "epoch", at, blob)]  # an int in a decimal column, a date PostgreSQL parses
    with engine.begin() as conn:
        writer = batch_writer(conn, "typed", table.columns)
        writer.write(binary)
        writer.write(text)
    with engine.connect() as conn:
        found = conn.exec_driver_sql("SELECT * FROM typed ORDER BY id").all()
    assert [tuple(row) for row in found] == [
        (1, Decimal("1.51"), dt.date(2024, 1, 2), at, blob),
        (2, None, None, None, None),
        (3, Decimal("7.00"), dt.date(1970, 1, 1), at, blob),
    ]
    engine.dispose()


@pytest.mark.parametrize("operation", ["insert_ignore", "upsert"])
def test_postgres_keyed_writer_copies_until_a_key_exists(
    operation: Operation, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """New keys are COPYed straight in; a batch meeting an existing key is rolled back to its
    savepoint and merged instead, and the transaction goes on: the result is the merge's."""
    engine = _engine("postgres", "db", request, tmp_path)
    make_people(engine, rows=2)
    with engine.begin() as conn:
        writer = batch_writer(conn, "people", PEOPLE.columns, operation=operation, key=("id",))
        writer.write([(3, "three", 3.5, 9), (4, "four", None, 9)])  # all new: COPY
        writer.write([(2, "two", 2.5, 9), (5, "five", 5.5, 9)])  # 2 exists: merged
        writer.write([(6, "six", 6.5, 9)])  # merged from now on
    kept = (2, "p2", 0.2, 1) if operation == "insert_ignore" else (2, "two", 2.5, 9)
    assert rows_of(engine, "people") == [
        (1, "p1", 0.1, 1),
        kept,
        (3, "three", 3.5, 9),
        (4, "four", None, 9),
        (5, "five", 5.5, 9),
        (6, "six", 6.5, 9),
    ]
    engine.dispose()


@pytest.mark.parametrize("target", ["sqlite", "postgresql", "mariadb"])
def test_batch_converter_equals_values_row_converter(tmp_path: Path, target: str) -> None:
    source = _make_awkward(tmp_path / "s.db")
    (schema,) = reflect_tables(source, ["awkward"])
    rows = _rows(source, "awkward", schema.column_names)
    rows.append((4, 5, 6, "text in a blob", 7, 8, 9, "2024-01-01", "x", "y", "z", "t", "{}", 1.0))
    for source_dialect in ("sqlite", "postgresql"):
        slow = row_converter(schema, source_dialect, target)
        fast = batch_converter(schema, source_dialect, target)
        assert repr(fast(rows)) == repr([slow(row) for row in rows])
        for row in rows:
            assert repr(fast([row])) == repr([slow(row)])


@pytest.mark.parametrize("target", ["sqlite", "postgresql", "mariadb"])
def test_batch_converter_equals_values_for_typed_values(target: str) -> None:
    """Values of every Python type into every portable type: the inline type tests that let
    values pass unconverted agree with `values` (drivers of server sources give these)."""
    columns = tuple(
        ColumnSchema(f"{portable}_{zoned}", portable, timezone=zoned)
        for portable in (
            "bigint", "boolean", "double", "decimal", "text", "binary", "date", "time",
            "datetime", "json", "uuid",
        )
        for zoned in (False, True)
    )  # fmt: skip
    aware = dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    values: list[Any] = [
        None, 0, 1, 7, True, 1.0, 1.5, -0.0, math.inf, math.nan, 10**400, Decimal("1.50"),
        Decimal("-Infinity"), Decimal("1e400"), "1", " 12.50 ", "x1", " 2024-01-02 ",
        "2024-01-02 03:04:05", "2024-01-02T03:04:05+02:00", "x", b"ab", dt.date(2024, 1, 2),
        dt.datetime(2024, 1, 2, 3), aware, dt.time(1, 2), dt.timedelta(hours=3), uuid.UUID(int=5),
    ]  # fmt: skip

    def outcome(convert: Callable[[Any], Any], rows: list[tuple[Any, ...]]) -> str:
        try:
            return repr(convert(rows))
        except (DsdbError, ArithmeticError, TypeError, ValueError) as error:  # e.g. infinities
            return f"{type(error).__name__}: {error}"

    # A value alone, a column of it with NULLs (converted whole where C functions can), and
    # the column of every value at once (value by value).
    batches = [[(value,)] for value in values]
    batches += [[(value,), (None,), (value,)] for value in values]
    batches.append([(value,) for value in values if not isinstance(value, float | Decimal)])
    for source in ("postgresql", "mysql"):
        for column in columns:
            alone = TableSchema("typed", (column,))
            slow = row_converter(alone, source, target)
            fast = batch_converter(alone, source, target)
            for rows in batches:
                expected = outcome(lambda rows, slow=slow: [slow(row) for row in rows], rows)
                assert outcome(fast, rows) == expected, (column, rows)


def test_text_that_is_no_date_stays_as_it_is() -> None:
    column = ColumnSchema("d", "date")
    assert canonical("not a date", column) == "not a date"
    assert canonical(" 2024-01-02 ", column) == dt.date(2024, 1, 2)
    assert canonical("2024-01-02 00:00:00", column) == dt.date(2024, 1, 2)
    assert canonical("2024-01-02 03:04:05", column) == dt.datetime(2024, 1, 2, 3, 4, 5)


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "mariadb"])
def test_replacing_a_parent_keeps_the_childrens_foreign_keys(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = sa.create_engine(f"sqlite:///{tmp_path / 's.db'}")
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE p (id INTEGER PRIMARY KEY, n TEXT)")
        conn.exec_driver_sql("CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p)")
        conn.exec_driver_sql("INSERT INTO p VALUES (1, 'a'), (2, 'b')")
        conn.exec_driver_sql("INSERT INTO c VALUES (1, 1), (2, 2)")
    ends = Ends(source, _engine(kind, "target", request, tmp_path), tmp_path)
    known = {"p": "p_t", "c": "c_t"}
    for table in ("p", "c"):
        migrate(ends, selection(source, table), "upsert", known_tables=known)
    with source.begin() as conn:
        conn.exec_driver_sql("UPDATE p SET n = 'changed'")
    migrate(ends, selection(source, "p"), "replace", known_tables=known)
    (child,) = reflect_tables(ends.target, ["c_t"])
    assert [(fk.columns, fk.ref_table) for fk in child.foreign_keys] == [(("p_id",), "p_t")]
    with ends.target.connect() as conn:
        assert conn.exec_driver_sql("SELECT n FROM p_t ORDER BY id").scalars().all() == [
            "changed",
            "changed",
        ]
