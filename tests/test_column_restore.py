"""Restores in whole Arrow columns (`archive/column_restore.py`): each value the same as the
row path lands it, the table restored row by row where a value does not fit, and a restore
stopped or killed half way resumes to the same rows.

The typing is compared with the row path's conversion (`migrate/convert.py`) without a
server; the server tests compare the restored rows with the source's row by row.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan.archive import column_restore, new_backup_id, restore_backup, write_backup
from dsdb_plan.archive import restore as restore_module
from dsdb_plan.archive.columnar import ParquetWriter, read_batches, read_blocks
from dsdb_plan.dbschema import ColumnSchema, TableSchema
from dsdb_plan.errors import Interrupted
from dsdb_plan.migrate.convert import columns_converter
from dsdb_plan.migrate.sqlite_arrow import Unfit
from dsdb_plan.state import open_state
from tests.helpers import kill_when, run_cli, spawn_cli
from tests.servers import ServerDatabase

NOW = dt.datetime(2026, 12, 7, 23, 0, tzinfo=dt.UTC)

#: A SQLite table of every type the column path takes, with values as SQLite stores them:
#: a NUMERIC column holding integers and reals (stored as tagged text), ISO text dates and
#: timestamps, 0/1 booleans, blobs, NULLs everywhere but the key.
SQLITE_DDL = (
    "CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, "
    "amount NUMERIC(12, 2), active BOOLEAN, born DATE, seen TIMESTAMP, "
    "updated_at TIMESTAMP WITH TIME ZONE, payload BLOB, small SMALLINT, big BIGINT, "
    "code VARCHAR(20))"
)
SQLITE_ROWS: list[tuple[Any, ...]] = [
    (
        1,
        "Grüße 😀, quote ' \" \\ \t tab",
        0.1 + 0.2,
        100,
        1,
        "2024-02-29",
        "2024-01-01 10:00:37",
        "2024-06-01 12:30:00.123456+00:00",
        b"\x00\x01\xff",
        -32768,
        2**62,
        "a",
    ),
    (
        2,
        "",
        -0.0,
        12.5,
        0,
        "1970-01-01",
        "1970-01-01T00:00:00.000001",
        "2024-12-31T23:59:59Z",
        b"",
        32767,
        -(2**63),
        "",
    ),
    (3, "nulls", None, None, None, None, None, None, None, None, None, None),
    (
        4,
        "tiny",
        5e-324,
        0.01,
        1,
        "9999-12-31",
        "2000-02-29 23:59:59.5",
        "2000-01-01 00:00:00",
        b"\x00" * 100,
        0,
        0,
        "z" * 20,
    ),
    (
        5,
        "huge",
        1e308,
        -12345678.99,
        0,
        "0001-01-01",
        "0001-01-01 00:00:00",
        None,
        None,
        1,
        1,
        None,
    ),
]
ROW_COUNT = 25_000  # over two batches of `column_restore.BATCH_ROWS`


def _sqlite_source(path: Path, rows: int = ROW_COUNT) -> sa.Engine:
    with sqlite3.connect(path) as db:
        db.execute(SQLITE_DDL)
        db.executemany(f"INSERT INTO item VALUES ({', '.join('?' * 12)})", SQLITE_ROWS)
        db.executemany(
            "INSERT INTO item (id, name, score, amount, born, seen) VALUES (?, ?, ?, ?, ?, ?)",
            (
                (
                    i,
                    f"row {i}",
                    i / 7,
                    i if i % 3 else i / 4,
                    "2020-05-17",
                    f"2020-05-17 {i % 24:02d}:00:00",
                )
                for i in range(10, rows + 10)
            ),
        )
        db.execute(
            "CREATE TABLE note (id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES item (id), "
            "body TEXT)"
        )
        db.execute("CREATE INDEX note_item ON note (item_id)")
        db.executemany("INSERT INTO note VALUES (?, ?, ?)", [(1, 1, "a"), (2, 4, None)])
    db.close()
    return sa.create_engine(f"sqlite:///{path}")


def _rows(engine: sa.Engine, table: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY id"))]


# -- the typing, without a server ---------------------------------------------------------

#: The target column types dsdb creates in PostgreSQL for SQLITE_DDL's portable types.
KINDS = [
    "int8",
    "text",
    "float8",
    "numeric",
    "bool",
    "date",
    "timestamp",
    "timestamptz",
    "bytea",
    "int2",
    "int8",
    "varchar",
]


def _item_schema(tmp_path: Path) -> TableSchema:
    source = _sqlite_source(tmp_path / "s.db", rows=0)
    info = write_backup(source, tmp_path / "b", new_backup_id(NOW))
    return info.table("item")


def _write(path: Path, table: TableSchema, rows: Sequence[Sequence[Any]]) -> Path:
    writer = ParquetWriter(path, table)
    writer.write_rows(rows)
    writer.close()
    return path


def _normal(value: Any) -> Any:
    """A value as PostgreSQL compares it: numbers by value (12.5 is 12.50 in numeric)."""
    if isinstance(value, float) and value == 0:
        return repr(value)  # the sign of zero shows
    return value


def test_every_typed_column_holds_what_the_row_path_lands(tmp_path: Path) -> None:
    table = _item_schema(tmp_path)
    path = _write(tmp_path / "item.parquet", table, SQLITE_ROWS)
    (batch,) = read_batches(path, 100)
    typed = column_restore.typed_batch(batch, table.columns, KINDS)

    (block,) = read_blocks(path)
    convert = columns_converter(table, "sqlite", "postgresql")
    expected = convert(block.columns, block.rows)
    assert [tuple(map(_normal, row)) for row in typed.rows()] == [
        tuple(map(_normal, row)) for row in expected
    ]
    # So that a normalisation cannot hide a loss.
    first = typed.row(0)
    assert first[2] == 0.30000000000000004 and first[3] == Decimal(100)
    assert first[6] == dt.datetime(2024, 1, 1, 10, 0, 37)
    assert first[7] == dt.datetime(2024, 6, 1, 12, 30, 0, 123456, tzinfo=dt.UTC)
    assert typed.row(1)[3] == Decimal("12.5") and typed.row(4)[3] == Decimal("-12345678.99")


def test_typed_values_of_other_sources_keep_their_instants(tmp_path: Path) -> None:
    table = TableSchema(
        "t",
        (
            ColumnSchema("id", "bigint", nullable=False),
            ColumnSchema("at", "datetime", timezone=True),
            ColumnSchema("naive", "datetime"),
            ColumnSchema("amount", "decimal", precision=30, scale=10),
            ColumnSchema("ok", "boolean"),
            ColumnSchema("day", "date"),
        ),
        primary_key=("id",),
    )
    paris = dt.timezone(dt.timedelta(hours=2))
    rows = [
        (
            1,
            dt.datetime(2024, 6, 1, 12, 30, tzinfo=paris),
            dt.datetime(2024, 1, 1, 10),
            Decimal("12345678901234.5678000000"),
            True,
            dt.date(2024, 2, 29),
        ),
        (2, None, None, None, None, None),
    ]
    path = _write(tmp_path / "t.parquet", table, rows)
    (batch,) = read_batches(path, 100)
    kinds = ["int8", "timestamptz", "timestamp", "numeric", "bool", "date"]
    typed = column_restore.typed_batch(batch, table.columns, kinds)
    (block,) = read_blocks(path)
    assert typed.rows() == columns_converter(table, "postgresql", "postgresql")(
        block.columns, block.rows
    )
    assert typed.row(0)[1] == dt.datetime(2024, 6, 1, 10, 30, tzinfo=dt.UTC)
    assert typed.row(0)[2] == dt.datetime(2024, 1, 1, 10)


@pytest.mark.parametrize(
    ("column", "values"),
    [
        (ColumnSchema("n", "integer"), [1, "two"]),  # tagged: another storage class
        (ColumnSchema("n", "decimal", precision=12, scale=2), [1, 2.5, "3"]),  # a text
        (ColumnSchema("n", "decimal", precision=12, scale=2), [1, float("nan")]),
        (ColumnSchema("n", "decimal", precision=40, scale=2), [1, 1e300]),  # an exponent
        (ColumnSchema("n", "date"), ["2024-02-30"]),
        (ColumnSchema("n", "datetime"), ["2024-06-01 12:30:00+02:00"]),
        (ColumnSchema("n", "boolean"), [2]),
        (ColumnSchema("n", "uuid"), [uuid.UUID("12345678-1234-5678-1234-567812345678")]),
    ],
)
def test_a_value_the_row_path_must_convert_does_not_fit(
    tmp_path: Path, column: ColumnSchema, values: list[Any]
) -> None:
    table = TableSchema("t", (column,))
    path = _write(tmp_path / "t.parquet", table, [(value,) for value in values])
    (batch,) = read_batches(path, 100)
    kind = {
        "integer": "int4",
        "decimal": "numeric",
        "date": "date",
        "datetime": "timestamp",
        "boolean": "bool",
        "uuid": "uuid",
    }[column.type]
    with pytest.raises(Unfit):
        column_restore.typed_batch(batch, table.columns, [kind])


# -- into PostgreSQL ----------------------------------------------------------------------


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int | None]]:
    """What each column load returned, by table (None: the row path loaded it)."""
    seen: list[tuple[str, int | None]] = []
    load = column_restore.load

    def spy(engine: sa.Engine, path: Path, table: TableSchema, *args: Any) -> int | None:
        count = load(engine, path, table, *args)
        seen.append((table.name, count))
        return count

    monkeypatch.setattr(column_restore, "load", spy)
    return seen


@pytest.mark.postgres
def test_a_sqlite_backup_restores_in_columns_row_for_row(
    tmp_path: Path, postgres_db: ServerDatabase, loads: list[tuple[str, int | None]]
) -> None:
    source = _sqlite_source(tmp_path / "s.db")
    info = write_backup(source, tmp_path / "b", new_backup_id(NOW))
    target = postgres_db.engine()
    result = restore_backup(info.path, target)
    assert loads == [("item", ROW_COUNT + 5), ("note", 2)]
    assert result.rows == ROW_COUNT + 7

    with source.connect() as conn:
        table = info.table("item")
        convert = columns_converter(table, "sqlite", "postgresql")
        expected = convert(list(zip(*_rows(source, "item"), strict=True)), ROW_COUNT + 5)
    assert [tuple(map(_normal, r)) for r in _rows(target, "item")] == [
        tuple(map(_normal, r)) for r in expected
    ]
    assert _rows(target, "note") == _rows(source, "note")
    with target.connect() as conn:
        indexes = {ix["name"] for ix in sa.inspect(conn).get_indexes("note")}
        keys = sa.inspect(conn).get_foreign_keys("note")
        amount = conn.exec_driver_sql("SELECT amount FROM item WHERE id = 2").scalar()
    assert "note_item" in indexes and keys[0]["referred_table"] == "item"
    assert str(amount) == "12.50"  # rounded to the column's scale by the server, as text is


@pytest.mark.postgres
def test_a_batch_that_does_not_fit_restores_the_table_row_by_row(
    tmp_path: Path, postgres_db: ServerDatabase, loads: list[tuple[str, int | None]]
) -> None:
    source = _sqlite_source(tmp_path / "s.db")
    with source.begin() as conn:  # far into the table: the batches before it fitted
        # A datetime's text in a date column: the row path takes its date, this path no text
        # but a date's.
        conn.exec_driver_sql("UPDATE item SET born = '2024-02-29 00:00:00' WHERE id = 20000")
    info = write_backup(source, tmp_path / "b", new_backup_id(NOW))
    target = postgres_db.engine()
    restore_backup(info.path, target)
    assert loads == [("item", None), ("note", 2)]
    assert len(_rows(target, "item")) == ROW_COUNT + 5
    with target.connect() as conn:
        born = conn.exec_driver_sql("SELECT born FROM item WHERE id = 20000").scalar()
    assert born == dt.date(2024, 2, 29)


@pytest.mark.postgres
def test_a_restore_stopped_while_loading_in_columns_drops_the_table_and_resumes(
    tmp_path: Path, postgres_db: ServerDatabase
) -> None:
    import threading

    source = _sqlite_source(tmp_path / "s.db")
    info = write_backup(source, tmp_path / "b", new_backup_id(NOW))
    target = postgres_db.engine()
    cancel = threading.Event()
    started: list[str] = []
    with pytest.raises(Interrupted, match="'item'"):
        restore_backup(
            info.path,
            target,
            cancel=cancel,
            on_table_started=started.append,
            progress=lambda table, rows: cancel.set(),
        )
    assert started == ["item"]
    with target.connect() as conn:
        assert "item" not in sa.inspect(conn).get_table_names()
    restore_backup(info.path, target, replace_existing=True)
    assert len(_rows(target, "item")) == ROW_COUNT + 5


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, not even cleanup."""


