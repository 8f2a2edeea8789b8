"""Fingerprints: exact change detection on SQLite, PostgreSQL and MariaDB; no reads when unchanged.

The same tests run against every database through the `engine` fixture. The SQLite-only tests
prove the cheap path by making every data read fail, never by timing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from psycopg.adapt import Loader
from psycopg.pq import Escaping

from dsdb_plan import fingerprint as fp
from dsdb_plan.archive import write_backup
from dsdb_plan.checksum import ChecksumMethod, RowDigest, TableFingerprint
from dsdb_plan.engines import Engine, engine_for
from dsdb_plan.errors import DsdbError
from dsdb_plan.fingerprint import (
    Fingerprint,
    FingerprintWhileReading,
    describe_changes,
    fingerprint_database,
)
from tests.servers import ServerDatabase

FLIGHTS = [
    {"id": 1, "carrier": "UA", "delay": 1.5},
    {"id": 2, "carrier": "AA", "delay": None},
    {"id": 3, "carrier": "UA", "delay": -2.25},
    {"id": 4, "carrier": "DL", "delay": 0.1},
]
# Every kind of name a quoting bug would trip over; MariaDB allows 64 characters.
HOSTILE_TABLE = 'order "x"; -- ü`s'
HOSTILE_COLUMNS = ("select", "a b", "it's", 'q"; drop')


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine on an empty database of each kind."""
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'data.db'}")
    else:
        server = request.getfixturevalue(f"{request.param.replace('postgresql', 'postgres')}_db")
        engine = server.engine()
    yield engine
    engine.dispose()


def make_table(
    engine: sa.Engine,
    name: str,
    rows: Sequence[dict[str, Any]] = (),
    columns: Sequence[tuple[str, sa.types.TypeEngine[Any]]] = (
        ("id", sa.Integer()),
        ("carrier", sa.String(20)),
        ("delay", sa.Double()),
    ),
) -> sa.Table:
    """Create a table without a primary key (so duplicates are allowed) holding `rows`."""
    table = sa.Table(name, sa.MetaData(), *(sa.Column(n, t) for n, t in columns))
    table.create(engine)
    if rows:
        with engine.begin() as conn:
            conn.execute(table.insert(), list(rows))
    return table


def run(engine: sa.Engine, statement: sa.Executable) -> None:
    with engine.begin() as conn:
        conn.execute(statement)


# --- every database --------------------------------------------------------------------------


def test_same_data_same_fingerprint_in_any_order(engine: sa.Engine) -> None:
    make_table(engine, "flights", FLIGHTS)
    make_table(engine, "shuffled", FLIGHTS[::-1])

    first = fingerprint_database(engine)
    assert first == fingerprint_database(engine)
    assert first.tables["flights"] == first.tables["shuffled"]
    assert first.tables["flights"].rows == 4
    assert describe_changes(first, fingerprint_database(engine)) == []


def test_insert_changes_the_row_count(engine: sa.Engine) -> None:
    flights = make_table(engine, "flights", FLIGHTS)
    before = fingerprint_database(engine)

    run(engine, flights.insert().values(id=5, carrier="B6", delay=3.0))

    after = fingerprint_database(engine)
    assert after.tables["flights"].rows == 5
    assert describe_changes(before, after) == ["table flights changed: 4 → 5 rows"]


def test_update_in_place_changes_the_checksum(engine: sa.Engine) -> None:
    flights = make_table(engine, "flights", FLIGHTS)
    before = fingerprint_database(engine)

    # The smallest possible change: one float moves by one unit in the last place.
    run(engine, flights.update().where(flights.c.id == 1).values(delay=1.5000000000000002))

    after = fingerprint_database(engine)
    assert after.tables["flights"].rows == before.tables["flights"].rows
    assert after.tables["flights"].checksum != before.tables["flights"].checksum
    assert describe_changes(before, after) == ["table flights: content changed, still 4 rows"]


