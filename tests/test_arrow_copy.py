"""The column path from SQLite into PostgreSQL (`migrate/arrow_copy.py`): its digest is the
row path's bit for bit, it refuses what it cannot copy exactly, and a table it stops in
midway lands whole, exact and verified through the row path."""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import adbc_driver_manager
import adbc_driver_sqlite
import polars as pl
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsdb_plan as dsdb
from dsdb_plan.dbschema import ColumnSchema, TableSchema, reflect_tables
from dsdb_plan.engines import engine_for
from dsdb_plan.migrate import arrow_copy, sqlite_arrow
from dsdb_plan.migrate.digest import MODULUS, SubsetDigest
from dsdb_plan.migrate.subset import TableSelection
from tests.servers import ServerDatabase

DDL = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, f REAL, amount NUMERIC(12, 2), "
    "ok BOOLEAN, day DATE, ts TIMESTAMP, tz TIMESTAMP WITH TIME ZONE, data BLOB)"
)
COLUMNS = ("id", "name", "f", "amount", "ok", "day", "ts", "tz", "data")
#: The PostgreSQL types dsdb creates for them.
TARGET_TYPES = ("int8", "text", "float8", "numeric", "bool", "date", "timestamp", "timestamptz")
TARGET_TYPES += ("bytea",)


def _timestamps() -> st.SearchStrategy[str]:
    """Timestamps in the layouts SQLite databases hold and the column path takes."""
    return st.builds(
        lambda moment, sep, spec, zone: moment.isoformat(sep=sep, timespec=spec) + zone,
        st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
        st.sampled_from([" ", "T"]),
        st.sampled_from(["auto", "seconds", "milliseconds", "microseconds"]),
        st.sampled_from(["", "+00:00", "Z"]),
    )


_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_FLOATS = st.floats(allow_nan=False)  # SQLite stores NaN as NULL


def _arrow_decimal(value: float) -> bool:
    """Whether a batch of such values fits Arrow's decimal (38 digits) whatever the others:
    at most 16 digits before the point (under 2**53) and 20 after (from 0.0001 on)."""
    return value == 0 or abs(value) >= 1e-4


_ROW = st.tuples(
    st.none() | _TEXT | st.sampled_from(["\\", "\x1f", "\\N", "a\\\x1fb", ""]),
    st.none() | _FLOATS | st.sampled_from([0.1 + 0.2, -0.0, 1e16, 1e-7, 5e-324, 1e300]),
    st.none()
    | st.integers(-(2**53), 2**53)
    | st.floats(-(2.0**53), 2.0**53).filter(_arrow_decimal),
    st.none() | st.sampled_from([0, 1]),
    st.none() | st.dates().map(dt.date.isoformat),
    st.none() | _timestamps(),
    st.none() | _timestamps(),
    st.none() | st.binary(max_size=8),
)


def _source(path: Path, rows: Sequence[Sequence[Any]]) -> TableSchema:
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE IF EXISTS t")
        db.execute(DDL)
        db.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(index, *row) for index, row in enumerate(rows)],
        )
    db.close()
    with sa.create_engine(f"sqlite:///{path}").connect() as conn:
        return reflect_tables(conn, ["t"])[0]


def _column_batches(path: Path, schema: TableSchema, size: int) -> Iterator[arrow_copy.Batch]:
    selection = TableSelection("t", "t", sa.Table("t", sa.MetaData()), schema, ("id",), None, "")
    database = adbc_driver_sqlite.connect(str(path))
    try:
        yield from arrow_copy._prepared(database, selection, schema.columns, TARGET_TYPES, size)
    finally:
        database.close()