@pytest.mark.postgres
def test_a_restore_killed_after_its_rows_committed_resumes_on_the_next_apply(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    postgres_db: ServerDatabase,
    monkeypatch: pytest.MonkeyPatch,
    write_manifest: Any,
) -> None:
    (tmp_path / "data").mkdir()
    _sqlite_source(tmp_path / "data/local.db", rows=100)
    url = postgres_db.url.render_as_string(hide_password=False)
    project = write_manifest(
        "version: 1\nconnections:\n  local: {driver: sqlite, database: data/local.db}\n"
        f"  target: {{url: '{url}'}}\n"
        "backups:\n  nightly: {connection: local}\n"
        "restores:\n  back: {backup: nightly, to: target}\n"
    )

    def killed(*args: Any, **kwargs: Any) -> None:
        raise _Killed

    # Killed between the commit of the first table's rows and its indexes, with no cleanup.
    monkeypatch.setattr(restore_module, "create_indexes", killed)
    monkeypatch.setattr(restore_module, "_drop_quietly", lambda engine, table: None)
    with pytest.raises(_Killed):
        run_cli(capsys, "apply", project, "--auto-approve")
    monkeypatch.undo()

    state = open_state(".dsdb/state.db", project.parent).read()
    assert state.checkpoints["restore.back"]["loading"] == ["item"]
    target = postgres_db.engine()
    assert len(_rows(target, "item")) == 105  # committed, not reported done

    done = run_cli(capsys, "apply", project, "--auto-approve")
    assert done.code == 0, done.text
    source = sa.create_engine(f"sqlite:///{tmp_path / 'data/local.db'}")
    assert [r[0] for r in _rows(target, "item")] == [r[0] for r in _rows(source, "item")]
    assert _rows(target, "note") == _rows(source, "note")
    assert "Nothing to do." in run_cli(capsys, "apply", project, "--auto-approve").out