def test_delete_and_reinsert_of_an_identical_row_restores_the_fingerprint(
    engine: sa.Engine,
) -> None:
    flights = make_table(engine, "flights", FLIGHTS)
    before = fingerprint_database(engine)

    run(engine, flights.delete().where(flights.c.id == 1))
    assert fingerprint_database(engine).tables["flights"].rows == 3
    run(engine, flights.insert().values(FLIGHTS[0]))  # now physically last

    after = fingerprint_database(engine)
    assert after == before  # equality is about the data; a SQLite token has moved
    assert after.tables == before.tables


def test_duplicate_rows_count_and_do_not_cancel(engine: sa.Engine) -> None:
    row_a = {"id": 1, "carrier": "UA", "delay": 1.0}
    row_b = {"id": 2, "carrier": "AA", "delay": 2.0}
    make_table(engine, "once", [row_a])
    make_table(engine, "twice", [row_a, row_a])
    make_table(engine, "a_a", [row_a, row_a, row_b])
    make_table(engine, "a_b", [row_a, row_b, row_b])
    make_table(engine, "b_b", [row_b, row_b])
    make_table(engine, "empty")

    tables = fingerprint_database(engine).tables
    assert tables["twice"].rows == 2
    assert tables["once"].checksum != tables["twice"].checksum
    # With XOR, pairs would vanish: a,a,b == b and a,a == b,b == empty.
    assert tables["a_a"].checksum != tables["a_b"].checksum
    assert len({tables[name].checksum for name in ("twice", "b_b", "empty")}) == 3


def test_null_empty_string_and_column_boundaries_are_distinct(engine: sa.Engine) -> None:
    text_columns = (("a", sa.String(20)), ("b", sa.String(20)))
    variants = {
        "nulls": {"a": None, "b": None},
        "empties": {"a": "", "b": ""},
        "null_word": {"a": "NULL", "b": "None"},
        "null_first": {"a": None, "b": "x"},
        "null_second": {"a": "x", "b": None},
        "split_1": {"a": "ab", "b": ""},
        "split_2": {"a": "a", "b": "b"},
        "split_3": {"a": "a:", "b": "b"},
        "split_4": {"a": "a", "b": ":b"},
    }
    for name, row in variants.items():
        make_table(engine, name, [row], text_columns)

    tables = fingerprint_database(engine).tables
    assert len({tables[name].checksum for name in variants}) == len(variants)


def test_hostile_names(engine: sa.Engine) -> None:
    columns = [(name, sa.String(30)) for name in HOSTILE_COLUMNS]
    row = dict.fromkeys(HOSTILE_COLUMNS, "x'; DROP TABLE t; --")
    table = make_table(engine, HOSTILE_TABLE, [row, {**row, "select": "other"}], columns)

    before = fingerprint_database(engine, [HOSTILE_TABLE])
    assert before.tables[HOSTILE_TABLE].rows == 2

    run(engine, table.update().where(table.c["select"] == "other").values({"it's": "y"}))

    after = fingerprint_database(engine)
    assert describe_changes(before, after) == [
        f"table {HOSTILE_TABLE}: content changed, still 2 rows"
    ]
    assert sa.inspect(engine).get_table_names() == [HOSTILE_TABLE]  # nothing got dropped


def test_unknown_tables_are_named(engine: sa.Engine) -> None:
    make_table(engine, "flights", FLIGHTS)

    with pytest.raises(DsdbError, match="no tables 'nope', 'zilch' in the database"):
        fingerprint_database(engine, ["flights", "zilch", "nope"])


def test_selected_tables_only(engine: sa.Engine) -> None:
    make_table(engine, "flights", FLIGHTS)
    make_table(engine, "other", FLIGHTS[:1])

    assert set(fingerprint_database(engine, ["other"]).tables) == {"other"}
    assert set(fingerprint_database(engine).tables) == {"flights", "other"}
    assert fingerprint_database(engine, []).tables == {}


