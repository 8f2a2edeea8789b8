"""A SQLite backup read as whole Arrow columns (`archive/column_reader.py`): the same values,
in the same Parquet kinds, as the rows read one by one; any table it cannot read exactly is
read row by row."""

from __future__ import annotations

import math
import random
import sqlite3
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from dsdb_plan.archive import column_reader, iter_rows, read_backup_info, writer
from dsdb_plan.archive.columnar import _number_texts, _tagged
from dsdb_plan.archive.writer import write_backup
from dsdb_plan.dbschema import ColumnSchema
from dsdb_plan.migrate.sqlite_arrow import STORED_AS

#: Awkward values of each storage class, in the columns whose declared type takes them.
_DDL = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT, amount NUMERIC(12, 2), "
    "ratio REAL, flag BOOLEAN, payload BLOB, day DATE, empty TEXT)"
)
_ROWS: list[tuple[Any, ...]] = [
    (1, "Grüße 😀 \x00 nul", 1.5, 0.1 + 0.2, 1, b"\x00\xff", "2024-02-29", None),
    (2, "", 7, -0.0, 0, b"", "1970-01-01", None),
    (3, None, None, None, None, None, None, None),
    (4, "x" * 5000, 1e-7, 1e308, 1, b"\x01" * 5000, "2024-02-30", None),
    (5, "tab\tand\nnewline", 2**62, float("inf"), None, b"z", None, None),
    (6, "last", 12345678901234.5, 5e-324, 0, b"\x00", "0001-01-01", None),
    (7, "more", -(2**63), -1.5, 1, b"y", "9999-12-31", None),
]


_NAMES = ["id", "label", "amount", "ratio", "flag", "payload", "day", "empty"]


def _stored(path: Path) -> list[list[Any]]:
    """Table t's rows as Python's sqlite3 reads them."""
    with sqlite3.connect(path) as conn:
        return [list(row) for row in conn.execute("SELECT * FROM t ORDER BY id")]


def _source(path: Path, rows: Sequence[tuple[Any, ...]] = _ROWS, ddl: str = _DDL) -> sa.Engine:
    with sqlite3.connect(path) as conn:
        conn.execute(ddl)
        conn.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(rows[0]))})", rows)
    return sa.create_engine(f"sqlite:///{path}")


def _backup(engine: sa.Engine, folder: Path, *, by_rows: bool = False) -> list[list[Any]]:
    """Back up table t and read its rows back; `by_rows` reads it row by row."""
    with pytest.MonkeyPatch.context() as patch:
        if by_rows:
            patch.setattr(writer, "_column_reader", lambda *args: nullcontext())
        info = write_backup(engine, folder, "b")
    return list(iter_rows(read_backup_info(info.path), "t"))


def _columns_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> Iterator[Any]:
        raise AssertionError("the table was read row by row")

    monkeypatch.setattr(writer, "_batches", refuse)


def _same(left: Sequence[Sequence[Any]], right: Sequence[Sequence[Any]]) -> None:
    """Equal rows, value by value, class and all (NaN aside, -0.0 apart from 0.0)."""
    assert len(left) == len(right)
    for a_row, b_row in zip(left, right, strict=True):
        for a, b in zip(a_row, b_row, strict=True):
            assert type(a) is type(b), (a, b)
            if isinstance(a, float):
                assert struct.pack("<d", a) == struct.pack("<d", b)
            else:
                assert a == b


def _data_file(folder: Path) -> Path:
    return next(folder.glob("b/*-t.parquet"))


@pytest.mark.parametrize("batch_rows", [2, 5000])
def test_columns_back_up_the_values_the_rows_do_in_the_same_kinds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_rows: int
) -> None:
    engine = _source(tmp_path / "data.db")
    by_rows = _backup(engine, tmp_path / "rows", by_rows=True)
    monkeypatch.setattr(writer, "COLUMN_BATCH_ROWS", batch_rows)
    _columns_only(monkeypatch)
    by_columns = _backup(engine, tmp_path / "columns")
    _same(by_columns, by_rows)
    _same(by_rows, _stored(tmp_path / "data.db"))
    rows_schema = pq.read_schema(_data_file(tmp_path / "rows"))
    assert pq.read_schema(_data_file(tmp_path / "columns")).equals(rows_schema, check_metadata=True)
    assert rows_schema.field("amount").metadata[b"dsdb.kind"] == b"tagged"  # ints and reals


def test_the_same_rows_give_the_same_file_either_way(tmp_path: Path) -> None:
    engine = _source(tmp_path / "data.db")
    _backup(engine, tmp_path / "rows", by_rows=True)
    _backup(engine, tmp_path / "columns")
    rows_file, columns_file = (_data_file(tmp_path / name) for name in ("rows", "columns"))
    assert rows_file.read_bytes() == columns_file.read_bytes()


