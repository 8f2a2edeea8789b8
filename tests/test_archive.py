"""Backups: exact round trips across dialects, integrity checks, refusal, resume, cleanup.

Restored rows are compared with the source row by row after normalising both sides to the
Python value each column's portable type means (`_normalise`). Normalisations that are
properties of the target database, not losses of dsdb:

- MariaDB has no zone-aware timestamp: aware values are stored as UTC (read back naive and
  compared as UTC), and it stores -0.0 as 0.0.
- SQLite's NUMERIC affinity keeps 15-17 significant digits, so a SQLite source's
  DECIMAL value is already a double; exact decimals are proven from PostgreSQL instead.
  SQLite's REAL columns store -0.0 as 0; the sign of zero is proven from PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import math
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from dsdb_plan.archive import (
    BackupInfo,
    iter_rows,
    list_backups,
    new_backup_id,
    read_backup_info,
    restore_backup,
    tables_with_data,
    verify_backup,
    write_backup,
)
from dsdb_plan.archive.datafile import DataFormat
from dsdb_plan.archive.format import (
    BLOCK_ROWS,
    DataFileScan,
    DataFileWriter,
    decode_row,
    encode_block,
    encode_value,
    read_blocks,
    scan_data_file,
)
from dsdb_plan.dbschema import ColumnSchema, TableSchema, reflect_tables
from dsdb_plan.errors import BackupError, DsdbError
from tests.servers import ServerDatabase

NOW = dt.datetime(2026, 11, 27, 5, 10, tzinfo=dt.UTC)
BIG_TEXT = "line of text with ü and 😀\n" * 40_000  # a little over 1 MB
HOSTILE_TABLE = 'order "items"; drop ☃ 日本'  # MySQL identifiers cannot hold emoji
HOSTILE_COLUMNS = ("from", "a b", 'quote"d', "semi;colon", "ünï", "back`tick", "per%cent")

AWKWARD_DDL = """
CREATE TABLE awkward (
    id INTEGER PRIMARY KEY,
    label TEXT,
    big_text TEXT,
    payload BLOB,
    amount DECIMAL(18, 4),
    ratio REAL,
    measure DOUBLE,
    day DATE,
    at_time TIME,
    happened DATETIME,
    happened_tz TIMESTAMP WITH TIME ZONE,
    flag BOOLEAN,
    doc JSON,
    counter BIGINT
)
"""
# Values as SQLite stores them (what SQLAlchemy, pandas and the sqlite3 module write).
AWKWARD_ROWS: list[tuple[Any, ...]] = [
    (
        1,
        "Grüße, 日本語, emoji 😀🎉, quote ' and \" and \\ and \t tab",
        BIG_TEXT,
        b"\x00\x01\x00\xff" * 64,
        "12345678901234.5678",
        0.1 + 0.2,
        1e308,
        "2024-02-29",
        "23:59:59.999999",
        "2024-01-01 10:00:37",
        "2024-06-01 12:30:00.123456+02:00",
        1,
        '{"a": [1, 2.5, null], "ü": "😀", "nested": {"t": true}}',
        2**62,
    ),
    (2, None, None, None, None, None, None, None, None, None, None, None, None, None),
    (
        3,
        "",
        "",
        b"",
        "-0.0001",
        -0.0,
        5e-324,
        "1970-01-01",
        "00:00:00",
        "1970-01-01 00:00:00.000001",
        "2024-12-31T23:59:59Z",
        0,
        '"just a JSON string"',
        -(2**63),
    ),
]


def _row_object(key: int) -> sa.Row[Any]:
    """A SQLAlchemy Row, as drivers other than SQLite hand them to the backup."""
    with sa.create_engine("sqlite://").connect() as conn:
        return conn.execute(sa.select(sa.literal(key), sa.literal("a row"))).one()


def _sqlite_engine(path: Path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{path}")


def _make_awkward(path: Path) -> sa.Engine:
    engine = _sqlite_engine(path)
    with engine.begin() as conn:
        conn.exec_driver_sql(AWKWARD_DDL)
        conn.exec_driver_sql("CREATE INDEX ix_awkward_day ON awkward (day, flag)")
        conn.exec_driver_sql("CREATE UNIQUE INDEX ux_awkward_label ON awkward (label)")
        conn.exec_driver_sql(
            "CREATE TABLE note (id INTEGER PRIMARY KEY, awkward_id INTEGER NOT NULL "
            "REFERENCES awkward (id), body TEXT)"
        )
        conn.exec_driver_sql(f"INSERT INTO awkward VALUES ({', '.join('?' * 14)})", AWKWARD_ROWS)
        conn.exec_driver_sql(
            "INSERT INTO note VALUES (?, ?, ?)", [(1, 1, "first"), (2, 1, None), (7, 3, "x")]
        )
    return engine


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> sa.Engine:
    """An empty target database of each kind (server ones skip without a server)."""
    if request.param == "sqlite":
        return _sqlite_engine(tmp_path / "target.db")
    server: ServerDatabase = request.getfixturevalue(f"{request.param}_db")
    return server.engine()


def _rows(engine: sa.Engine, table: str, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Raw driver values in key order (no SQLAlchemy type processing)."""
    clause = sa.table(table, *(sa.column(name) for name in columns))
    with engine.connect() as conn:
        return [
            tuple(row) for row in conn.execute(sa.select(clause).order_by(clause.c[columns[0]]))
        ]


