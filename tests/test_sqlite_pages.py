"""SQLite fingerprints by pages: the same checksum as hashing every row, read again only where
pages changed, and every change seen (property tests over values, types and row moves)."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsdb_plan.checksum import ChecksumMethod, RowDigest, TableFingerprint, row_hash_sum
from dsdb_plan.engines import sqlite_pages
from dsdb_plan.fingerprint import fingerprint_database

BIG = "x" * 20_000  # spills into overflow pages


def _connect(path: Path) -> sqlite3.Connection:
    raw = sqlite3.connect(path, isolation_level=None)  # each statement its own transaction
    raw.execute("PRAGMA synchronous = OFF")  # and none waits for the disk
    return raw


def _every_row(raw: sqlite3.Connection, table: str = "t") -> TableFingerprint:
    """The checksum of hashing every row, as the plain Python path does."""
    digest = RowDigest()
    digest.add(raw.execute(f"SELECT * FROM {table}").fetchall())
    return digest.result()


def _by_pages(raw: sqlite3.Connection, table: str = "t") -> TableFingerprint | None:
    columns = [row[1] for row in raw.execute(f"PRAGMA table_info({table})")]
    return sqlite_pages.table_checksum(raw, table, columns)


def _count_hashed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    hashed = [0]
    real = row_hash_sum

    def counting(rows: Sequence[tuple[Any, ...]]) -> int:
        hashed[0] += len(rows)
        return real(rows)

    monkeypatch.setattr(sqlite_pages, "row_hash_sum", counting)
    return hashed


def _filled(path: Path, rows: int = 20_000) -> sqlite3.Connection:
    raw = _connect(path)
    raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)")
    raw.execute("BEGIN")
    raw.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?)",
        [
            (i, BIG if i % 500 == 0 else f"name {i}", i / 7, bytes([i % 256]) * 20)
            for i in range(rows)
        ],
    )
    raw.execute("COMMIT")
    return raw


CHANGES: list[tuple[str, Callable[[sqlite3.Connection], Any]]] = [
    ("one value, same size", lambda c: c.execute("UPDATE t SET name = 'name 9999' WHERE id = 17")),
    (
        "the end of a value in an overflow page",
        lambda c: c.execute("UPDATE t SET name = substr(name, 1, 19999) || 'y' WHERE id = 1000"),
    ),
    (
        "a type, not a value",
        lambda c: c.execute("UPDATE t SET data = CAST(data AS TEXT) WHERE id = 65"),
    ),
    ("NULL for ''", lambda c: c.execute("UPDATE t SET name = NULL WHERE id = 33")),
    ("a row deleted", lambda c: c.execute("DELETE FROM t WHERE id = 2500")),
    ("a row moved", lambda c: c.execute("UPDATE t SET id = 100000 WHERE id = 4")),
    ("a row added", lambda c: c.execute("INSERT INTO t VALUES (-5, 'new', 1.5, x'00')")),
]


@pytest.mark.parametrize("change", [c[1] for c in CHANGES], ids=[c[0] for c in CHANGES])
def test_each_change_is_seen_reading_only_the_pages_it_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Callable[[sqlite3.Connection], Any]
) -> None:
    raw = _filled(tmp_path / "data.db")
    raw.execute("UPDATE t SET name = '' WHERE id = 33")
    first = _by_pages(raw)
    assert first == _every_row(raw) and first is not None
    assert first.method is ChecksumMethod.PYTHON_ROW_HASH and first.rows == 20_000
    hashed = _count_hashed(monkeypatch)

    change(raw)
    after = _by_pages(raw)
    assert after == _every_row(raw) and after != first
    assert 0 < hashed[0] < 20_000 / 2  # the rows of the runs of leaves it touched, not all
    hashed[0] = 0
    assert _by_pages(raw) == after and hashed[0] == 0  # nothing changed: nothing read


@pytest.mark.parametrize("change", [c[1] for c in CHANGES], ids=[c[0] for c in CHANGES])
def test_a_tables_token_moves_with_each_change_and_reads_no_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Callable[[sqlite3.Connection], Any]
) -> None:
    raw = _filled(tmp_path / "data.db")
    raw.execute("CREATE TABLE other (id INTEGER PRIMARY KEY, v TEXT)")
    columns = ["id", "name", "score", "data"]
    hashed = _count_hashed(monkeypatch)
    first = sqlite_pages.table_token(raw, "t", columns)
    other = sqlite_pages.table_token(raw, "other", ["id", "v"])
    assert first is not None and first.startswith("pages:")
    assert sqlite_pages.table_token(raw, "t", columns) == first

    change(raw)
    assert sqlite_pages.table_token(raw, "t", columns) != first
    assert sqlite_pages.table_token(raw, "other", ["id", "v"]) == other
    assert hashed[0] == 0


def test_a_table_without_a_rowid_to_read_has_no_token(tmp_path: Path) -> None:
    raw = _connect(tmp_path / "data.db")
    raw.execute("CREATE TABLE t (rowid INT, oid INT, _rowid_ INT)")
    assert sqlite_pages.table_token(raw, "t", ["rowid", "oid", "_rowid_"]) is None


@pytest.mark.parametrize(
    "layout",
    [
        "PRAGMA page_size = 512",  # a b-tree four levels deep, most values in overflow pages
        "PRAGMA auto_vacuum = FULL",  # pages move at every commit that frees one
    ],
)
def test_every_change_is_seen_in_deep_and_self_vacuuming_files(tmp_path: Path, layout: str) -> None:
    raw = _connect(tmp_path / "data.db")
    raw.execute(layout)
    raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, data BLOB)")
    raw.execute("BEGIN")
    raw.executemany(
        "INSERT INTO t VALUES (?, ?, ?)",
        [(i, BIG[: i % 3000], bytes([i % 256]) * (i % 40)) for i in range(8_000)],
    )
    raw.execute("COMMIT")
    seen = [_by_pages(raw)]
    assert seen[0] == _every_row(raw)
    for change in (
        "UPDATE t SET name = name || 'z' WHERE id = 4000",  # in the middle
        "UPDATE t SET data = x'01' WHERE id = 7999",  # the last row
        "UPDATE t SET name = substr(name, 1, 2998) || 'q' WHERE id = 2999",  # an overflow page
        "DELETE FROM t WHERE id BETWEEN 1000 AND 3000",  # pages freed, and moved
        "INSERT INTO t SELECT id + 100000, name, data FROM t WHERE id < 500",
        "UPDATE t SET name = 'x' WHERE id = 4001",
    ):
        raw.execute(change)
        now = _by_pages(raw)
        assert now == _every_row(raw) and now not in seen, change
        seen.append(now)
        assert _by_pages(raw) == now


def test_a_wal_database_with_an_open_writer_is_read_whole_and_every_change_seen(
    tmp_path: Path,
) -> None:
    writer = _filled(tmp_path / "data.db", rows=2_000)
    writer.execute("PRAGMA journal_mode = WAL")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data.db'}")
    first = fingerprint_database(engine, ["t"])
    writer.execute("UPDATE t SET name = 'in the WAL only' WHERE id = 1500")  # not checkpointed
    assert _by_pages(writer) is None
    after = fingerprint_database(engine, ["t"], previous=first)
    assert after.tables["t"] == _every_row(writer) and after != first
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # into the file: read by pages again
    assert _by_pages(writer) == after.tables["t"]
    engine.dispose()
    writer.close()


def test_a_column_added_changes_every_row_without_writing_a_page(tmp_path: Path) -> None:
    raw = _filled(tmp_path / "data.db", rows=50)
    before = _by_pages(raw)
    raw.execute("ALTER TABLE t ADD COLUMN extra TEXT DEFAULT 'd'")
    after = _by_pages(raw)
    assert after == _every_row(raw) and after != before


def test_vacuum_and_a_change_undone_give_the_first_checksum_again(tmp_path: Path) -> None:
    raw = _filled(tmp_path / "data.db")
    first = _by_pages(raw)
    raw.execute("UPDATE t SET name = 'other' WHERE id = 10")
    assert _by_pages(raw) != first
    raw.execute("UPDATE t SET name = 'name 10' WHERE id = 10")
    raw.execute("VACUUM")
    assert _by_pages(raw) == first


def test_a_broken_or_foreign_cache_costs_only_a_full_read(tmp_path: Path) -> None:
    raw = _filled(tmp_path / "data.db", rows=300)
    expected = _every_row(raw)
    cache = sqlite_pages._cache_file(str(tmp_path / "data.db"), "t")
    cache.parent.mkdir(parents=True, exist_ok=True)
    for junk in (b"", b"not marshal", b"\xe9\x00\x00\x00", b"N"):
        cache.write_bytes(junk)
        assert _by_pages(raw) == expected


@pytest.mark.parametrize(
    "setup",
    [
        "PRAGMA journal_mode = WAL",  # the newest pages are in the WAL
        "CREATE TABLE w (id INTEGER PRIMARY KEY, v TEXT) WITHOUT ROWID",
    ],
)
def test_where_pages_cannot_be_read_soundly_every_row_is(tmp_path: Path, setup: str) -> None:
    raw = _filled(tmp_path / "data.db", rows=10)
    raw.execute(setup)
    table = "w" if "WITHOUT" in setup else "t"
    raw.execute(f"INSERT INTO {table} (id) VALUES (1000)")
    assert _by_pages(raw, table) is None
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data.db'}")
    assert fingerprint_database(engine, [table]).tables[table] == _every_row(raw, table)
    engine.dispose()


def test_a_wal_database_no_connection_writes_to_is_read_by_pages(tmp_path: Path) -> None:
    raw = _filled(tmp_path / "data.db", rows=300)
    raw.execute("PRAGMA journal_mode = WAL")
    raw.execute("UPDATE t SET name = 'in the WAL' WHERE id = 7")
    raw.close()  # the last connection checkpoints and removes the WAL
    reader = _connect(tmp_path / "data.db")
    assert _by_pages(reader) == _every_row(reader)
    assert _by_pages(reader) is not None
    reader.close()


def test_in_memory_and_rowid_named_columns_are_read_whole() -> None:
    raw = sqlite3.connect(":memory:")
    raw.execute("CREATE TABLE t (a)")
    assert sqlite_pages.table_checksum(raw, "t", ["a"]) is None
    assert sqlite_pages.table_checksum(raw, "t", ["_rowid_", "rowid", "oid"]) is None


# --- properties ------------------------------------------------------------------------------

VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.binary(max_size=30),
    st.sampled_from([0, 1, 1.0, "1", "", b"", 0.0, -0.0, "NULL", b"1"]),
)
ROWS = st.lists(st.tuples(VALUES, VALUES), min_size=1, max_size=40)


def _mutations(rows: list[tuple[Any, Any]]) -> st.SearchStrategy[list[tuple[Any, Any]]]:
    """Another table: one value replaced (by any value, a type change included), two values
    swapped between rows or columns, a row dropped or duplicated."""
    index = st.integers(min_value=0, max_value=len(rows) - 1)

    def replaced(at: int, column: int, value: Any) -> list[tuple[Any, Any]]:
        row = list(rows[at])
        row[column] = value
        return [*rows[:at], (row[0], row[1]), *rows[at + 1 :]]

    def swapped(a: int, b: int, column: int) -> list[tuple[Any, Any]]:
        changed = [list(row) for row in rows]
        changed[a][column], changed[b][1 - column] = changed[b][1 - column], changed[a][column]
        return [(row[0], row[1]) for row in changed]

    return st.one_of(
        st.builds(replaced, index, st.integers(0, 1), VALUES),
        st.builds(swapped, index, index, st.integers(0, 1)),
        st.builds(lambda at: rows[:at] + rows[at + 1 :], index),
        st.builds(lambda at: [*rows, rows[at]], index),
    )


def _stored(raw: sqlite3.Connection) -> list[str]:
    """The table's rows as SQLite returns them, as a sorted multiset of typed values."""
    rows = raw.execute("SELECT a, b FROM t").fetchall()
    return sorted(repr([(type(value).__name__, repr(value)) for value in row]) for row in rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), rows=ROWS)
def test_two_different_tables_never_get_equal_fingerprints(
    data: st.DataObject, rows: list[tuple[Any, Any]]
) -> None:
    other = data.draw(_mutations(rows))
    with tempfile.TemporaryDirectory() as folder:
        raw = _connect(Path(folder) / "data.db")
        raw.execute("CREATE TABLE t (a, b)")  # no declared types: every value kept as given
        raw.executemany("INSERT INTO t VALUES (?, ?)", rows)
        before, stored = _by_pages(raw), _stored(raw)
        raw.execute("DELETE FROM t")
        raw.executemany("INSERT INTO t VALUES (?, ?)", other)
        after = _by_pages(raw)  # the cache of the first table is there: pages compared
        assert after == _every_row(raw)
        assert (after == before) == (_stored(raw) == stored)
        raw.close()
