"""The fidelity matrix: every ordered pair of SQLite, PostgreSQL, MariaDB and DuckDB, by migration
and by backup then restore, with a table of awkward values (issue 13).

Each cell creates one small table in the source, moves it, and compares the target with the
source row by row (values read raw and normalised here, independently of dsdb's own
conversions), then checks the target's key, unique constraints and defaults by writing to
it. Values an engine cannot store are left out of the pairs that involve it: NaN (PostgreSQL
and DuckDB only: SQLite stores it as NULL), the infinities (not MariaDB), decimals beyond 15
significant digits (not SQLite, whose NUMERIC keeps a double).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import dsdb_plan as dsdb
from dsdb_plan.dbschema import ColumnSchema, IndexSchema, TableSchema
from tests.helpers import fill, through
from tests.servers import ServerDatabase, server_database

#: Quotes, a backtick, spaces, a semicolon and unicode; a reserved word for a column.
TABLE = 'we"ird `tab; lé'
KEY = 'kéy "q"'
RESERVED = "select"
ENGINES = ["sqlite", "postgresql", "mariadb", "duckdb"]
OPERATIONS = ["migration", "backup-restore"]

_UTC_PLUS_530 = dt.timezone(dt.timedelta(hours=5, minutes=30))
_COLUMNS = (
    ColumnSchema(KEY, "text", nullable=False),
    ColumnSchema("n", "bigint", nullable=False),
    ColumnSchema("active", "boolean", nullable=False, default="true"),
    ColumnSchema("flag", "boolean", default="false"),
    ColumnSchema("code", "varchar", length=20),
    ColumnSchema("note", "text"),
    ColumnSchema("f", "double"),
    ColumnSchema("d", "decimal", precision=38, scale=10),
    ColumnSchema("day", "date"),
    ColumnSchema("at", "time"),
    ColumnSchema("ts", "datetime"),
    ColumnSchema("tstz", "datetime", timezone=True),
    ColumnSchema("u", "uuid"),
    ColumnSchema("j", "json"),
    ColumnSchema("bin", "binary"),
    ColumnSchema(RESERVED, "text"),
    ColumnSchema("long", "text"),
)
SCHEMA = TableSchema(
    TABLE,
    _COLUMNS,
    primary_key=(KEY, "n"),
    indexes=(IndexSchema("ix_code", ("code",), True), IndexSchema("ix_note", ("note",), True)),
)
#: Keys distinct only by case, accent or trailing space, beside integers at the 64-bit limits.
KEYS = [("abc", -(2**63)), ("ABC", 2**63 - 1), ("é", 0), ("e", 1), ("x ", 2), ("x", 2)]


def _rows(source: str, target: str) -> list[tuple[Any, ...]]:
    """The awkward rows for one pair: only the values both engines store."""
    engines = {source, target}
    sqlite = "sqlite" in engines
    infinite = "mariadb" not in engines
    # SQLite's NUMERIC keeps a double (about 15 significant digits); the servers keep all 38.
    big = Decimal("1234.5678901" if sqlite else "1234567890123456789012345678.0123456789")
    floats = [
        0.1 + 0.2,  # needs 17 digits
        -0.0,
        1.7976931348623157e308,
        5e-324,
        math.nan if engines <= {"postgresql", "duckdb"} else 1 / 3,
        math.inf if infinite else -2.5,
    ]
    return [
        (
            key,
            n,
            index % 2 == 0,
            None if index == 5 else index % 3 == 0,
            ["a", "A", "á", "b", "b ", None][index],
            ["n", "N", "ñ", "n ", "m", None][index],
            floats[index],
            [big, Decimal("-0.0000000001"), Decimal(0), Decimal("1.5"), None, Decimal("-7")][index],
            [dt.date(1970, 1, 1), dt.date(2024, 2, 29), dt.date(9999, 12, 31), None, None, None][
                index
            ],
            [dt.time(23, 59, 59, 999999), dt.time(0, 0), None, None, None, None][index],
            [dt.datetime(2024, 2, 29, 12, 34, 56, 123456), dt.datetime(1970, 1, 1), None][
                min(index, 2)
            ],
            [dt.datetime(2024, 6, 1, 12, 0, 0, 1, tzinfo=_UTC_PLUS_530), None][min(index, 1)],
            str(uuid.UUID(int=index * 2**100 + 7)) if index < 5 else None,
            [
                json.dumps({"b": 1, "a": [1, 2.5, "x"], "é": None}, ensure_ascii=False),
                "[]",
                '"a JSON string"',
                "null",
                None,
                "0",
            ][index],
            [b"\x00\x01\xff\x00", b"", None, b"\x00", None, None][index],
            ["", None, "", None, "not empty", ""][index],
            "ü" * 70_000 if index == 0 else "short",
        )
        for index, (key, n) in enumerate(KEYS)
    ]


# -- reading values back, independently of dsdb ------------------------------------------------


def _normal(value: Any, column: ColumnSchema) -> Any:
    """A value as the driver gave it, in one form for every engine."""
    if value is None:
        return None
    kind = column.type
    if kind in ("bigint", "integer", "smallint"):
        return int(value)
    if kind == "boolean":
        return bool(int(value)) if not isinstance(value, str) else value in ("1", "true")
    if kind == "double":
        number = float(value)
        return "nan" if math.isnan(number) else number
    if kind == "decimal":
        return Decimal(repr(value) if isinstance(value, float) else str(value)).normalize()
    if kind == "binary":
        return bytes(value)
    if kind == "date":
        return dt.date.fromisoformat(value) if isinstance(value, str) else value
    if kind == "time":
        if isinstance(value, dt.timedelta):  # MySQL's TIME
            return (dt.datetime.min + value).time()
        return dt.time.fromisoformat(value) if isinstance(value, str) else value
    if kind == "datetime":
        stamp = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        return stamp.astimezone(dt.UTC).replace(tzinfo=None) if stamp.tzinfo else stamp
    if kind == "json":
        return json.loads(value) if isinstance(value, str | bytes) else value
    if kind == "uuid":
        return str(value).lower()
    return value


def _expected(rows: list[tuple[Any, ...]], columns: tuple[ColumnSchema, ...]) -> list[Any]:
    normal = (tuple(_normal(v, c) for v, c in zip(row, columns, strict=True)) for row in rows)
    return sorted(normal, key=repr)


def _read(url: str, columns: tuple[ColumnSchema, ...]) -> list[Any]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    table = sa.table(TABLE, *(sa.column(c.name) for c in columns))
    selected = [
        # psycopg and DuckDB's driver parse JSON, which would take a JSON string for text
        # (and JSON null for NULL): read its text.
        sa.cast(sa.func.to_json(table.c[c.name]), sa.Text)
        if c.type == "json" and engine.dialect.name in ("postgresql", "duckdb")
        else table.c[c.name]
        for c in columns
    ]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*selected)).all()
    return sorted(
        (tuple(_normal(v, c) for v, c in zip(row, columns, strict=True)) for row in rows),
        key=repr,
    )


def _assert_same(found: list[Any], expected: list[Any], columns: tuple[ColumnSchema, ...]) -> None:
    """Row by row; a difference names the row's key and the column."""
    assert len(found) == len(expected)
    differences = [
        (row[0], row[1], column.name, got, want)
        for row, theirs in zip(expected, found, strict=True)
        for column, want, got in zip(columns, row, theirs, strict=True)
        if got != want
    ]
    assert differences == []