def _normalise(value: Any, column: ColumnSchema, dialect: str) -> Any:
    """The Python value `value` means in `column`, whatever the database returned."""
    if value is None:
        return None
    kind = column.type
    if kind in ("smallint", "integer", "bigint"):
        return int(value)
    if kind == "boolean":
        return bool(value)
    if kind in ("float", "double"):
        number = float(value)
        if dialect in ("mysql", "mariadb") and number == 0:
            number = 0.0  # MariaDB stores -0.0 as 0.0
        return repr(number)  # the exact double, sign of zero included
    if kind == "decimal":
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if kind == "binary":
        return bytes(value)
    if kind == "date":
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)
    if kind == "time":
        if isinstance(value, dt.timedelta):
            return (dt.datetime.min + value).time()
        return value if isinstance(value, dt.time) else dt.time.fromisoformat(value)
    if kind == "datetime":
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
        if column.timezone:  # naive in a zoned column means UTC (MariaDB stores UTC)
            moment = moment.astimezone(dt.UTC) if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        return moment
    if kind == "json":  # psycopg parses JSON itself; the others return its text
        return value if dialect == "postgresql" else json.loads(value)
    if kind == "uuid":
        return str(value)
    return value


def _normalised(engine: sa.Engine, table: TableSchema) -> list[tuple[Any, ...]]:
    dialect = engine.dialect.name
    return [
        tuple(_normalise(v, c, dialect) for v, c in zip(row, table.columns, strict=True))
        for row in _rows(engine, table.name, table.column_names)
    ]


def _structure(table: TableSchema) -> tuple[Any, ...]:
    """What must survive a restore: keys, foreign keys and indexes (names may differ)."""
    return (
        table.primary_key,
        sorted((fk.columns, fk.ref_table, fk.ref_columns) for fk in table.foreign_keys),
        sorted((ix.columns, ix.unique) for ix in table.indexes if ix.columns != ("awkward_id",)),
    )


# -- the format ----------------------------------------------------------------------------