def _row_digest(path: Path, schema: TableSchema) -> tuple[int, str]:
    """The digest the row path takes of the rows sqlite3 reads."""
    digest = SubsetDigest(schema, COLUMNS)
    with sqlite3.connect(path) as db:
        digest.add(db.execute(f"SELECT {', '.join(COLUMNS)} FROM t ORDER BY id").fetchall())
    db.close()
    result = digest.result()
    return result.rows, result.checksum


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(_ROW, max_size=30), size=st.integers(1, 8))
def test_the_column_digest_is_the_row_digest(tmp_path_factory: Any, rows: Any, size: int) -> None:
    path = tmp_path_factory.mktemp("digest") / "source.db"
    schema = _source(path, rows)
    batches = list(_column_batches(path, schema, size))
    total = sum(batch.hash_sum for batch in batches) % MODULUS
    count = sum(batch.rows for batch in batches)
    assert _row_digest(path, schema) == (count, f"portable3:{total:016x}")
    if rows:
        assert batches[-1].last_key == (len(rows) - 1,)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("name", b"\xff"),  # a blob in a text column: the driver refuses the class
        ("ok", 2),  # a boolean neither 0 nor 1
        ("day", "2024-02-30"),  # no such day
        ("day", "2024-2-3"),  # a layout Python reads otherwise
        ("tz", "2024-01-01 10:00:00+05:30"),  # another zone: converted by the row path
        ("ts", "2024-01-01 24:00:00"),
        ("amount", 2**60),  # an integer no double holds
        ("amount", 5e-324),  # more digits than Arrow's decimal holds: the row path writes it
        ("day", "0000-01-01"),  # no year 0 in Python or PostgreSQL's text input
        ("ts", "0000-12-31 10:00:00"),
        ("f", "abc"),  # text in a REAL column
        ("amount", "1.50 EUR"),  # text in a NUMERIC column
    ],
)
def test_a_batch_it_cannot_copy_exactly_stops_it(tmp_path: Path, column: str, value: Any) -> None:
    rows = [(f"n{i}", 1.5, 2.25, 1, "2024-01-02", None, None, b"x") for i in range(6)]
    path = tmp_path / "source.db"
    schema = _source(path, rows)
    with sqlite3.connect(path) as db:
        db.execute(f"UPDATE t SET {column} = ? WHERE id = 4", (value,))
    db.close()
    copied = []
    with pytest.raises(sqlite_arrow.Unfit):
        for batch in _column_batches(path, schema, 2):
            copied.append(batch)
    assert [batch.last_key for batch in copied] == [(1,), (3,)]


SPECIAL_FLOATS = (math.inf, -math.inf, -0.0, 0.1 + 0.2, 1e300, 5e-324, 1e-7, 1e16)


