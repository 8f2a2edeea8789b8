"""The portable digest: PostgreSQL, MariaDB and DuckDB compute exactly what Python computes."""

from __future__ import annotations

import datetime as dt
import math
import random
import struct
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan.checksum import ChecksumMethod
from dsdb_plan.dbschema import ColumnSchema, TableSchema
from dsdb_plan.migrate.digest import SubsetDigest, number_text
from dsdb_plan.migrate.sql_digest import in_database
from tests.helpers import database, fill

#: The engines that digest in SQL.
IN_SQL = ["postgresql", "mariadb", "duckdb"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.50", "1.5"),
        ("1.5", "1.5"),
        ("15e-1", "1.5"),
        ("100", "100"),
        ("1E+2", "100"),
        ("5.0", "5"),
        ("-0.000", "0"),
        ("-0.0", "0"),
        ("0E-10", "0"),
        ("-1.5e-07", "-0.00000015"),
        ("1e+20", "100000000000000000000"),
        ("12345678901234.123456", "12345678901234.123456"),
    ],
)
def test_number_text_is_one_form_per_number(text: str, expected: str) -> None:
    assert number_text(text) == expected


def _floats() -> list[float]:
    """Doubles of every magnitude, with the ones PostgreSQL writes with more digits than
    needed (a shorter decimal exactly halfway between two doubles) and the extremes."""
    rng = random.Random(20261127)
    values = [rng.random() * 10 ** rng.randint(-300, 300) * rng.choice((1, -1)) for _ in range(400)]
    values += [struct.unpack("d", rng.randbytes(8))[0] for _ in range(400)]
    values += [float(rng.randrange(2**53, 10**17)) for _ in range(400)]
    values += [5.9996735811599744e16, 1.9282434929841e17, 2.0**54, -(2.0**60), 2.0**1000]
    values += [0.0, -0.0, 5e-324, 1.7976931348623157e308, -2.2250738585072014e-308, 0.1 + 0.2]
    # Where the databases stop writing doubles plain, and the plain ones most data holds.
    edges = [1e-4, 1e15, 1e-5, 1e14, 123456789012345.6]
    edges += [math.nextafter(edge, toward) for edge in edges for toward in (0, math.inf)]
    values += edges + [-edge for edge in edges]
    values += [rng.uniform(-1e6, 1e6) for _ in range(200)]
    return [value for value in values if math.isfinite(value)]


def _single(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]  # type: ignore[no-any-return]


MIXED = TableSchema(
    "mixed",
    (
        ColumnSchema("id", "bigint", nullable=False),
        ColumnSchema("small", "smallint"),
        ColumnSchema("flag", "boolean"),
        ColumnSchema("d", "double"),
        ColumnSchema("r", "float"),
        ColumnSchema("amount", "decimal", precision=30, scale=10),
        ColumnSchema("name", "varchar", length=100),
        ColumnSchema("body", "text"),
        ColumnSchema("blob", "binary"),
        ColumnSchema("day", "date"),
        ColumnSchema("at", "datetime"),
        ColumnSchema("atz", "datetime", timezone=True),
        ColumnSchema("tm", "time"),
    ),
    primary_key=("id",),
)


def _mixed_rows() -> list[tuple[Any, ...]]:
    rng = random.Random(7)
    texts = ["", "None", "N", "1:x", "naïve 'quoted' \"text\"; ✈ 🎉", "  trailing  ", "x'; --"]
    # What the row text escapes: a backslash, the separator, and text that reads as NULL.
    texts += ["\\", "\\N", "a\x1fb", "\x1f", "x\\\x1fy"]
    rows = []
    for i, value in enumerate(_floats()):
        rows.append(
            (
                i,
                rng.choice([None, -32768, 0, 32767]),
                rng.choice([None, True, False]),
                value,
                _single(value) if 1e-30 < abs(value) < 1e30 else rng.choice([None, 0.5]),
                Decimal(rng.randrange(-(10**19), 10**19)).scaleb(-rng.randrange(0, 11)),
                rng.choice(texts),
                None if i % 7 == 0 else rng.choice(texts) * rng.randrange(1, 4),
                rng.choice([None, b"", b"\x00\xff", rng.randbytes(20)]),
                rng.choice([None, dt.date(1, 1, 1), dt.date(2000, 2, 29), dt.date(9999, 12, 31)]),
                dt.datetime(2024, 1, 2, 3, 4, 5, rng.randrange(10**6)),
                dt.datetime(2024, 6, 30, 23, 59, 59, 500000, dt.timezone(dt.timedelta(hours=-5))),
                rng.choice([None, dt.time(0, 0), dt.time(23, 59, 59, 999999)]),
            )
        )
    return rows


