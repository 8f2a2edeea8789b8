"""PostgreSQL → MariaDB as bulk text (COPY TO STDOUT, LOAD DATA LOCAL INFILE): every awkward
value lands exactly, row by row; a range the target would not take as written goes by rows;
an interrupted copy resumes after its last committed range."""

from __future__ import annotations

import datetime as dt
import json
import threading
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

import dsdb_plan as dsdb
from dsdb_plan.dbschema import ColumnSchema, TableSchema
from dsdb_plan.engines import engine_for
from dsdb_plan.engines.mysql import MySQLEngine
from dsdb_plan.errors import DsdbError, Interrupted
from dsdb_plan.migrate import copier, text_copy
from dsdb_plan.migrate.copier import copy_table
from dsdb_plan.migrate.run import TableRun, run_migration
from dsdb_plan.migrate.subset import select_tables
from dsdb_plan.migrate.target import ensure_target, inspect_target
from dsdb_plan.migrate.text_copy import text_copy_note
from tests.helpers import fill
from tests.servers import ServerDatabase

pytestmark = [pytest.mark.postgres, pytest.mark.mariadb]

#: Quotes, a backtick, a semicolon and a `%s` the drivers must not take for a parameter.
TABLE = 'awk`ward "q"; %s ☃'
SCHEMA = TableSchema(
    TABLE,
    (
        ColumnSchema("id", "bigint", nullable=False),
        ColumnSchema("note", "text"),
        ColumnSchema("code", "varchar", length=40),
        ColumnSchema("bin", "binary"),
        ColumnSchema("flag", "boolean"),
        ColumnSchema("f", "double"),
        ColumnSchema("d", "decimal", precision=30, scale=10),
        ColumnSchema("day", "date"),
        ColumnSchema("at", "time"),
        ColumnSchema("ts", "datetime"),
        ColumnSchema("tstz", "datetime", timezone=True),
        ColumnSchema("j", "json"),
    ),
    primary_key=("id",),
)
_ZONE = dt.timezone(dt.timedelta(hours=-3, minutes=-30))
#: Text that bulk text escapes, or that looks like its escapes, and text it must not touch.
TEXTS = [
    "tab\there",
    "new\nline",
    "carriage\r\nreturn",
    "back\\slash",
    "\\",
    "\\N",
    "\\\\N",
    "N",
    "",
    None,
    "form\ffeed and vertical\vtab",
    "\\f is no form feed, \\v no tab",
    "\\\f",
    "back\bspace",
    "ctrl-Z \x1a and \\Z and \\0",
    "4-byte 😀 𝄞 and é",
    " trailing space ",
]
BINARIES = [b"\x00", b"\x00\x00\xff\x00", b"", None, b"\\N", b"\t\n\\", bytes(range(256))]


def _rows(count: int = 40) -> list[tuple[Any, ...]]:
    rows = []
    for n in range(count):
        text = TEXTS[n % len(TEXTS)]
        rows.append(
            (
                n - 5,  # negative keys and zero too
                text,
                None if text is None else text[:40],
                BINARIES[n % len(BINARIES)],
                None if n % 5 == 0 else n % 2 == 0,
                [0.1 + 0.2, -0.0, 5e-324, 1.7976931348623157e308, None][n % 5],
                [Decimal("-12345678901234567890.0123456789"), Decimal("0E-10"), None][n % 3],
                dt.date(1, 1, 1) + dt.timedelta(days=n * 30_000),
                dt.time(23, 59, 59, 999_999) if n % 2 else dt.time(0, 0, 0, n),
                dt.datetime(2024, 2, 29, 12, 0, 0, n),
                dt.datetime(2021, 3, 28, 1, 30, n % 60, 5, tzinfo=_ZONE),
                [None, json.dumps({"k": text, "n": [1, 2.5, None]}), json.dumps("\\N")][n % 3],
            )
        )
    return rows


def _engine(server: ServerDatabase) -> sa.Engine:
    """An engine as dsdb makes it (`Connection.create_engine`)."""
    engine = server.engine()
    engine_for(engine.dialect).prepare_engine(engine)
    return engine


def _read(engine: sa.Engine) -> list[tuple[Any, ...]]:
    """Every row, by key, with each value as it means (read here, not by dsdb)."""
    quote = engine.dialect.identifier_preparer.quote
    # JSON as its text on both sides (psycopg would parse PostgreSQL's).
    names = ", ".join(
        f"CAST({quote(c.name)} AS TEXT)"
        if c.type == "json" and engine.dialect.name == "postgresql"
        else quote(c.name)
        for c in SCHEMA.columns
    )
    with engine.connect() as conn:
        query = f"SELECT {names} FROM {_quoted(conn)} ORDER BY id"
        rows = conn.exec_driver_sql(query).all()
    return [tuple(_meaning(c, v) for c, v in zip(SCHEMA.columns, row, strict=True)) for row in rows]