@pytest.mark.postgres
def test_a_table_it_stops_in_lands_exactly_and_verified(
    tmp_path: Path, postgres_db: ServerDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres_db.reset()
    rows = [
        (
            f'name {i} \\ \x1f, "quoted"\r\n\\.',
            SPECIAL_FLOATS[i % len(SPECIAL_FLOATS)] if i % 4 == 0 else (i + 0.1) / 3,
            i * 1.25 if i % 2 else i,
            i % 2,
            f"2024-01-{1 + i % 28:02d}",
            f"2024-03-04 05:06:{i % 60:02d}.{i:06d}",
            f"2024-03-04T05:06:07.5{'Z' if i % 3 else '+00:00'}",
            bytes([i % 256]) * 3,
        )
        for i in range(60)
    ]
    # Row 45 holds a timestamp in another zone, which only the row path converts.
    rows[45] = (*rows[45][:6], "2024-03-04 10:36:07.5+05:30", rows[45][7])
    rows[7] = (None,) * 8
    path = tmp_path / "source.db"
    _source(path, rows)

    batches = _prepared_batches(monkeypatch)
    first, again = _migrated(path, postgres_db, runs=2, batch_size=10)
    assert batches == [10, 10, 10, 10]  # rows 0-39 in whole columns, the rest row by row
    assert [(o.table, o.rows_copied) for o in first] == [("t", 60)]
    assert again[0].now.rows == 0 and again[0].subset == first[0].subset

    with postgres_db.engine().connect() as conn:
        found = conn.execute(sa.text(f"SELECT {', '.join(COLUMNS)} FROM t ORDER BY id")).all()
    assert [tuple(row) for row in found] == [_landed(i, row) for i, row in enumerate(rows)]


@pytest.mark.postgres
@pytest.mark.parametrize(("seconds", "commits"), [(0.0, [10, 10, 10, 10]), (3600.0, [10, 30])])
def test_batches_are_committed_together_by_time_and_the_row_path_goes_on_after_them(
    tmp_path: Path,
    postgres_db: ServerDatabase,
    monkeypatch: pytest.MonkeyPatch,
    seconds: float,
    commits: list[int],
) -> None:
    # The first batch is committed at once, the next ones together once `COMMIT_SECONDS`
    # have passed, each commit checkpointed; at a batch it cannot copy, the batches before
    # it are committed and the row path goes on after the last of them.
    postgres_db.reset()
    rows = [(f"n{i}", i / 3, i, 1, "2024-01-02", None, None, b"x") for i in range(60)]
    rows[45] = (*rows[45][:6], "2024-03-04 10:36:07.5+05:30", b"x")  # row path only
    path = tmp_path / "source.db"
    _source(path, rows)
    committed: list[int] = []
    real = arrow_copy._commit

    def counted(connection: Any, pending: arrow_copy.Committed, on_commit: Any) -> None:
        real(connection, pending, on_commit)
        committed.extend([pending.rows] if pending.rows else [])

    monkeypatch.setattr(arrow_copy, "_commit", counted)
    monkeypatch.setattr(arrow_copy, "COMMIT_SECONDS", seconds)
    first, again = _migrated(path, postgres_db, runs=2, batch_size=10)
    assert committed == commits
    assert first[0].rows_copied == 60 and again[0].now.rows == 0
    with postgres_db.engine().connect() as conn:
        found = conn.execute(sa.text(f"SELECT {', '.join(COLUMNS)} FROM t ORDER BY id")).all()
    assert [tuple(row) for row in found] == [_landed(i, row) for i, row in enumerate(rows)]


@pytest.mark.postgres
def test_each_target_type_takes_the_values_as_they_are(
    tmp_path: Path, postgres_db: ServerDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Binary COPY takes each value in its column's own format: 2-, 4- and 8-byte integers,
    # bounded text, decimals of any scale within a batch (the column's scale pads them), and
    # columns of NULLs only.
    postgres_db.reset()
    path = tmp_path / "source.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE w (id INTEGER PRIMARY KEY, s SMALLINT, i INTEGER, v VARCHAR(5), "
            "d NUMERIC, e NUMERIC(10, 3), n INTEGER, nd NUMERIC(8, 2), nt TIMESTAMP)"
        )
        db.executemany(
            "INSERT INTO w (id, s, i, v, d, e) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (1, -32768, -(2**31), "héllo", 1e-30, 1.5),
                (2, 32767, 2**31 - 1, "", -12345678.125, -2.125),
                (3, None, 0, None, 100, 7),
            ],
        )
    db.close()
    prepared = _prepared_batches(monkeypatch)
    ((outcome,),) = _migrated(path, postgres_db)
    assert prepared == [3] and outcome.rows_copied == 3
    with postgres_db.engine().connect() as conn:
        found = conn.execute(sa.text("SELECT * FROM w ORDER BY id")).all()
        types = conn.execute(
            sa.text(
                "SELECT column_name, udt_name FROM information_schema.columns "
                "WHERE table_name = 'w' ORDER BY ordinal_position"
            )
        ).all()
    assert [kind for _, kind in types][:3] == ["int8", "int2", "int8"]
    from decimal import Decimal

    assert [tuple(row) for row in found] == [
        (1, -32768, -(2**31), "héllo", Decimal("1E-30"), Decimal("1.500"), None, None, None),
        (2, 32767, 2**31 - 1, "", Decimal("-12345678.125"), Decimal("-2.125"), None, None, None),
        (3, None, 0, None, Decimal("100"), Decimal("7.000"), None, None, None),
    ]


@pytest.mark.postgres
@pytest.mark.parametrize("by_columns", [True, False])
def test_a_numeric_without_scale_lands_each_value_as_the_row_path_writes_it(
    tmp_path: Path, postgres_db: ServerDatabase, monkeypatch: pytest.MonkeyPatch, by_columns: bool
) -> None:
    # SQLite keeps 7 as an integer beside 1.5 in a NUMERIC column; PostgreSQL's numeric
    # without a scale keeps each value's as written: 7 must not land as 7.0. The column path
    # gives each batch one Arrow scale (1 here), and the ADBC driver writes each value with
    # its trailing zeros dropped, as the row path writes it; the digest cannot tell (a scale
    # is not data to it: `digest.py`), so this test does.
    postgres_db.reset()
    path = tmp_path / "source.db"
    values = [7, 1.5, -2.25, 100, None, 0.125, 3]
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE d (id INTEGER PRIMARY KEY, v NUMERIC)")
        db.executemany("INSERT INTO d VALUES (?, ?)", enumerate(values))
    db.close()
    prepared = _prepared_batches(monkeypatch)
    if not by_columns:
        monkeypatch.setattr(arrow_copy, "copy_columns", lambda *args: None)
    first, again = _migrated(path, postgres_db, runs=2, batch_size=2)
    assert first[0].rows_copied == len(values) and again[0].now.rows == 0
    with postgres_db.engine().connect() as conn:
        landed = conn.execute(sa.text("SELECT v::text FROM d ORDER BY id")).scalars().all()
    assert landed == ["7", "1.5", "-2.25", "100", None, "0.125", "3"]
    assert prepared == ([2, 2, 2, 1] if by_columns else [])