def _python_digest(schema: TableSchema, rows: list[tuple[Any, ...]]) -> Any:
    digest = SubsetDigest(schema, schema.column_names)
    digest.add(rows)
    return digest.result()


def _database_digest(engine: sa.Engine, schema: TableSchema, where: Any = None) -> Any:
    table = sa.table(schema.name, *(sa.column(name) for name in schema.column_names))
    with engine.connect() as conn:
        summer = in_database(conn, table, schema.column_names, schema)
        assert summer is not None, "every column of this table has an SQL form"
        digest = SubsetDigest(schema, schema.column_names)
        digest.add_total(*summer(where(table) if where else None))
    return digest.result()


@pytest.mark.parametrize("kind", IN_SQL)
def test_database_digest_equals_the_python_digest_of_the_same_values(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    engine = database(request, tmp_path, kind)
    rows = _mixed_rows()
    fill(engine, MIXED, rows)
    python = _python_digest(MIXED, rows)
    assert python.rows == len(rows) and python.method is ChecksumMethod.PORTABLE
    assert _database_digest(engine, MIXED) == python
    # A filter is applied in the database too.
    expected = _python_digest(MIXED, [row for row in rows if row[0] % 3 == 0])
    assert _database_digest(engine, MIXED, lambda t: t.c.id % 3 == 0) == expected


@pytest.mark.parametrize("kind", IN_SQL)
def test_a_row_without_text_columns_digests_alike(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    """No text column puts the row in UTF-8 (MariaDB converts only texts): the values' texts
    are ASCII, the same bytes in the connection's character set."""
    texts = {"name", "body"}
    at = [i for i, column in enumerate(MIXED.columns) if column.name not in texts]
    schema = TableSchema("plain", tuple(MIXED.columns[i] for i in at), primary_key=("id",))
    rows = [tuple(row[i] for i in at) for row in _mixed_rows()[:300]]
    engine = database(request, tmp_path, kind)
    fill(engine, schema, rows)
    assert _database_digest(engine, schema) == _python_digest(schema, rows)


@pytest.mark.parametrize("kind", IN_SQL)
def test_database_digest_sees_a_one_ulp_change(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    engine = database(request, tmp_path, kind)
    rows = _mixed_rows()[:50]
    fill(engine, MIXED, rows)
    before = _database_digest(engine, MIXED)
    table = sa.table("mixed", sa.column("id"), sa.column("d"))
    with engine.begin() as conn:
        conn.execute(
            sa.update(table).where(table.c.id == 10).values(d=math.nextafter(rows[10][3], 1))
        )
    after = _database_digest(engine, MIXED)
    assert after.rows == before.rows and after != before


@pytest.mark.parametrize("kind", ["postgresql", "duckdb"])
def test_uuids_are_digested_in_sql_and_json_in_python(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    engine = database(request, tmp_path, kind)
    schema = TableSchema(
        "ids", (ColumnSchema("id", "uuid", nullable=False), ColumnSchema("doc", "json"))
    )
    rows = [
        (uuid.UUID(int=n * 7919), None if n % 2 else '{"b": 1, "a": [1, 2.5]}') for n in range(20)
    ]
    fill(engine, schema, rows)
    only_ids = TableSchema("ids", schema.columns[:1])
    assert _database_digest(engine, only_ids) == _python_digest(only_ids, [r[:1] for r in rows])
    table = sa.table("ids", sa.column("id"), sa.column("doc"))
    with engine.connect() as conn:
        assert in_database(conn, table, ["id", "doc"], schema) is None


def test_sqlite_is_digested_in_python(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        summer = in_database(
            conn,
            sa.table("t", sa.column("id")),
            ["id"],
            TableSchema("t", (ColumnSchema("id", "integer"),)),
        )
    assert summer is None


def test_a_column_of_mixed_or_refused_values_digests_as_its_values_one_by_one() -> None:
    """Columns are framed a whole column at a time where they can be: a batch digests as
    the same rows added one at a time, whatever classes and values a column mixes."""
    schema = TableSchema(
        "mixed",
        (
            ColumnSchema("flag", "boolean"),
            ColumnSchema("note", "text"),
            ColumnSchema("x", "double"),
            ColumnSchema("at", "datetime", timezone=True),
        ),
    )
    tz = dt.timezone(dt.timedelta(hours=5, minutes=30))
    rows = [
        (1, "a", 1.0, dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=tz)),
        (0, None, -0.0, "2024-01-02 03:04:05+05:30"),
        (2, 7, 1e-7, None),  # 2 is no boolean: the slow path writes it as a value apart
        (None, "b", float("nan"), dt.datetime(2024, 1, 2, 3, 4, 5)),
        (True, "", 1e22, dt.datetime(1, 1, 1, 5, 30, tzinfo=tz)),
    ]
    columns = schema.column_names
    together, one_by_one = SubsetDigest(schema, columns), SubsetDigest(schema, columns)
    together.add(rows)
    for row in rows:
        one_by_one.add([row])
    assert together.result() == one_by_one.result()
    assert together.rows == 5


def test_values_as_sqlite_stores_them_digest_as_the_values_they_mean() -> None:
    """Text dates and times, 0/1 booleans and whole numbers in a decimal column, as SQLite
    returns them, digest as the typed values they stand for (which PostgreSQL and MariaDB
    digest alike, above), whichever layout the text has."""
    schema = TableSchema(
        "stored",
        (
            ColumnSchema("at", "datetime", timezone=True),
            ColumnSchema("day", "date"),
            ColumnSchema("flag", "boolean"),
            ColumnSchema("amount", "decimal", precision=12, scale=2),
            ColumnSchema("x", "double"),
        ),
    )
    times = [
        "2021-04-02 04:33:13.000001+00:00",
        "2021-04-02T04:33:13.500000",
        "2021-04-02 04:33:13",
        "2021-04-02 04:33:13+05:30",
        "20210402T04:33:13.00000123+00:00",  # as long as the UTC layout, but laid out apart
        "2021-04-02 04:33:13.25+00:00",
        "2021-04-02 04:33:13.25",
    ]
    days = ["2024-02-29", "20240229", "2024-W09-4"]
    stored = [
        (at, days[i % 3], i % 2, [12, 0.5, 1e22, -0.0][i % 4], [1.0, 2.5e-7][i % 2])
        for i, at in enumerate(times)
    ]
    typed = [
        (
            dt.datetime.fromisoformat(at),
            dt.date.fromisoformat(day),
            bool(flag),
            Decimal(repr(amount)) if isinstance(amount, float) else Decimal(amount),
            x,
        )
        for at, day, flag, amount, x in stored
    ]
    columns = schema.column_names
    for rows in (
        stored,
        stored[:1],
        stored[:2],  # both layouts that are cut rather than parsed, in one batch
        stored[4:5],
        [row for row in stored if len(row[0]) in (22, 26, 32)],
    ):
        expected = SubsetDigest(schema, columns)
        expected.add([typed[stored.index(row)] for row in rows])
        digest = SubsetDigest(schema, columns)
        digest.add(rows)
        assert digest.result() == expected.result(), rows


def test_row_text_keeps_boundaries_and_nulls_apart() -> None:
    """Values are joined by a separator, not length-prefixed: text holding the separator or
    a backslash, or reading as the NULL mark, is escaped so that no two rows write alike."""
    schema = TableSchema("notes", (ColumnSchema("a", "text"), ColumnSchema("b", "text")))
    rows = [
        ("a\x1f", "b"),
        ("a", "\x1fb"),
        ("a\\", "\x1fb"),
        ("a\\\x1f", "b"),
        (None, "b"),
        ("\\N", "b"),
        ("N", "b"),
        ("", "b"),
        ("\\", "b"),
        ("\\\\", "b"),
    ]
    digests = set()
    for row in rows:
        digest = SubsetDigest(schema, schema.column_names)
        digest.add([row])
        digests.add(digest.result().checksum)
    assert len(digests) == len(rows)