def _meaning(column: ColumnSchema, value: Any) -> Any:
    if value is None:
        return None
    if column.type == "boolean":
        return bool(value)
    if column.type == "binary":
        return bytes(value)
    if column.type == "time" and isinstance(value, dt.timedelta):  # MariaDB's TIME
        return (dt.datetime.min + value).time()
    if column.type == "datetime" and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)  # MariaDB keeps UTC
    if column.type == "json":
        return json.loads(value) if isinstance(value, str) else value
    return value


def _copy(source: sa.Engine, target: sa.Engine, batch_size: int = 4) -> None:
    runs = [TableRun(selection, "upsert") for selection in select_tables(source, None, "none")]
    run_migration(source, target, runs, batch_size=batch_size, schema_changes="evolve")


@pytest.fixture
def ends(postgres_db: ServerDatabase, mariadb_db: ServerDatabase) -> tuple[sa.Engine, sa.Engine]:
    source, target = _engine(postgres_db), _engine(mariadb_db)
    fill(source, SCHEMA, _rows())
    return source, target


@pytest.fixture
def by_rows(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tables the rows path copied (or went on copying)."""
    copied: list[str] = []
    rows_path = copier._load_batches

    def spy(src: Any, dst: Any, job: Any, table: str, operation: Any) -> None:
        copied.append(table)
        rows_path(src, dst, job, table, operation)

    monkeypatch.setattr(copier, "_load_batches", spy)
    return copied


def test_awkward_values_land_exactly_as_bulk_text_and_a_rerun_changes_nothing(
    ends: tuple[sa.Engine, sa.Engine], by_rows: list[str]
) -> None:
    source, target = ends
    expected = _read(source)
    assert expected == [
        tuple(_meaning(c, v) for c, v in zip(SCHEMA.columns, row, strict=True)) for row in _rows()
    ]
    _copy(source, target)
    assert by_rows == []  # every range went as bulk text
    found = _read(target)
    differences = [
        (want[0], column.name, got_value, want_value)
        for want, got in zip(expected, found, strict=True)
        for column, want_value, got_value in zip(SCHEMA.columns, want, got, strict=True)
        if got_value != want_value
    ]
    assert len(found) == len(expected)
    assert differences == []
    _copy(source, target)
    assert _read(target) == expected


def test_a_value_the_target_cannot_hold_is_refused_as_by_rows(
    ends: tuple[sa.Engine, sa.Engine], by_rows: list[str]
) -> None:
    source, target = ends
    with source.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {_quoted(conn)} SET f = 'NaN' WHERE id = 20")
    with pytest.raises(DsdbError, match="cannot store nan"):
        _copy(source, target)
    assert by_rows == [TABLE]
    with target.connect() as conn:
        held = conn.exec_driver_sql(f"SELECT count(*), max(id) FROM {_quoted(conn)}").one()
    # The ranges before the one with the NaN were committed, nothing of it or after.
    assert held == (24, 18)


def test_an_upsert_over_rows_the_target_holds_goes_on_by_rows(
    ends: tuple[sa.Engine, sa.Engine], by_rows: list[str]
) -> None:
    source, target = ends
    _copy(source, target)
    with target.begin() as conn:
        table = _quoted(conn)
        conn.exec_driver_sql(f"UPDATE {table} SET note = 'changed', bin = NULL WHERE id > 10")
        conn.exec_driver_sql(f"INSERT INTO {table} (id, note) VALUES (1000, 'only here')")
    _copy(source, target)
    assert by_rows == [TABLE]
    found = _read(target)
    assert found[:-1] == _read(source)
    assert found[-1][:2] == (1000, "only here")  # upsert leaves the target's other rows


def test_an_interrupted_copy_resumes_after_its_last_committed_range(
    ends: tuple[sa.Engine, sa.Engine], by_rows: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(text_copy, "COMMIT_SECONDS", 0.0)  # every range committed
    source, target = ends
    (selection,) = select_tables(source, None, "none")
    ensure_target(target, selection, inspect_target(target, selection, schema_changes="evolve"))
    cancel = threading.Event()
    checkpoints: list[dict[str, Any]] = []

    def save(checkpoint: dict[str, Any]) -> None:
        checkpoints.append(checkpoint)
        if len(checkpoints) == 3:
            cancel.set()

    options: dict[str, Any] = {"mode": "upsert", "batch_size": 7, "on_checkpoint": save}
    with pytest.raises(Interrupted):
        copy_table(source, target, selection, cancel=cancel, **options)
    with target.connect() as conn:
        count = conn.exec_driver_sql(f"SELECT count(*) FROM {_quoted(conn)}").scalar()
    assert count == 21
    result = copy_table(source, target, selection, resume=checkpoints[-1], **options)
    assert (result.rows_copied, result.rows_resumed) == (40, 21)
    assert [c["rows"] for c in checkpoints] == [7, 14, 21, 28, 35, 40]
    assert by_rows == []
    assert _read(target) == _read(source)


@pytest.mark.parametrize(("stop_after", "commits"), [(None, [7, 33]), (2, [7, 7])])
def test_ranges_are_committed_together_by_time_and_at_once_when_asked_to_stop(
    ends: tuple[sa.Engine, sa.Engine],
    monkeypatch: pytest.MonkeyPatch,
    stop_after: int | None,
    commits: list[int],
) -> None:
    # The first range is committed at once, the next ones together once `COMMIT_SECONDS`
    # have passed (never, here), each commit checkpointed; a copy asked to stop (here as its
    # second range loads) commits what it loaded and stops there.
    monkeypatch.setattr(text_copy, "COMMIT_SECONDS", 3600.0)
    source, target = ends
    (selection,) = select_tables(source, None, "none")
    ensure_target(target, selection, inspect_target(target, selection, schema_changes="evolve"))
    cancel = threading.Event()
    checkpoints: list[int] = []
    loads: list[int] = []
    loader = MySQLEngine.bulk_text_loader

    def counted(engine: MySQLEngine, conn: sa.Connection) -> Any:
        load = loader(engine, conn)
        assert load is not None

        def loading(*args: Any) -> int:
            loads.append(load(*args))
            if len(loads) == stop_after:
                cancel.set()
            return loads[-1]

        return loading

    monkeypatch.setattr(MySQLEngine, "bulk_text_loader", counted)

    def save(checkpoint: dict[str, Any]) -> None:
        checkpoints.append(checkpoint["rows"] - sum(checkpoints))

    options: dict[str, Any] = {"mode": "upsert", "batch_size": 7, "on_checkpoint": save}
    if stop_after is None:
        copy_table(source, target, selection, cancel=cancel, **options)
    else:
        with pytest.raises(Interrupted):
            copy_table(source, target, selection, cancel=cancel, **options)
    assert checkpoints == commits
    with target.connect() as conn:
        count = conn.exec_driver_sql(f"SELECT count(*) FROM {_quoted(conn)}").scalar()
    assert count == sum(commits)


def test_a_server_refusing_local_files_is_copied_by_rows_and_the_plan_says_why(
    ends: tuple[sa.Engine, sa.Engine], by_rows: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = ends
    assert text_copy_note(source, target) is None
    monkeypatch.setattr(MySQLEngine, "bulk_text_refusal", lambda self, conn: "local_infile off")
    assert text_copy_note(source, target) == (
        "rows are copied one batch of values at a time, not as bulk text: local_infile off"
    )
    _copy(source, target)
    assert by_rows == [TABLE]
    assert _read(target) == _read(source)


def test_a_table_that_references_itself_goes_by_rows_parents_first(
    postgres_db: ServerDatabase, mariadb_db: ServerDatabase, by_rows: list[str]
) -> None:
    source, target = _engine(postgres_db), _engine(mariadb_db)
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE emp (id bigint PRIMARY KEY, boss bigint REFERENCES emp)")
        # Bosses have larger keys than their staff: key order would break the reference.
        conn.exec_driver_sql(
            "INSERT INTO emp SELECT n, NULLIF(n + 1, 11) FROM generate_series(10, 1, -1) n"
        )
    _copy(source, target, batch_size=3)
    assert by_rows == ["emp"]
    with source.connect() as conn, target.connect() as other:
        query = "SELECT id, boss FROM emp ORDER BY id"
        assert other.exec_driver_sql(query).all() == conn.exec_driver_sql(query).all()


def test_a_filtered_copy_as_text_takes_exactly_the_rows_its_filter_names(
    ends: tuple[sa.Engine, sa.Engine], by_rows: list[str]
) -> None:
    source, target = ends
    where = {"code": {"like": "%e%"}, "id": {"in": list(range(-5, 35, 3))}}
    mngr = dsdb.ConnectionManager(
        {"src": {"url": _url(source)}, "dst": {"url": _url(target)}}, user="text"
    )
    try:
        mngr.migrate("src", "dst", tables={TABLE: {"where": where}}, batch_size=2)
    finally:
        mngr.close()
    assert by_rows == []
    wanted = [
        row
        for row in _read(source)
        if row[0] in where["id"]["in"] and row[2] is not None and "e" in row[2]
    ]
    assert len(wanted) >= 3
    assert _read(target) == wanted


def _url(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _quoted(conn: sa.Connection) -> str:
    """The table's quoted name for `exec_driver_sql` (`%` doubled: the drivers interpolate)."""
    return conn.dialect.identifier_preparer.quote(TABLE)