@pytest.mark.postgres
def test_a_restore_killed_while_loading_in_columns_resumes_without_loss_or_duplicates(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    postgres_db: ServerDatabase,
    write_manifest: Any,
) -> None:
    (tmp_path / "data").mkdir()
    _sqlite_source(tmp_path / "data/local.db")
    url = postgres_db.url.render_as_string(hide_password=False)
    project = write_manifest(
        "version: 1\nconnections:\n  local: {driver: sqlite, database: data/local.db}\n"
        f"  target: {{url: '{url}'}}\n"
        "backups:\n  nightly: {connection: local}\n"
        "restores:\n  back: {backup: nightly, to: target}\n"
    )
    state = open_state(".dsdb/state.db", project.parent)

    def loading() -> bool:
        try:
            checkpoint = state.read().checkpoints.get("restore.back", {})
        except Exception:  # the file may be mid-creation; a reader only retries
            return False
        return bool(checkpoint.get("loading"))

    kill_when(spawn_cli("apply", project, "--auto-approve"), loading)

    done = run_cli(capsys, "apply", project, "--auto-approve")
    assert done.code == 0, done.text
    target = postgres_db.engine()
    source = sa.create_engine(f"sqlite:///{tmp_path / 'data/local.db'}")
    assert [r[:2] for r in _rows(target, "item")] == [r[:2] for r in _rows(source, "item")]
    assert _rows(target, "note") == _rows(source, "note")
    assert "Nothing to do." in run_cli(capsys, "apply", project, "--auto-approve").out