def _v1_line(row: Sequence[Any]) -> str:
    """A row as format version 1 wrote it: a JSON array of the tagged values."""
    tagged = [encode_value(value) for value in row]
    return json.dumps(tagged, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"


def _v1_file(path: Path, rows: Sequence[Sequence[Any]]) -> Path:
    path.write_bytes(gzip.compress("".join(map(_v1_line, rows)).encode(), mtime=0))
    return path


def _round_trip(path: Path, rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """`rows` written to a data file at `path` and read back."""
    path.unlink(missing_ok=True)
    writer = DataFileWriter(path)
    writer.write_rows(rows)
    writer.close()
    return [row for block in read_blocks(path) for row in block.row_lists()]


def test_every_value_type_round_trips(tmp_path: Path) -> None:
    row = [
        None,
        True,
        False,
        2**80,
        -(2**63),
        "😀\n\x00",
        0.1 + 0.2,
        1e308,
        -0.0,
        5e-324,
        math.inf,
        -math.inf,
        b"\x00\xff",
        Decimal("12345678901234.5678"),
        Decimal("-1E+30"),
        dt.date(2024, 2, 29),
        dt.time(23, 59, 59, 999999),
        dt.time(1, 2, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
        dt.datetime(2024, 1, 1, 10, 0, 37),
        dt.datetime(2024, 6, 1, 12, 30, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.timedelta(days=-1, seconds=5, microseconds=7),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        {"$bytes": "not a tag, a JSON object"},
        [1, "two", None],
    ]
    # One column holding every type (tagged value by value), and a column per type, each
    # value above a null (one tag over the column where the type has one).
    for rows in ([[value] for value in row], [row, [None] * len(row)]):
        back = _round_trip(tmp_path / "t.jsonl.gz", rows)
        assert [[repr(v) for v in r] for r in back] == [[repr(v) for v in r] for r in rows]
    back_v1 = decode_row(_v1_line(row))
    assert [repr(v) for v in back_v1] == [repr(v) for v in row]


def test_version_1_rows_without_tagged_values_decode_as_parsed() -> None:
    """Lines without an object are returned as parsed; text that looks like a tag stays text."""
    for row in (
        [1, 'a {"$bytes": "x"} b', None, True, 2.5, "é\u2028"],
        ['{"', "x", 3],
        [1, b"\x00", '{"$str": 1}'],
    ):
        assert [repr(v) for v in decode_row(_v1_line(row))] == [repr(v) for v in row]


class _Code(int):
    pass


class _Label(str):
    __slots__ = ()


_TYPED_ROW = (
    1,
    "Grüße\n\u2028😀",
    2.5,
    None,
    True,
    b"\x00\xff",
    Decimal("12.50"),
    dt.date(2024, 2, 29),
    dt.datetime(2024, 6, 1, 12, 30, tzinfo=dt.UTC),
    dt.time(23, 59, 59, 999999),
    dt.timedelta(days=-1, seconds=5),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
)


@pytest.mark.parametrize(
    "extra",
    [
        [],
        [(2, -0.0, 1e308, 5e-324, 2**80)],
        [(3, math.nan), (4, -math.inf)],  # JSON has no NaN: tagged
        [(5, _Code(7), _Label("x"))],  # subclasses
        [(6, {"$bytes": "x"}, [1, 2], bytearray(b"a"), memoryview(b"b"))],  # containers
        [[7, "a list"], _row_object(8)],
    ],
    ids=["plain", "floats", "nan", "subclasses", "containers", "row-classes"],
)
def test_a_block_holds_each_column_tagged_value_by_value_or_as_one_tag(extra: list[Any]) -> None:
    """A block's columns are what `json.dumps` makes of their tagged values, a column of one
    class with a tag written as that tag over the payloads; rows are counted."""
    for row in [_TYPED_ROW, *extra]:
        rows = [row, [None] * len(row), row]
        block = json.loads(encode_block(rows))
        assert block["rows"] == 3 and len(block["columns"]) == len(row)
        for values, column in zip(zip(*rows, strict=True), block["columns"], strict=True):
            if isinstance(column, dict):
                ((tag, payloads),) = column.items()
                column = [None if payload is None else {tag: payload} for payload in payloads]
            tagged = [encode_value(value) for value in values]
            assert json.dumps(column) == json.dumps(tagged)
    assert json.loads(encode_block([])) == {"rows": 0, "columns": []}


def test_data_file_reads_back_across_blocks(tmp_path: Path) -> None:
    """Rows spanning several blocks, tagged values, and a JSON value that looks like a tag
    (whose block json decodes) read back exactly; the file is the encoded blocks."""
    rows = [
        (i, "x" * 30, b"\x01" * (i % 7), math.nan if i % 97 == 0 else i / 3) for i in range(2900)
    ]
    rows[450] = (450, {"$str": "JSON that looks like a tag"}, None, None)
    path = tmp_path / "table.jsonl.gz"
    writer = DataFileWriter(path)
    batches = [rows[:250], rows[250:450], rows[450:2900]]
    for batch in batches:
        writer.write_rows(batch)
    size, sha256 = writer.close()
    data = path.read_bytes()
    assert (size, sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert scan_data_file(path) == DataFileScan(size, sha256, rows=2900, damage=None)
    lines = [b[s : s + BLOCK_ROWS] for b in batches for s in range(0, len(b), BLOCK_ROWS)]
    assert gzip.decompress(path.read_bytes()) == b"".join(map(encode_block, lines))

    blocks = [block.row_lists() for block in read_blocks(path)]
    assert len(blocks) == len(lines) == 5
    back = [row for block in blocks for row in block]
    assert [[repr(v) for v in row] for row in back] == [[repr(v) for v in row] for row in rows]


@pytest.mark.parametrize("version", [1, 2])
def test_blocks_decode_every_value_exactly(tmp_path: Path, version: int) -> None:
    """Integers beyond 64 bits (which orjson would read as floats), huge floats, columns of
    one tag with and without nulls, of mixed tags, and JSON values that look like tags."""
    rows: list[Any] = [
        [1, 2**80, 1e19, b"\x00", None, Decimal("1.5"), "a"],
        [2, -(2**63) - 1, -1e300, b"\xff" * 20, b"", dt.date(2024, 2, 29), '{"$bytes": "x"}'],
        [3, 2**64 - 1, 2.5, b"", b"\x01", 7, None],
    ]
    for values in (rows, [[4, 5, 0.5, b"", None, {"$bytes": 1, "n": 2**70}, "b"]]):
        path = tmp_path / "t.jsonl.gz"
        if version == 1:
            back = [
                row
                for block in read_blocks(_v1_file(path, values), version=1)
                for row in block.row_lists()
            ]
        else:
            back = _round_trip(path, values)
        assert [[repr(v) for v in row] for row in back] == [
            [repr(v) for v in row] for row in values
        ]


def test_backup_ids_sort_by_time() -> None:
    first = new_backup_id(NOW)
    later = new_backup_id(NOW + dt.timedelta(microseconds=1))
    assert first.startswith("20261127T051000.000000Z-") and first < later
    assert new_backup_id(NOW) != first


# -- round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("data_format", ["parquet", "jsonl"])
def test_awkward_sqlite_backup_restores_exactly(
    tmp_path: Path, target: sa.Engine, data_format: DataFormat
) -> None:
    source = _make_awkward(tmp_path / "source.db")
    seen: list[tuple[str, int]] = []
    info = write_backup(
        source,
        tmp_path / "backups",
        new_backup_id(NOW),
        progress=lambda t, n: seen.append((t, n)),
        data_format=data_format,
    )
    assert info.format_version == {"parquet": 3, "jsonl": 2}[data_format]
    assert [t.name for t in info.tables] == ["awkward", "note"]  # parents first
    assert info.total_rows == 6 and ("awkward", 3) in seen and ("note", 3) in seen

    done: list[tuple[str, int]] = []
    result = restore_backup(info.path, target, on_table_done=lambda t, n: done.append((t, n)))
    assert result.tables == ("awkward", "note") and result.rows == 6
    assert done == [("awkward", 3), ("note", 3)]

    for table in info.tables:
        assert _normalised(target, table) == _normalised(source, table), table.name
    restored = {t.name: t for t in reflect_tables(target)}
    for table in info.tables:
        assert _structure(restored[table.name]) == _structure(table)

    # Spot checks against the intended values, so normalisation cannot hide a loss.
    first, _, third = _normalised(target, info.tables[0])
    assert first[1].endswith("😀🎉, quote ' and \" and \\ and \t tab") and first[2] == BIG_TEXT
    assert first[3] == b"\x00\x01\x00\xff" * 64 and third[3] == b""
    assert first[5] == "0.30000000000000004" and first[6] == "1e+308" and third[6] == "5e-324"
    assert third[5] == "0.0"  # SQLite itself kept no sign (see module doc)
    assert first[9] == dt.datetime(2024, 1, 1, 10, 0, 37)
    assert first[10] == dt.datetime(2024, 6, 1, 10, 30, 0, 123456, tzinfo=dt.UTC)
    assert first[8] == dt.time(23, 59, 59, 999999) and third[9].microsecond == 1
    assert first[11] is True and third[11] is False and third[12] == "just a JSON string"
    assert first[13] == 2**62 and third[13] == -(2**63)
    assert first[4] == Decimal("12345678901234.568")  # what SQLite itself kept (see module doc)


def test_a_standard_parquet_reader_reads_a_sqlite_backup_as_stored(tmp_path: Path) -> None:
    """What SQLite stores comes out of `pyarrow.parquet.read_table` as it is, typed: text
    stays text (its dates too), and a column whose rows hold several storage classes is
    JSON text per value."""
    source = _make_awkward(tmp_path / "source.db")
    with source.begin() as conn:
        conn.exec_driver_sql("UPDATE awkward SET counter = 'seven' WHERE id = 2")
    info = write_backup(source, tmp_path / "backups", new_backup_id(NOW))
    read = pq.read_table(info.path / info.file_for("awkward").name)
    columns = info.table("awkward").column_names
    assert read.column_names == list(columns)
    with sqlite3.connect(tmp_path / "source.db") as db:
        stored = db.execute(f"SELECT {', '.join(columns)} FROM awkward ORDER BY id").fetchall()
    counter = columns.index("counter")
    for got, row in zip(read.to_pylist(), stored, strict=True):
        assert [got[name] for name in columns[:counter]] == list(row[:counter])
        assert got["counter"] == json.dumps(row[counter])
    assert read.schema.field("id").type == pa.int64()
    assert read.schema.field("payload").type == pa.binary()
    assert read.schema.field("happened").type == pa.string()  # SQLite holds it as text


@pytest.mark.postgres
def test_a_standard_parquet_reader_reads_a_postgresql_backup_as_typed_values(
    tmp_path: Path, postgres_db: ServerDatabase
) -> None:
    """Each column of a PostgreSQL backup is of the Arrow type of its values, and
    `pyarrow.parquet.read_table` gives the values the source holds: decimals at their scale,
    instants in their zone, JSON and UUIDs as text."""
    source = postgres_db.engine()
    _make_postgres_source(source)
    info = write_backup(source, tmp_path / "b", new_backup_id(NOW))
    read = pq.read_table(info.path / info.file_for("acct").name)
    with source.connect() as conn:
        rows = conn.exec_driver_sql("SELECT * FROM acct ORDER BY id").mappings().all()
    as_text = {"doc": json.loads, "u": uuid.UUID}
    got = [
        {
            name: as_text[name](v) if name in as_text and v is not None else v
            for name, v in r.items()
        }
        for r in read.to_pylist()
    ]
    assert got == [dict(row) for row in rows]
    types = {field.name: field.type for field in read.schema}
    assert types["amount"] == pa.decimal128(38, 10) and types["naive"] == pa.timestamp("us")
    assert types["at"].tz is not None and types["raw"] == pa.binary()
    assert types["d"] == pa.date32() and types["t"] == pa.time64("us")
    assert read.schema.field("u").metadata[b"dsdb.type"] == b"uuid"


GOLDEN_V1 = Path(__file__).parent / "golden" / "backup-v1"


def test_a_version_1_backup_still_restores_exactly(tmp_path: Path, target: sa.Engine) -> None:
    """`golden/backup-v1` is `_make_awkward`'s data as dsdb wrote it in format version 1."""
    backup = tmp_path / "backup"
    shutil.copytree(GOLDEN_V1, backup)
    info = verify_backup(backup)
    assert info.format_version == 1
    source = _make_awkward(tmp_path / "source.db")
    restore_backup(backup, target)
    for table in info.tables:
        assert _normalised(target, table) == _normalised(source, table), table.name


def test_a_backup_of_a_newer_format_is_refused_by_name(tmp_path: Path) -> None:
    backup = tmp_path / "backup"
    shutil.copytree(GOLDEN_V1, backup)
    manifest = backup / "backup.json"
    manifest.write_text(manifest.read_text().replace('"format_version": 1', '"format_version": 9'))
    with pytest.raises(BackupError, match="format version 9; this dsdb reads versions 1 to 3"):
        read_backup_info(backup)


def test_sqlite_to_sqlite_keeps_stored_values_byte_for_byte(tmp_path: Path) -> None:
    source = _make_awkward(tmp_path / "source.db")
    info = write_backup(source, tmp_path / "backups", new_backup_id(NOW))
    target = _sqlite_engine(tmp_path / "target.db")
    restore_backup(info.path, target)
    columns = info.tables[0].column_names
    assert _rows(target, "awkward", columns) == _rows(source, "awkward", columns)
    # Timestamps stored as text are not rewritten ('...:37' never becomes '...:37.000000').
    assert _rows(target, "awkward", ("id", "happened"))[0] == (1, "2024-01-01 10:00:37")


@pytest.mark.postgres
def test_real_becomes_double_precision_in_postgresql(
    tmp_path: Path, postgres_db: ServerDatabase
) -> None:
    info = write_backup(_make_awkward(tmp_path / "s.db"), tmp_path / "b", new_backup_id(NOW))
    target = postgres_db.engine()
    restore_backup(info.path, target)
    with target.connect() as conn:
        types = dict(
            conn.execute(
                sa.text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = 'awkward'"
                )
            ).all()
        )
    assert types["ratio"] == types["measure"] == "double precision"
    assert types["happened_tz"] == "timestamp with time zone"
    assert (types["payload"], types["doc"], types["flag"]) == ("bytea", "jsonb", "boolean")


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_application_inserts_continue_after_restored_keys(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    info = write_backup(_make_awkward(tmp_path / "s.db"), tmp_path / "b", new_backup_id(NOW))
    server: ServerDatabase = request.getfixturevalue(f"{kind}_db")
    target = server.engine()
    restore_backup(info.path, target)
    note = sa.table("note", sa.column("id"), sa.column("awkward_id"), sa.column("body"))
    with target.begin() as conn:
        conn.execute(sa.insert(note).values(awkward_id=1, body="by the application"))
    with target.connect() as conn:
        new_id = conn.execute(sa.select(note.c.id).where(note.c.body == "by the application"))
        assert new_id.scalar_one() == 8


def test_a_key_of_zero_restores_as_zero(tmp_path: Path, target: sa.Engine) -> None:
    # MySQL turns a 0 written into an AUTO_INCREMENT column into a new id unless told not to.
    source = _sqlite_engine(tmp_path / "s.db")
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
        conn.exec_driver_sql("INSERT INTO item VALUES (0, 'zero'), (1, 'one'), (2, 'two')")
    info = write_backup(source, tmp_path / "b", new_backup_id(NOW))
    restore_backup(info.path, target)
    assert _rows(target, "item", ("id", "name")) == [(0, "zero"), (1, "one"), (2, "two")]


def test_hostile_names_round_trip(tmp_path: Path, target: sa.Engine) -> None:
    source = _sqlite_engine(tmp_path / "s.db")
    q = source.dialect.identifier_preparer.quote
    columns = ", ".join(f"{q(name)} TEXT" for name in HOSTILE_COLUMNS)
    with source.begin() as conn:
        conn.exec_driver_sql('CREATE TABLE "select" (id INTEGER PRIMARY KEY)')
        conn.exec_driver_sql(
            f"CREATE TABLE {q(HOSTILE_TABLE)} (id INTEGER PRIMARY KEY, "
            f'"select id" INTEGER REFERENCES "select" (id), {columns})'
        )
        conn.exec_driver_sql(f'CREATE INDEX {q("ix; odd")} ON {q(HOSTILE_TABLE)} ("a b")')
        conn.exec_driver_sql('INSERT INTO "select" VALUES (1)')
        values = ["x'; DROP TABLE t; --", "b", "c", "d", "é", "`", "%s %(x)s"]
        conn.exec_driver_sql(
            f"INSERT INTO {q(HOSTILE_TABLE)} VALUES (1, 1, {', '.join('?' * 7)})", tuple(values)
        )
    info = write_backup(source, tmp_path / "b", new_backup_id(NOW))
    restore_backup(info.path, target)
    table = info.table(HOSTILE_TABLE)
    assert _normalised(target, table) == [(1, 1, *values)]
    restored = {t.name: t for t in reflect_tables(target)}
    assert restored[HOSTILE_TABLE].column_names == table.column_names
    assert _structure(restored[HOSTILE_TABLE])[:2] == _structure(table)[:2]
    assert (("a b",), False) in _structure(restored[HOSTILE_TABLE])[2]
    hostile = sa.table(HOSTILE_TABLE, sa.column("id"), sa.column("per%cent"))
    with target.begin() as conn:  # the sequence behind a hostile name was advanced too
        conn.execute(sa.insert(hostile).values({"per%cent": "new"}))
    assert _rows(target, HOSTILE_TABLE, ("id", "per%cent"))[-1] == (2, "new")


def _make_postgres_source(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE acct (id serial PRIMARY KEY, amount numeric(30, 10), "
            "at timestamptz, naive timestamp, raw bytea, doc jsonb, ok boolean, "
            "x double precision, r real, u uuid, name text, d date, t time)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE entry (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
            "acct_id int REFERENCES acct (id), memo varchar(30))"
        )
        conn.exec_driver_sql(
            "INSERT INTO acct (amount, at, naive, raw, doc, ok, x, r, u, name, d, t) VALUES "
            "(12345678901234.5678, '2024-06-01 12:30:00.123456+02', '2024-01-01 10:00:37', "
            "'\\x00ff00', '{\"k\": [1, \"😀\"]}', true, 0.1 + 0.2, 1.5, "
            "'12345678-1234-5678-1234-567812345678', 'Grüße 😀', '2024-02-29', '23:59:59.5'), "
            "(NULL, NULL, NULL, NULL, 'null', false, -0.0, NULL, NULL, NULL, NULL, NULL)"
        )
        conn.exec_driver_sql("INSERT INTO entry (acct_id, memo) VALUES (1, 'a'), (2, 'b')")


@pytest.mark.postgres
def test_postgresql_backup_restores_into_sqlite(
    tmp_path: Path, postgres_db: ServerDatabase
) -> None:
    source = postgres_db.engine()
    _make_postgres_source(source)
    info = write_backup(source, tmp_path / "b", new_backup_id(NOW))
    assert info.source_dialect == "postgresql"
    # The backup itself holds the exact decimal.
    assert next(iter_rows(info, "acct"))[1] == Decimal("12345678901234.5678000000")
    target = _sqlite_engine(tmp_path / "t.db")
    restore_backup(info.path, target)
    acct = info.table("acct")
    restored, expected = _normalised(target, acct), _normalised(source, acct)
    # SQLite's NUMERIC affinity keeps a double (see module doc); everything else is exact.
    assert [float(r[1]) if r[1] is not None else None for r in restored] == [
        float(e[1]) if e[1] is not None else None for e in expected
    ]
    assert [r[:1] + r[2:] for r in restored] == [e[:1] + e[2:] for e in expected]
    assert _normalised(target, info.table("entry")) == _normalised(source, info.table("entry"))
    with target.begin() as conn:  # SQLite's rowid continues by itself
        conn.exec_driver_sql("INSERT INTO entry (acct_id, memo) VALUES (1, 'c')")
        assert conn.exec_driver_sql("SELECT max(id) FROM entry").scalar() == 3


@pytest.mark.postgres
@pytest.mark.mariadb
def test_postgresql_backup_restores_exact_decimals_into_mariadb(
    tmp_path: Path, postgres_db: ServerDatabase, mariadb_db: ServerDatabase
) -> None:
    source = postgres_db.engine()
    _make_postgres_source(source)
    info = write_backup(source, tmp_path / "b", new_backup_id(NOW))
    target = mariadb_db.engine()
    restore_backup(info.path, target)
    for table in info.tables:
        assert _normalised(target, table) == _normalised(source, table)
    with target.connect() as conn:
        amount = conn.exec_driver_sql("SELECT amount FROM acct WHERE id = 1").scalar()
    assert amount == Decimal("12345678901234.5678")


@pytest.mark.postgres
def test_postgresql_to_postgresql_keeps_special_floats(
    tmp_path: Path, postgres_db: ServerDatabase
) -> None:
    source = postgres_db.engine()
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE f (id int PRIMARY KEY, x double precision)")
        conn.exec_driver_sql(
            "INSERT INTO f VALUES (1, 'Infinity'), (2, '-Infinity'), (3, '-0'), (4, 'NaN'), "
            "(5, 5e-324), (6, 0.30000000000000004)"
        )
    info = write_backup(source, tmp_path / "b", new_backup_id(NOW))
    expected = ["inf", "-inf", "-0.0", "nan", "5e-324", "0.30000000000000004"]
    assert [repr(row[1]) for row in iter_rows(info, "f")] == expected
    restore_backup(info.path, source, replace_existing=True)
    assert [repr(row[1]) for row in _rows(source, "f", ("id", "x"))] == expected


# -- integrity (tests/test_backup_corruption.py refuses every damage before a restore) ----


def _damage(info: BackupInfo, how: str) -> Path:
    path = info.path / info.file_for("awkward").name
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        del data[-10:]
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("how", ["flip", "bad stream", "truncate", "not gzip"])
def test_a_damaged_data_file_reads_as_damaged(tmp_path: Path, how: str) -> None:
    """Past the checksums (a file changed after they were taken), the reader itself names the
    file, whatever the decompressor found: a CRC mismatch, a bad deflate stream, an early end,
    no gzip at all."""
    info = write_backup(_make_awkward(tmp_path / "s.db"), tmp_path / "b", new_backup_id(NOW))
    path = info.path / info.file_for("awkward").name
    if how in ("flip", "truncate"):
        _damage(info, how)
    elif how == "bad stream":
        data = bytearray(path.read_bytes())
        data[30] ^= 0xFF  # early in the deflate stream: its blocks no longer decode
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(b"plain text, not gzip\n" * 100)
    with pytest.raises(BackupError, match=f"backup data file {path} is damaged"):
        list(read_blocks(path))


def test_same_data_gives_the_same_checksums(tmp_path: Path) -> None:
    source = _make_awkward(tmp_path / "s.db")
    first = write_backup(source, tmp_path / "b", "first")
    second = write_backup(source, tmp_path / "b", "second")
    assert [f.sha256 for f in first.files] == [f.sha256 for f in second.files]
    assert BackupInfo.from_dict(first.to_dict(), first.path) == first
    assert read_backup_info(first.path / "backup.json") == first


def test_a_backup_shows_itself_as_a_one_line_summary(tmp_path: Path) -> None:
    info = write_backup(_make_awkward(tmp_path / "s.db"), tmp_path / "b", "first")
    shown = repr(info)
    assert "\n" not in shown and len(shown) < 300  # every table's schema took several KB
    assert "ColumnSchema" not in shown
    for part in ("id='first'", "source_dialect='sqlite'", f"rows={info.total_rows}", "'note'"):
        assert part in shown


# -- refusal and resume ------------------------------------------------------------------


def test_target_with_data_is_refused_unless_replacing(tmp_path: Path, target: sa.Engine) -> None:
    info = write_backup(_make_awkward(tmp_path / "s.db"), tmp_path / "b", new_backup_id(NOW))
    restore_backup(info.path, target)
    assert tables_with_data(target, ["awkward", "note", "absent"]) == ["awkward", "note"]
    with pytest.raises(
        BackupError, match=r"'awkward', 'note' \(replace_existing=True replaces them\)"
    ):
        restore_backup(info.path, target)
    result = restore_backup(info.path, target, replace_existing=True)
    assert result.rows == 6
    assert len(_rows(target, "note", ("id",))) == 3  # replaced, not appended


def test_resume_skips_completed_tables_and_reloads_the_rest(
    tmp_path: Path, target: sa.Engine
) -> None:
    source = _make_awkward(tmp_path / "s.db")
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE tail (id INTEGER PRIMARY KEY, v TEXT)")
        conn.exec_driver_sql("INSERT INTO tail VALUES (1, 'one'), (2, 'two')")
    info = write_backup(source, tmp_path / "b", new_backup_id(NOW))
    assert [t.name for t in info.tables] == ["awkward", "tail", "note"]
    # An interrupted first run: awkward completed, tail holds part of its rows, note absent.
    restore_backup(info.path, target, tables=["awkward"])
    with target.begin() as conn:
        conn.execute(sa.text("UPDATE awkward SET label = 'kept' WHERE id = 2"))
    restore_backup(info.path, target, tables=["tail"])
    with target.begin() as conn:
        conn.execute(sa.text("DELETE FROM tail WHERE id = 2"))

    # Tables left behind by the interrupted run hold data: the caller resumes with consent.
    result = restore_backup(info.path, target, completed={"awkward"}, replace_existing=True)
    assert result.tables == ("tail", "note") and result.skipped == ("awkward",)
    assert _rows(target, "awkward", ("id", "label"))[1] == (2, "kept")  # not reloaded
    assert _rows(target, "tail", ("id", "v")) == [(1, "one"), (2, "two")]
    assert len(_rows(target, "note", ("id",))) == 3


def test_subset_without_its_parent_warns_instead_of_failing(
    tmp_path: Path, target: sa.Engine
) -> None:
    info = write_backup(_make_awkward(tmp_path / "s.db"), tmp_path / "b", new_backup_id(NOW))
    result = restore_backup(info.path, target, tables=["note"])
    assert result.tables == ("note",) and result.rows == 3
    assert len(result.warnings) == 1 and "'awkward'" in result.warnings[0]
    assert reflect_tables(target)[0].foreign_keys == ()


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_a_value_the_target_refuses_fails_the_restore_naming_the_table(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    """SQLite keeps text in an INTEGER column; a server refuses it while loading (PostgreSQL
    in COPY, whose errors come from psycopg, not SQLAlchemy)."""
    source = _sqlite_engine(tmp_path / "s.db")
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE counts (id INTEGER PRIMARY KEY, n INTEGER)")
        conn.exec_driver_sql("INSERT INTO counts VALUES (1, 'many')")
    info = write_backup(source, tmp_path / "b", new_backup_id(NOW))
    server: ServerDatabase = request.getfixturevalue(f"{kind}_db")
    target = server.engine()
    dialect = target.dialect.name
    with pytest.raises(DsdbError, match=f"restoring table 'counts' into {dialect} failed: .*many"):
        restore_backup(info.path, target)
    if dialect == "postgresql":  # the table's transaction is rolled back whole
        assert sa.inspect(target).get_table_names() == []


@pytest.mark.postgres
def test_rows_breaking_a_foreign_key_are_refused_before_writing_or_fail_the_keys_then_resume(
    tmp_path: Path, postgres_db: ServerDatabase
) -> None:
    """Rows whose key points at no row of the backup are refused before anything is written.
    PostgreSQL gets its foreign keys once the tables are loaded; a key the rows break there
    (rows the count was told had none) fails the restore, naming it and what to do, and a
    resume adds it once the rows are fixed."""
    source = _make_awkward(tmp_path / "s.db")
    with source.begin() as conn:  # SQLite does not check foreign keys unless asked to
        conn.exec_driver_sql("INSERT INTO note VALUES (4, 99, 'orphan')")
    info = write_backup(source, tmp_path / "b", new_backup_id(NOW))
    target = postgres_db.engine()
    with pytest.raises(BackupError, match=r"note.awkward_id → awkward.id: 1 row points"):
        restore_backup(info.path, target)
    assert sa.inspect(target).get_table_names() == []
    done: list[str] = []
    with pytest.raises(DsdbError, match=r"adding foreign keys in PostgreSQL failed: .*on_dangl"):
        restore_backup(
            info.path, target, on_table_done=lambda table, rows: done.append(table), dangling=()
        )
    assert done == ["awkward", "note"]
    with target.begin() as conn:
        conn.exec_driver_sql("DELETE FROM note WHERE awkward_id = 99")
    result = restore_backup(
        info.path, target, completed=set(done), replace_existing=True, on_dangling="skip"
    )
    assert result.tables == () and result.skipped == ("awkward", "note")
    note = next(table for table in reflect_tables(target) if table.name == "note")
    assert [(fk.columns, fk.ref_table) for fk in note.foreign_keys] == [
        (("awkward_id",), "awkward")
    ]
    with pytest.raises(BackupError, match="'nope'"):
        restore_backup(info.path, target, tables=["nope"])


# -- housekeeping ------------------------------------------------------------------------


def test_stale_temporary_folders_are_cleaned_and_live_ones_kept(tmp_path: Path) -> None:
    root = tmp_path / "b"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    killed = root / ".20200101T000000Z-dead00.tmp"
    killed.mkdir(parents=True)
    (killed / "0001-awkward.jsonl.gz").write_bytes(b"partial")
    (killed / "owner.json").write_text(
        json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()})
    )
    anonymous = root / ".20200101T000001Z-anon00.tmp"
    anonymous.mkdir()
    live = root / ".20200101T000002Z-live00.tmp"
    live.mkdir()
    (live / "owner.json").write_text(
        json.dumps({"pid": os.getppid(), "host": socket.gethostname()})
    )

    info = write_backup(_make_awkward(tmp_path / "s.db"), root, new_backup_id(NOW))
    assert not killed.exists() and not anonymous.exists() and live.exists()
    assert [b.id for b in list_backups(root)] == [info.id]


def test_list_backups_newest_first(tmp_path: Path) -> None:
    source = _make_awkward(tmp_path / "s.db")
    root = tmp_path / "b"
    older = write_backup(source, root, new_backup_id(NOW))
    newer = write_backup(source, root, new_backup_id(NOW + dt.timedelta(hours=1)))
    (root / "not-a-backup").mkdir()
    assert [b.id for b in list_backups(root)] == [newer.id, older.id]
    assert list_backups(tmp_path / "nowhere") == []
    (newer.path / "backup.json").unlink()  # the newest is damaged: never the older instead
    with pytest.raises(BackupError) as raised:
        list_backups(root)
    assert raised.value.message == f"not a backup: {newer.path / 'backup.json'} is missing"