def test_a_decimal_column_meeting_integers_in_a_later_batch_is_rewritten_as_tagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [(key, f"n{key}", key + 0.5, None, None, None, None, None) for key in range(1, 7)]
    rows += [(7, "n7", 7, None, None, None, None, None)]  # an integer, after six reals
    engine = _source(tmp_path / "data.db", rows)
    monkeypatch.setattr(writer, "COLUMN_BATCH_ROWS", 2)
    _columns_only(monkeypatch)
    back = _backup(engine, tmp_path / "columns")
    _same(back, _stored(tmp_path / "data.db"))
    assert pq.read_schema(_data_file(tmp_path / "columns")).field("amount").type == pa.string()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("day", 42),  # a number in a date (text) column
        ("label", b"bytes"),  # a blob in a text column
        ("payload", "text"),  # text in a blob column
        ("amount", "abc"),  # text in a decimal column
        ("flag", 0.5),  # a real in an integer column
        ("ratio", "text"),  # text in a real column
    ],
)
def test_mixed_storage_classes_survive_a_backup_read_row_by_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, column: str, value: Any
) -> None:
    engine = _source(tmp_path / "data.db")
    with sqlite3.connect(tmp_path / "data.db") as conn:
        conn.execute(f"UPDATE t SET {column} = ? WHERE id = 6", (value,))
    expected = _stored(tmp_path / "data.db")
    monkeypatch.setattr(writer, "COLUMN_BATCH_ROWS", 2)
    back = _backup(engine, tmp_path / "columns")
    _same(back, expected)
    assert type(back[5][_NAMES.index(column)]) is type(value)


def test_a_misfit_counted_only_after_the_last_batch_still_sends_the_table_row_by_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count runs beside the read: where it finishes last, the read still ends with
    `Unfit` and the file holds the rows read one by one, each of its own class."""
    engine = _source(tmp_path / "data.db")
    with sqlite3.connect(tmp_path / "data.db") as conn:
        # After a text in its batch, so the driver would read it as "42" without a word.
        conn.execute("UPDATE t SET day = 42 WHERE id = 2")
    expected = _stored(tmp_path / "data.db")
    last_read = threading.Event()
    real_columns, real_misfits = column_reader._columns, column_reader.ColumnReader._misfits

    def columns(schemas: Any, read: pa.Table) -> Any:
        found = real_columns(schemas, read)
        if 7 in read.column(0).to_pylist():
            last_read.set()
        return found

    def misfits(self: column_reader.ColumnReader, table: Any) -> int:
        assert last_read.wait(timeout=30)
        return real_misfits(self, table)

    monkeypatch.setattr(column_reader, "_columns", columns)
    monkeypatch.setattr(column_reader.ColumnReader, "_misfits", misfits)
    row_reads = []
    real_batches = writer._batches

    def batches(conn: sa.Connection, query: Any) -> Any:
        row_reads.append(query)
        return real_batches(conn, query)

    monkeypatch.setattr(writer, "_batches", batches)
    monkeypatch.setattr(writer, "COLUMN_BATCH_ROWS", 2)
    back = _backup(engine, tmp_path / "columns")
    assert last_read.is_set() and len(row_reads) == 1
    _same(back, expected)
    assert back[1][_NAMES.index("day")] == 42
    _backup(engine, tmp_path / "rows", by_rows=True)
    assert (
        _data_file(tmp_path / "columns").read_bytes() == _data_file(tmp_path / "rows").read_bytes()
    )


#: Declared SQLite types of each affinity (and collation) for the portable types counted.
_COUNTED_DECLARATIONS = [
    ("text", "TEXT"),
    ("text", "TEXT COLLATE NOCASE"),
    ("text", "TEXT COLLATE RTRIM"),
    ("varchar", "VARCHAR(10)"),
    ("date", "DATE"),  # NUMERIC affinity
    ("datetime", "TIMESTAMP WITH TIME ZONE"),
    ("json", "JSON"),
    ("binary", "BLOB"),
    ("binary", "BLOB COLLATE NOCASE"),
    ("decimal", "NUMERIC(12, 2)"),
    ("decimal", "DECIMAL"),
]
_EVERY_CLASS = [None, 0, -(2**63), 2**63 - 1, 0.0, -1e308, math.inf, "", " ", "0", "\x00"]
_EVERY_CLASS += ["2024-01-01", "abc", b"", b"\x00", b"abc", b"\xff" * 10]


@pytest.mark.parametrize(("kind", "declared"), _COUNTED_DECLARATIONS)
def test_the_misfit_count_picks_out_exactly_the_values_of_another_class(
    kind: str, declared: str
) -> None:
    """Each value of every storage class in a column of each affinity: the count's test
    is true exactly where `typeof` names a class the column's portable type does not take."""
    column = ColumnSchema(name="v", type=kind)
    takes = {"null", *STORED_AS[kind]}
    with sqlite3.connect(":memory:") as conn:
        conn.execute(f"CREATE TABLE t (id INTEGER PRIMARY KEY, v {declared})")
        conn.executemany("INSERT INTO t (v) VALUES (?)", [(value,) for value in _EVERY_CLASS])
        found = conn.execute(f"SELECT typeof(v), {column_reader._misfit(column)} FROM t").fetchall()
    assert {stored for stored, _ in found} >= {"null", "text", "blob"}
    assert [bool(misfit) for _, misfit in found] == [stored not in takes for stored, _ in found]