@pytest.mark.postgres
def test_a_target_its_driver_cannot_reach_is_copied_row_by_row(
    tmp_path: Path, postgres_db: ServerDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ADBC driver connects with libpq's options only: a URL option that only psycopg
    # knows leaves the copy to the row path, which lands the same rows.
    postgres_db.reset()
    path = tmp_path / "source.db"
    rows = [(f"n{i}", i / 3, i, 1, "2024-01-02", None, None, b"x") for i in range(5)]
    _source(path, rows)
    engine = type(engine_for(postgres_db.engine().dialect))

    def unreachable(self: Any, conn: sa.Connection) -> Any:
        raise adbc_driver_manager.OperationalError(
            "invalid URI query parameter", status_code=adbc_driver_manager.AdbcStatusCode.IO
        )

    monkeypatch.setattr(engine, "arrow_database", unreachable)
    monkeypatch.setattr(arrow_copy, "_prepared", _never)
    ((outcome,),) = _migrated(path, postgres_db)
    assert outcome.rows_copied == 5
    with postgres_db.engine().connect() as conn:
        found = conn.execute(sa.text(f"SELECT {', '.join(COLUMNS)} FROM t ORDER BY id")).all()
    assert [tuple(row) for row in found] == [_landed(i, row) for i, row in enumerate(rows)]


def _prepared_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of each batch the column path prepares, filled in as it prepares them."""
    sizes: list[int] = []
    real = arrow_copy.prepare

    def counted(*args: Any) -> arrow_copy.Batch:
        batch = real(*args)
        sizes.append(batch.rows)
        return batch

    monkeypatch.setattr(arrow_copy, "prepare", counted)
    return sizes


def _migrated(path: Path, target: ServerDatabase, runs: int = 1, **options: Any) -> list[Any]:
    """The outcomes of `runs` migrations of the SQLite file `path` into `target`."""
    mngr = dsdb.ConnectionManager(
        {"src": {"url": f"sqlite:///{path}"}, "dst": {"url": target.url_string}}, user="t"
    )
    try:
        return [mngr.migrate("src", "dst", **options) for _ in range(runs)]
    finally:
        mngr.close()


def _never(*args: Any) -> Iterator[arrow_copy.Batch]:
    raise AssertionError("the column path ran")


def test_integers_take_the_width_of_their_target_column() -> None:
    # A SMALLINT source column may land in an existing int4 column: binary COPY needs the
    # column's own width, and a value too wide for it goes to the row path.
    schemas = [ColumnSchema("a", "smallint"), ColumnSchema("b", "smallint")]
    frame = pl.DataFrame({"a": [1, -2], "b": [3, None]})
    batch = arrow_copy.prepare(frame, schemas, [0], ["int2", "int4"])
    assert batch.columns.dtypes == [pl.Int16, pl.Int32]
    with pytest.raises(sqlite_arrow.Unfit):
        arrow_copy.prepare(pl.DataFrame({"a": [70_000], "b": [1]}), schemas, [0], ["int2", "int4"])


def _landed(key: int, row: Sequence[Any]) -> tuple[Any, ...]:
    """What PostgreSQL holds for a source row, by Python's reading of each value."""
    from decimal import Decimal

    name, f, amount, ok, day, ts, tz, data = row
    return (
        key,
        name,
        f,
        None if amount is None else Decimal(repr(amount)).quantize(Decimal("0.01")),
        None if ok is None else bool(ok),
        None if day is None else dt.date.fromisoformat(day),
        None if ts is None else dt.datetime.fromisoformat(ts),
        None if tz is None else dt.datetime.fromisoformat(tz).astimezone(dt.UTC),
        data,
    )


def test_every_batch_reads_the_snapshot_the_first_one_read(tmp_path: Path) -> None:
    # One read transaction spans the copy: rows written meanwhile are for the next apply,
    # never half in this one (here a row added past the first batch).
    path = tmp_path / "source.db"
    schema = _source(path, [(f"n{i}", 0.5, 1, 1, None, None, None, None) for i in range(6)])
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode = WAL")
    db.close()
    batches = _column_batches(path, schema, 2)
    first = next(batches)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO t (id, name) VALUES (100, 'late')")
    db.close()
    rest = list(batches)
    assert [first.last_key, *(batch.last_key for batch in rest)] == [(1,), (3,), (5,)]