# -- the databases of a cell ------------------------------------------------------------------


@pytest.fixture(scope="module")
def _second_postgres() -> Iterator[ServerDatabase]:
    yield from server_database("postgresql")


@pytest.fixture(scope="module")
def _second_mariadb() -> Iterator[ServerDatabase]:
    yield from server_database("mariadb")


def _url(kind: str, side: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A URL to an empty database of `kind`: a second one on the same server as the target of
    a same-engine pair (MariaDB through `driver: mariadb`, the dialect that lost rows)."""
    if kind == "sqlite":
        path = tmp_path / f"{side}.db"
        sqlite3.connect(path).close()
        return f"sqlite:///{path}"
    if kind == "duckdb":
        return f"duckdb+dsdb:///{tmp_path / f'{side}.duckdb'}"  # the file is created on connect
    first = "postgres_db" if kind == "postgresql" else "mariadb_db"
    name = first if side == "source" else f"_second_{first.split('_')[0]}"
    server: ServerDatabase = request.getfixturevalue(name)
    server.reset()
    return server.url_string if kind == "postgresql" else through(server, "mariadb")


def _server_marks(source: str, target: str) -> list[pytest.MarkDecorator]:
    marks = {"postgresql": pytest.mark.postgres, "mariadb": pytest.mark.mariadb}
    return [marks[kind] for kind in dict.fromkeys((source, target)) if kind in marks]


CELLS = [
    pytest.param(source, target, operation, marks=_server_marks(source, target))
    for source in ENGINES
    for target in ENGINES
    for operation in OPERATIONS
]

#: What PostgreSQL's arrays land as elsewhere: JSON arrays.
ARRAYS = ["x", "y z", None]


@pytest.mark.parametrize(("source", "target", "operation"), CELLS)
def test_awkward_values_land_exactly(
    tmp_path: Path, request: pytest.FixtureRequest, source: str, target: str, operation: str
) -> None:
    source_url = _url(source, "source", tmp_path, request)
    target_url = _url(target, "target", tmp_path, request)
    rows = _rows(source, target)
    source_engine = sa.create_engine(source_url, poolclass=sa.pool.NullPool)
    fill(source_engine, SCHEMA, rows)
    columns = SCHEMA.columns
    if source == "postgresql":  # arrays exist only there; they travel as JSON
        columns += (ColumnSchema("tags", "json"),)
        rows = [(*row, ARRAYS if index == 0 else None) for index, row in enumerate(rows)]
        quoted = source_engine.dialect.identifier_preparer.quote(TABLE)
        with source_engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE {quoted} ADD tags text[]")
            conn.execute(
                sa.text(f"UPDATE {quoted} SET tags = :tags WHERE n = :n"),
                {"tags": ARRAYS, "n": KEYS[0][1]},
            )
    expected = _expected(rows, columns)
    # The source holds what the cell means.
    _assert_same(_read(source_url, columns), expected, columns)

    mngr = dsdb.ConnectionManager(
        {"src": {"url": source_url}, "dst": {"url": target_url}}, user="matrix"
    )
    mngr.backup_root = tmp_path / "backups"
    try:
        if operation == "migration":
            mngr.migrate("src", "dst")
        else:
            mngr.backup("src")
            mngr.restore("src", "dst")
    finally:
        mngr.close()

    _assert_same(_read(target_url, columns), expected, columns)
    _check_keys_uniques_and_defaults(target_url)


def _check_keys_uniques_and_defaults(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    table = sa.table(TABLE, *(sa.column(c.name) for c in SCHEMA.columns))
    # Defaults: a row given only its key takes them.
    with engine.begin() as conn:
        conn.execute(sa.insert(table).values({KEY: "fresh", "n": 99}))
        fresh = conn.execute(sa.select(table.c.active, table.c.flag).where(table.c.n == 99)).one()
    assert (bool(fresh[0]), bool(fresh[1])) == (True, False)
    # The composite key and both unique constraints refuse duplicates; keys and unique text
    # differing only by case, accent or trailing space were accepted above.
    for duplicate in (
        {KEY: "abc", "n": -(2**63)},
        {KEY: "new 1", "n": 100, "code": "A"},
        {KEY: "new 2", "n": 101, "note": "n "},
    ):
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.insert(table).values(duplicate))