def test_text_that_is_not_utf8_is_refused_as_the_row_path_refuses_it(tmp_path: Path) -> None:
    engine = _source(tmp_path / "data.db")
    with sqlite3.connect(tmp_path / "data.db") as conn:
        conn.execute("UPDATE t SET label = CAST(x'ff00' AS TEXT) WHERE id = 2")
    with pytest.raises(sqlite3.OperationalError, match="decode"):
        _backup(engine, tmp_path / "columns")


def test_a_table_without_a_key_is_read_row_by_row(tmp_path: Path) -> None:
    engine = _source(tmp_path / "data.db", ddl=_DDL.replace(" PRIMARY KEY", ""))
    _same(_backup(engine, tmp_path / "columns"), _stored(tmp_path / "data.db"))


def test_a_file_written_to_since_the_backup_began_is_not_read_by_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _source(tmp_path / "data.db")
    monkeypatch.setattr(column_reader, "change_token", lambda engine: "after")
    with engine.connect() as conn:
        with column_reader.column_reader(conn, "after") as reader:
            assert reader is not None
        with column_reader.column_reader(conn, "before") as reader:
            assert reader is None


def test_number_texts_are_the_tagged_texts_of_the_row_path() -> None:
    rng = random.Random(7)
    doubles = [
        struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(20_000)
    ]
    doubles += [rng.uniform(-1e6, 1e6) for _ in range(20_000)]
    doubles += [rng.uniform(-1e16, 1e16) for _ in range(5_000)]
    doubles += [rng.uniform(-1e-3, 1e-3) for _ in range(5_000)]
    doubles += [0.0, -0.0, 1e-4, 9.999e-5, 1e16, 9999999999999998.0, math.inf, -math.inf, math.nan]
    doubles += [1e15, 999999999999999.9, 123456789012345.67, 1.0, -2.0, 1e14, 0.1, 5e-324]
    doubles += [None]
    assert _number_texts(pa.array(doubles, pa.float64())).to_pylist() == _tagged(doubles)
    integers = [0, -1, 2**63 - 1, -(2**63), None]
    assert _number_texts(pa.array(integers, pa.int64())).to_pylist() == _tagged(integers)


def test_an_apply_of_a_backup_in_columns_loads_no_polars(tmp_path: Path) -> None:
    """polars costs about 25 MB before the first row (issue 15, aim 7): `dsdb apply` of a
    first backup, its tables read whole, runs with pyarrow alone; nor does it load the
    restore's and the migration's loaders with psycopg, a tenth of its start-up (aim 4)."""
    with sqlite3.connect(tmp_path / "data.db") as conn:
        conn.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT, ratio REAL, payload BLOB, "
            "amount NUMERIC(12, 2))"
        )
        rows = [(k, f"n{k}", k / 3, bytes([k]), k * 1.25) for k in range(1, 200)]
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
    (tmp_path / "dsdb.yaml").write_text(
        "version: 1\n"
        "settings: {state: .dsdb/state.db, backup_root: backups/}\n"
        "connections: {local: {driver: sqlite, database: data.db}}\n"
        "backups: {nightly: {connection: local, keep: 1}}\n"
    )
    probe = (
        "import sys\n"
        "from dsdb_plan.archive import writer\n"
        "def refuse(*args):\n"
        "    raise AssertionError('the table was read row by row')\n"
        "writer._batches = refuse\n"
        "from dsdb_plan.cli import main\n"
        "code = main(['apply', '--auto-approve', 'dsdb.yaml'])\n"
        "unneeded = {'polars', 'psycopg', 'dsdb_plan.archive.restore', 'dsdb_plan.migrate.load'}\n"
        "print(code, sorted(unneeded & set(sys.modules)))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "0 []"
    assert len(list(tmp_path.glob("backups/nightly/*/*-t.parquet"))) == 1