def _hashed_in_python(monkeypatch: pytest.MonkeyPatch, engine: sa.Engine) -> None:
    """Make the engine of `engine` checksum nothing itself, as a new engine may start."""
    rules = type(engine_for(engine.dialect))
    monkeypatch.setattr(rules, "table_checksum", Engine.table_checksum)
    monkeypatch.setattr(rules, "query_checksum", Engine.query_checksum)


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_generic_streaming_path_on_a_server(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path of an engine that checksums nothing itself: rows streamed in chunks from a
    server-side cursor and hashed in Python."""
    engine = request.getfixturevalue(f"{kind}_db").engine()
    flights = make_table(engine, "flights", FLIGHTS)
    make_table(engine, "shuffled", FLIGHTS[::-1])
    _hashed_in_python(monkeypatch, engine)
    monkeypatch.setattr(fp, "_CHUNK_ROWS", 3)  # several chunks per table

    before = fingerprint_database(engine)
    assert before.tables["flights"].method is ChecksumMethod.PYTHON_ROW_HASH
    assert before.tables["flights"] == before.tables["shuffled"]
    run(engine, flights.update().where(flights.c.id == 4).values(delay=0.1000000000000001))
    assert describe_changes(before, fingerprint_database(engine)) == [
        "table flights: content changed, still 4 rows"
    ]
    engine.dispose()


class _MemoryviewLoader(Loader):
    """bytea as a memoryview, as some drivers return binary."""

    def load(self, data: Any) -> memoryview:
        return memoryview(Escaping().unescape_bytea(bytes(data)))


@pytest.mark.postgres
def test_generic_streaming_path_hashes_binary_as_bytes_whatever_the_driver_returns(
    postgres_db: ServerDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = postgres_db.engine()
    columns = (("id", sa.Integer()), ("b", sa.LargeBinary()))
    make_table(engine, "blobs", [{"id": 1, "b": b"\x00\xff"}, {"id": 2, "b": None}], columns)
    _hashed_in_python(monkeypatch, engine)
    views = postgres_db.engine()

    @sa.event.listens_for(views, "connect")
    def binary_as_memoryview(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.adapters.register_loader("bytea", _MemoryviewLoader)

    with views.connect() as conn:
        assert type(conn.exec_driver_sql("SELECT b FROM blobs WHERE id = 1").scalar()) is memoryview

    assert fingerprint_database(views) == fingerprint_database(engine)
    views.dispose()
    engine.dispose()


@pytest.mark.postgres
def test_postgresql_session_settings_keep_the_checksum(postgres_db: ServerDatabase) -> None:
    """The text form of a row follows TimeZone, DateStyle and extra_float_digits; not ours."""
    engine = postgres_db.engine()
    columns = (("at", sa.DateTime(timezone=True)), ("x", sa.Double()))
    row = {"at": datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), "x": 0.1 + 0.2}
    make_table(engine, "events", [row], columns)
    settings = "-c TimeZone=Asia/Tokyo -c DateStyle=German -c extra_float_digits=-3"
    odd = sa.create_engine(postgres_db.url, connect_args={"options": settings})

    assert fingerprint_database(odd) == fingerprint_database(engine)
    with odd.connect() as conn:  # the settings were only changed for the fingerprint's work
        assert conn.execute(sa.text("SHOW TimeZone")).scalar_one() == "Asia/Tokyo"
    odd.dispose()
    engine.dispose()


@pytest.mark.mariadb
def test_mariadb_session_time_zone_does_not_change_the_checksum(mariadb_db: ServerDatabase) -> None:
    """TIMESTAMP values are shown in the session time zone; the pooled session gets it back."""
    engine = mariadb_db.engine()
    columns = (("at", sa.TIMESTAMP()),)
    make_table(engine, "events", [{"at": datetime(2024, 1, 2, 3, 4, 5)}], columns)
    odd = sa.create_engine(
        mariadb_db.url, pool_size=1, connect_args={"init_command": "SET time_zone = '+09:00'"}
    )

    assert fingerprint_database(odd) == fingerprint_database(engine)
    with odd.connect() as conn:
        assert conn.execute(sa.text("SELECT @@session.time_zone")).scalar_one() == "+09:00"
    odd.dispose()
    engine.dispose()


@pytest.mark.postgres
def test_postgresql_types_without_a_hash_function_and_numeric_scale(
    postgres_db: ServerDatabase,
) -> None:
    """Rows are hashed by PostgreSQL; values it cannot hash by their text; 1.5 -> 1.50 counts."""
    engine = postgres_db.engine()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE odd (id int, j json, jb jsonb, n numeric, a int[], p point,"
            " x xml, u uuid, i interval, t timetz)"
        )
        conn.exec_driver_sql(
            "INSERT INTO odd VALUES (1, '{\"a\": 1}', '{\"a\": 1}', 1.5, '{1,2}', '(1,2)',"
            " '<a/>', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1 day', '10:00+02')"
        )
    before = fingerprint_database(engine)
    assert before.tables["odd"].method is ChecksumMethod.POSTGRESQL_ROW_HASH
    changes = {
        "j": "'{\"a\": 2}'",
        "jb": "'{\"a\": 2}'",
        "n": "1.50",  # equal as a number, written differently
        "a": "'{2,1}'",
        "p": "'(2,1)'",
        "x": "'<b/>'",
        "t": "'10:00+03'",
        "i": "'24 hours'",  # equal to '1 day' as an interval, written differently
    }
    for column, value in changes.items():
        with engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE odd SET {column} = {value}")
        after = fingerprint_database(engine)
        assert describe_changes(before, after) == ["table odd: content changed, still 1 row"], (
            column
        )
        before = after
    engine.dispose()


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_floats_are_hashed_as_numbers_whatever_sqlalchemy_calls_them(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """SQLAlchemy 2.1 made Float no longer a Numeric: a float column is still hashed as the
    number it stores, not through its text (PostgreSQL) or its length (MariaDB), so the
    checksum does not depend on the SQLAlchemy version, nor pay for a conversion per row."""
    engine = request.getfixturevalue(f"{kind}_db").engine()
    make_table(engine, "flights", FLIGHTS)
    statements: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    fingerprint_database(engine)
    scans = [s for s in statements if "hash_record_extended" in s or "crc32" in s]
    assert scans
    assert not [s for s in scans if "CAST(flights.delay AS TEXT)" in s or "(flights.delay)" in s]
    engine.dispose()


# --- PostgreSQL: row tokens ------------------------------------------------------------------


def _content_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tables whose content PostgreSQL hashes from now on (token checks not counted)."""
    read: list[str] = []
    postgresql = type(engine_for("postgresql"))
    content = postgresql.table_checksum

    def counting(
        self: Any, conn: sa.Connection, table: sa.TableClause, columns: Any
    ) -> TableFingerprint | None:
        read.append(str(table.name))
        return content(self, conn, table, columns)

    monkeypatch.setattr(postgresql, "table_checksum", counting)
    return read


@pytest.mark.postgres
def test_postgresql_unchanged_tables_are_not_hashed_again(
    postgres_db: ServerDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = postgres_db.engine()
    flights = make_table(engine, "flights", FLIGHTS)
    make_table(engine, "other", FLIGHTS[:2])
    first = fingerprint_database(engine)
    assert all(table.token for table in first.tables.values())
    recorded = Fingerprint.from_dict(json.loads(json.dumps(first.to_dict())))
    read = _content_reads(monkeypatch)

    assert fingerprint_database(engine, previous=recorded) == first
    assert read == []

    run(engine, flights.update().where(flights.c.id == 2).values(delay=3.0))
    second = fingerprint_database(engine, previous=recorded)
    assert read == ["flights"]
    assert describe_changes(first, second) == ["table flights: content changed, still 4 rows"]
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("statement", "changed"),
    [
        ("UPDATE flights SET carrier = carrier", False),  # rewritten as it was
        ("DELETE FROM flights WHERE id = 1", True),
        ("INSERT INTO flights VALUES (5, 'UA', 1)", True),
        ("TRUNCATE flights", True),
        ("ALTER TABLE flights ADD COLUMN extra int DEFAULT 7", True),  # no row is rewritten
        ("ALTER TABLE flights DROP COLUMN delay", True),  # nor here
        ("ALTER TABLE flights ALTER COLUMN carrier TYPE varchar(40)", False),  # nor here
    ],
)
def test_postgresql_every_write_moves_the_token(
    postgres_db: ServerDatabase, monkeypatch: pytest.MonkeyPatch, statement: str, changed: bool
) -> None:
    """The content is hashed again after any write, and only shows a change if there is one."""
    engine = postgres_db.engine()
    make_table(engine, "flights", FLIGHTS)
    first = fingerprint_database(engine)
    read = _content_reads(monkeypatch)
    with engine.begin() as conn:
        conn.exec_driver_sql(statement)

    again = fingerprint_database(engine, previous=first)
    assert read == ["flights"]
    assert (again != first) is changed
    engine.dispose()


@pytest.mark.postgres
def test_postgresql_vacuum_keeps_the_token(
    postgres_db: ServerDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = postgres_db.engine()
    make_table(engine, "flights", FLIGHTS)
    first = fingerprint_database(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (FREEZE) flights")
        conn.exec_driver_sql("VACUUM FULL flights")
    read = _content_reads(monkeypatch)

    assert fingerprint_database(engine, previous=first) == first
    assert read == []
    engine.dispose()


# --- SQLite: the token -----------------------------------------------------------------------


def _no_data_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every read of table data fail, whatever method would do it."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("table data was read")

    monkeypatch.setattr(fp, "_fingerprint", refuse)
    monkeypatch.setattr(fp, "read_chunks", refuse)
    monkeypatch.setattr(type(engine_for("sqlite")), "table_checksum", refuse)


def test_sqlite_unchanged_file_is_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'data.db'}"
    engine = sa.create_engine(url)
    make_table(engine, "flights", FLIGHTS)
    make_table(engine, "other", FLIGHTS[:2])
    first = fingerprint_database(engine)
    assert first.token is not None
    engine.dispose()

    _no_data_reads(monkeypatch)
    fresh = sa.create_engine(url)  # as a later `dsdb plan` would
    assert fingerprint_database(fresh, previous=first) == first
    assert fingerprint_database(fresh, ["other"], previous=first).tables == {
        "other": first.tables["other"]
    }
    fresh.dispose()


def test_sqlite_reads_again_when_previous_lacks_a_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data.db'}")
    make_table(engine, "flights", FLIGHTS)
    make_table(engine, "other", FLIGHTS[:2])
    partial = fingerprint_database(engine, ["flights"])

    assert set(fingerprint_database(engine, previous=partial).tables) == {"flights", "other"}
    _no_data_reads(monkeypatch)
    with pytest.raises(AssertionError, match="table data was read"):
        fingerprint_database(engine, ["other"], previous=partial)
    engine.dispose()


def test_sqlite_change_is_seen_even_with_size_and_mtime_restored(tmp_path: Path) -> None:
    path = tmp_path / "data.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    flights = make_table(engine, "flights", FLIGHTS)
    first = fingerprint_database(engine)
    stat = path.stat()

    run(engine, flights.update().where(flights.c.carrier == "DL").values(carrier="XX"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `touch -d` or a copy tool
    assert path.stat().st_size == stat.st_size

    second = fingerprint_database(engine, previous=first)
    assert second.token != first.token
    assert describe_changes(first, second) == ["table flights: content changed, still 4 rows"]
    engine.dispose()


def test_sqlite_wal_mode_commits_are_seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data.db"
    writer = sqlite3.connect(path)  # stays open, so commits stay in the WAL, not the file
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE flights (id INTEGER, carrier TEXT)")
    writer.execute("INSERT INTO flights VALUES (1, 'UA'), (2, 'AA')")
    writer.commit()
    engine = sa.create_engine(f"sqlite:///{path}")
    first = fingerprint_database(engine)

    writer.execute("UPDATE flights SET carrier = 'DL' WHERE id = 2")
    writer.commit()
    second = fingerprint_database(engine, previous=first)
    assert describe_changes(first, second) == ["table flights: content changed, still 2 rows"]

    _no_data_reads(monkeypatch)
    assert fingerprint_database(engine, previous=second) == second
    writer.close()
    engine.dispose()


def test_sqlite_in_memory_has_no_token() -> None:
    engine = sa.create_engine("sqlite://")
    make_table(engine, "flights", FLIGHTS)
    result = fingerprint_database(engine)
    assert result.token is None
    assert result.tables["flights"].rows == 4
    engine.dispose()


# --- values ----------------------------------------------------------------------------------


def _py(rows: int, digest: str) -> TableFingerprint:
    return TableFingerprint(rows, ChecksumMethod.PYTHON_ROW_HASH, digest)


def test_describe_changes() -> None:
    old = Fingerprint(
        {
            "flights": _py(336_776, "a"),
            "old": _py(3, "b"),
            "same": _py(5, "c"),
            "edited": _py(10, "d"),
            "upgraded": TableFingerprint(7, ChecksumMethod.POSTGRESQL_ROW_MD5, "0f"),
        },
        token="t1",
    )
    new = Fingerprint(
        {
            "flights": _py(337_001, "x"),
            "tmp": _py(5, "y"),
            "one": _py(1, "z"),
            "same": _py(5, "c"),
            "edited": _py(10, "e"),
            "upgraded": TableFingerprint(7, ChecksumMethod.POSTGRESQL_ROW_HASH, "0f"),
        },
        token="t2",
    )
    assert describe_changes(old, new) == [
        "table edited: content changed, still 10 rows",
        "table flights changed: 336,776 → 337,001 rows",
        "table old removed",
        "table one added (1 row)",
        "table tmp added (5 rows)",
        "table upgraded: recorded by an older dsdb (pg1, now pg3), so a change cannot be ruled"
        " out (7 rows)",
    ]
    moved_token = Fingerprint(dict(old.tables), token="other")
    assert moved_token == old  # the token is a cache key, not data
    assert describe_changes(old, moved_token) == []


def _row_digest(*rows: tuple[Any, ...]) -> str:
    digest = RowDigest()
    digest.add(list(rows))
    return digest.result().checksum


def test_row_digest_tells_every_storage_class_apart() -> None:
    values: list[Any] = [1, 1.0, "1", b"1", None, "None", "", b"", 0.0, -0.0, True, 2**70]
    assert len({_row_digest((value,)) for value in values}) == len(values)
    assert _row_digest(("a", "b")) != _row_digest(("ab", ""))
    assert _row_digest((1,), (2,)) == _row_digest((2,), (1,))


def test_row_digest_hashes_values_marshal_cannot_encode_by_their_text() -> None:
    """Such a row is hashed by its ascii() text; it cannot collide with a row holding that text,
    and a chunk that mixes both kinds hashes each row as it would alone."""
    dated = (Decimal("1.50"), datetime(2024, 1, 2, tzinfo=UTC))
    assert _row_digest(dated) != _row_digest((ascii(dated),))
    assert _row_digest(dated) != _row_digest((Decimal("1.5"), datetime(2024, 1, 2, tzinfo=UTC)))
    mixed = RowDigest()
    mixed.add([(1, "x"), dated])
    apart = RowDigest()
    apart.add([(1, "x")])
    apart.add([dated])
    assert mixed.result() == apart.result()


def test_row_digest_is_the_same_in_another_process() -> None:
    """No per-process state (string hash seeds, interning, object identity) leaks into it."""
    rows = [(1, "ünïcode", 2.5, b"\x00\xff", None, 2**64), (2, "a" * 300, -0.0, b"", "", -(2**70))]
    script = (
        "from dsdb_plan.checksum import RowDigest; d = RowDigest(); "
        f"d.add({rows!r}); print(d.result().checksum)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert other.stdout.strip() == _row_digest(*rows)


def test_round_trip_through_json() -> None:
    value = Fingerprint(
        {
            "b": _py(2, "ff"),
            "a": TableFingerprint(0, ChecksumMethod.POSTGRESQL_ROW_HASH, "00", "pgx1:0"),
        },
        "tok",
    )
    text = json.dumps(value.to_dict())
    assert list(json.loads(text)["tables"]) == ["a", "b"]  # stable output for state and plans
    assert Fingerprint.from_dict(json.loads(text)) == value
    assert Fingerprint.from_dict(json.loads(text)).tables["a"].token == "pgx1:0"
    assert "token" not in value.tables["b"].to_dict()  # records without one keep their shape
    assert Fingerprint.from_dict(Fingerprint({}, None).to_dict()) == Fingerprint({}, None)


def test_a_checksum_by_a_retired_method_reads_as_a_change_once() -> None:
    """State written by an older dsdb (`pg2:`, `py1:`, or no method at all) loads, keeps its
    text when written back, and compares equal to nothing made now: the plan says so."""
    for recorded in ("pg2:00ff", "py1:abc", "checksum-without-method"):
        old = Fingerprint.from_dict({"tables": {"t": {"rows": 3, "checksum": recorded}}})
        assert old.tables["t"].method is ChecksumMethod.RETIRED
        assert old.to_dict()["tables"]["t"]["checksum"] == recorded
        now = Fingerprint({"t": _py(3, recorded.partition(":")[2])})
        assert old != now
        name = recorded.partition(":")[0]
        assert describe_changes(old, now) == [
            f"table t: recorded by an older dsdb ({name}, now py2), so a change cannot be"
            " ruled out (3 rows)"
        ]


def test_counts_recorded_with_a_table_token_tell_a_moved_table_from_an_unknown_one() -> None:
    counted_with = {"rows": 3, "checksum": "counted:", "token": "pages:1"}
    now = Fingerprint({"t": _py(3, "ab")})
    with_token = Fingerprint.from_dict({"tables": {"t": counted_with}})
    assert describe_changes(with_token, now) == [
        "table t: its pages changed since it was first copied, still 3 rows"
    ]
    without = Fingerprint.from_dict({"tables": {"t": {"rows": 3, "checksum": "counted:"}}})
    assert describe_changes(without, now) == [
        "table t: its rows were only counted when it was first copied, so a change cannot be"
        " ruled out (3 rows)"
    ]


def test_method_names_in_state_never_change() -> None:
    """State holds these names; renaming one would make every recorded checksum a change."""
    assert {method.value for method in ChecksumMethod} == {
        "pg3", "pg1", "my3", "my1", "py2", "portable3", "counted", "retired"
    }  # fmt: skip


def test_every_method_reads_back_as_itself() -> None:
    for method in ChecksumMethod:
        if method is ChecksumMethod.RETIRED:
            continue
        made = TableFingerprint(1, method, "0a")
        assert made.checksum == f"{method.value}:0a"
        assert TableFingerprint.from_dict(made.to_dict()) == made


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"tables": []},
        {"tables": {"a": {"rows": "2", "checksum": "x"}}},
        {"tables": {"a": {"rows": True, "checksum": "x"}}},
        {"tables": {"a": {"rows": 2}}},
        {"tables": {}, "token": 5},
        {"tables": {"a": {"rows": 2, "checksum": "x", "token": 5}}},
    ],
)
def test_malformed_fingerprints_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises(DsdbError, match="malformed fingerprint"):
        Fingerprint.from_dict(data)


# --- fingerprinting what a backup reads --------------------------------------------------------


def _backed_up(engine: sa.Engine, folder: Path, previous: Fingerprint | None = None) -> Fingerprint:
    """The fingerprint a backup of every table records: taken while it reads the rows."""
    reading = FingerprintWhileReading(engine, None, previous=previous)
    info = write_backup(engine, folder, "backup", observer=reading)
    return reading.result(info.table_names)


def test_a_backup_fingerprints_its_rows_as_fingerprint_database_does(
    engine: sa.Engine, tmp_path: Path
) -> None:
    make_table(engine, "flights", FLIGHTS)
    make_table(engine, "empty")
    columns = [(name, sa.String(30)) for name in HOSTILE_COLUMNS]
    make_table(engine, HOSTILE_TABLE, [dict.fromkeys(HOSTILE_COLUMNS, "x'\n\"y")], columns)
    typed = (("n", sa.Numeric(20, 4)), ("b", sa.LargeBinary()), ("at", sa.DateTime()))
    rows = [{"n": Decimal("-12.5000"), "b": b"\x00\xff", "at": datetime(2024, 2, 29, 1, 2, 3)}]
    make_table(engine, "typed", [*rows, dict.fromkeys(("n", "b", "at"))], typed)

    recorded = _backed_up(engine, tmp_path / "backups")
    assert recorded.to_dict() == fingerprint_database(engine).to_dict()
    assert set(recorded.tables) == {"flights", "empty", HOSTILE_TABLE, "typed"}


def test_sqlite_backup_hashes_mixed_storage_classes_as_fingerprint_database_does(
    tmp_path: Path,
) -> None:
    """One SQLite column may hold every storage class; the row hook sees the driver's values."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE anything (id INTEGER PRIMARY KEY, v, w TEXT)")
        for key, value in enumerate([None, 1, 2**62, -0.0, 1e308, "", "é😀\n", b"", b"\x00"]):
            conn.exec_driver_sql("INSERT INTO anything VALUES (?, ?, ?)", (key, value, value))
    assert _backed_up(engine, tmp_path / "b").to_dict() == fingerprint_database(engine).to_dict()
    engine.dispose()


def test_sqlite_backup_fingerprints_data_changed_since_the_plan_in_its_own_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data.db'}")
    flights = make_table(engine, "flights", FLIGHTS)
    planned = fingerprint_database(engine)
    run(engine, flights.insert().values(id=5, carrier="B6", delay=3.0))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the table was read apart from the backup")

    # The pages that changed since the plan are read again; the table is not read apart.
    monkeypatch.setattr(fp, "_fingerprint", refuse)
    monkeypatch.setattr(fp, "read_chunks", refuse)
    recorded = _backed_up(engine, tmp_path / "backups", previous=planned)
    monkeypatch.undo()
    assert recorded.to_dict() == fingerprint_database(engine).to_dict()
    assert recorded.tables["flights"].rows == 5
    engine.dispose()


def test_sqlite_backup_hashes_the_rows_it_reads_where_pages_cannot_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data.db'}")
    flights = make_table(engine, "flights", FLIGHTS)
    planned = fingerprint_database(engine)
    run(engine, flights.insert().values(id=5, carrier="B6", delay=3.0))

    monkeypatch.setattr(type(engine_for("sqlite")), "table_checksum", lambda *args: None)
    recorded = _backed_up(engine, tmp_path / "backups", previous=planned)
    monkeypatch.undo()
    assert recorded.to_dict() == fingerprint_database(engine).to_dict()
    assert recorded.tables["flights"].rows == 5
    engine.dispose()


def test_sqlite_backup_of_unchanged_data_reuses_the_planned_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data.db'}")
    make_table(engine, "flights", FLIGHTS)
    planned = fingerprint_database(engine)

    def refuse(*args: object) -> None:
        raise AssertionError("rows were hashed")

    monkeypatch.setattr(fp.RowDigest, "add", refuse)
    assert _backed_up(engine, tmp_path / "backups", previous=planned).to_dict() == planned.to_dict()
    engine.dispose()
