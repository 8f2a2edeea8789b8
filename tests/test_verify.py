"""Portable verification: a faithful copy verifies equal across dialects; any change does not."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dsdb_plan.checksum import ChecksumMethod
from dsdb_plan.dbschema import build_tables, create_tables
from dsdb_plan.fingerprint import fingerprint_query
from dsdb_plan.migrate.digest import SubsetDigest
from dsdb_plan.migrate.subset import TableSelection, select_subset, select_tables
from dsdb_plan.migrate.verify import native_digest, subset_digest, verify_table
from dsdb_plan.models import MigrationTable
from dsdb_plan.values import row_converter
from tests.helpers import database

AWKWARD = """
CREATE TABLE awkward (
    id INTEGER PRIMARY KEY,
    big BIGINT,
    f REAL,
    d NUMERIC(20, 6),
    t TEXT,
    b BLOB,
    day DATE,
    at DATETIME,
    atz TIMESTAMP WITH TIME ZONE,
    tm TIME,
    flag BOOLEAN,
    j JSON
)
"""
ROWS = [
    (
        1,
        2**62,
        -0.0,
        "1.50",
        "",
        b"",
        "2024-01-02",
        "2024-01-02 03:04:05",
        "2024-01-02 03:04:05+02:00",
        "10:11:12",
        1,
        '{"b": 1, "a": [1, 2.5, "x"]}',
    ),
    (
        2,
        -(2**62),
        0.1 + 0.2,
        "12345678901234.123456",
        "naïve 'quoted' \"text\"; ✈ 🎉",
        b"\x00\xff",
        "1999-12-31",
        "2024-01-02 03:04:05.123456",
        "2024-06-30 23:59:59.5+00:00",
        "23:59:59.999999",
        0,
        "[]",
    ),
    (3, None, 1e300, "-0.000001", "None", b"bytes", None, None, None, None, None, None),
    (
        4,
        0,
        5e-324,
        "0",
        "  trailing  ",
        None,
        "2000-02-29",
        "2000-02-29 00:00:00",
        "2000-02-29 12:00:00-05:30",
        "00:00:00",
        1,
        '{"z": null, "a": {"c": true}}',
    ),
]


def source_db(path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql(AWKWARD)
        conn.exec_driver_sql("CREATE TABLE pairs (a INTEGER, b TEXT, v REAL, PRIMARY KEY (a, b))")
        conn.exec_driver_sql("CREATE TABLE loose (x INTEGER, y TEXT)")
        placeholders = ", ".join("?" * len(ROWS[0]))
        conn.exec_driver_sql(f"INSERT INTO awkward VALUES ({placeholders})", ROWS)
        conn.exec_driver_sql(
            "INSERT INTO pairs VALUES (1, 'a', 0.5), (1, 'b', 1.5), (2, 'a', 2.5), (3, 'z', 3.5)"
        )
        conn.exec_driver_sql("INSERT INTO loose VALUES (1, 'x'), (1, 'x'), (2, NULL)")
    return engine


def copy(source: sa.Engine, selection: TableSelection, target: sa.Engine) -> None:
    """A plain copy: create the table, convert each row with values.row_converter, insert."""
    create_tables(target, [selection.schema], rename={selection.name: selection.target})
    table: sa.TableClause = sa.table(selection.target, *(sa.column(c) for c in selection.columns))
    if target.dialect.name != "sqlite":  # typed columns, so JSON goes in as JSON
        rename = {selection.name: selection.target}
        table = build_tables(target.dialect, [selection.schema], rename=rename)[1][selection.name]
    convert = row_converter(selection.schema, source.dialect.name, target.dialect.name)
    json_columns = {c.name for c in selection.schema.columns if c.type == "json"}
    with source.connect() as src, target.begin() as dst:
        for row in src.execute(select_subset(selection)):
            values = dict(zip(selection.columns, convert(row), strict=True))
            for name in json_columns & values.keys():  # typed JSON columns serialise objects
                if target.dialect.name != "sqlite":
                    raw = values[name]
                    values[name] = sa.null() if raw is None else json.loads(raw)
            dst.execute(sa.insert(table).values(values))


def pick(engine: sa.Engine, name: str, **spec: Any) -> TableSelection:
    (selection,) = select_tables(engine, {name: MigrationTable.model_validate(spec)}, "none")
    return selection


def check(
    source: sa.Engine,
    selection: TableSelection,
    target: sa.Engine,
    *,
    exact: bool,
    name: str | None = None,
) -> Any:
    with source.connect() as src, target.connect() as dst:
        return verify_table(src, selection, dst, name or selection.target, exact=exact)


def run(target: sa.Engine, sql: str, params: Sequence[Any] = ()) -> None:
    with target.begin() as conn:
        conn.exec_driver_sql(sql, tuple(params) if params else ())


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "mariadb"])
def test_faithful_copy_of_awkward_values_verifies_equal(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    source = source_db(tmp_path / "source.db")
    (tmp_path / "target").mkdir()
    target = database(request, tmp_path / "target", kind)
    selection = pick(source, "awkward")
    copy(source, selection, target)
    for exact in (True, False):
        result = check(source, selection, target, exact=exact)
        assert result.ok, result.message
        assert result.source == result.target
        assert result.source.rows == 4
        # Between two SQLite files the fingerprint SQLite tables get decides; across kinds
        # of database, the portable digest.
        native = kind == "sqlite" and exact
        method = ChecksumMethod.PYTHON_ROW_HASH if native else ChecksumMethod.PORTABLE
        assert result.source.method is method
    assert result.message == "target awkward matches the source subset (4 rows)"
    target.dispose()


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_changes_are_detected_with_clear_messages(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    source = source_db(tmp_path / "source.db")
    target = database(request, tmp_path, kind)
    selection = pick(source, "awkward")
    copy(source, selection, target)
    q = target.dialect.identifier_preparer.quote
    ph = "%s"

    one_ulp_more = math.nextafter(0.1 + 0.2, 1.0)
    run(target, f"UPDATE awkward SET {q('f')} = {ph} WHERE id = 2", [one_ulp_more])
    for exact in (True, False):
        result = check(source, selection, target, exact=exact)
        assert not result.ok
    assert check(source, selection, target, exact=True).message == (
        "target awkward has all 4 rows but content differs"
    )
    assert check(source, selection, target, exact=False).message == (
        "target awkward has all 4 rows (matched by id) but content differs"
    )

    run(target, f"UPDATE awkward SET {q('f')} = {ph} WHERE id = 2", [0.1 + 0.2])
    assert check(source, selection, target, exact=True).ok
    run(target, "DELETE FROM awkward WHERE id = 3")
    assert check(source, selection, target, exact=True).message == (
        "target awkward has 3 of 4 rows; content differs"
    )
    assert check(source, selection, target, exact=False).message == (
        "target awkward has 3 of 4 rows (matched by id); content differs"
    )
    target.dispose()


def test_extra_target_rows_ignored_unless_exact(tmp_path: Path) -> None:
    source = source_db(tmp_path / "source.db")
    target = sa.create_engine(f"sqlite:///{tmp_path / 'target.db'}")
    selection = pick(source, "pairs", where={"a": {"lte": 2}}, rename_to="pairs copy")
    copy(source, selection, target)
    assert check(source, selection, target, exact=True).ok
    run(target, "INSERT INTO \"pairs copy\" VALUES (9, 'q', 1.0), (3, 'z', 3.5)")
    keyed = check(source, selection, target, exact=False)  # composite key: tuple IN
    assert keyed.ok and keyed.target.rows == 3, keyed.message
    exact = check(source, selection, target, exact=True)
    assert not exact.ok
    assert exact.message == (
        "target pairs copy has 5 rows, 2 more than the 3 rows of the source subset"
    )
    run(target, 'UPDATE "pairs copy" SET v = 2.75 WHERE a = 2')
    assert not check(source, selection, target, exact=False).ok


def test_without_key_verification_is_exact(tmp_path: Path) -> None:
    source = source_db(tmp_path / "source.db")
    target = sa.create_engine(f"sqlite:///{tmp_path / 'target.db'}")
    selection = pick(source, "loose")
    assert selection.key == ()
    copy(source, selection, target)
    assert check(source, selection, target, exact=False).ok  # duplicate rows count twice
    run(target, "DELETE FROM loose WHERE rowid = (SELECT min(rowid) FROM loose WHERE x = 1)")
    result = check(source, selection, target, exact=False)
    assert not result.ok and result.message == "target loose has 2 of 3 rows; content differs"


def test_missing_target_and_order_independence(tmp_path: Path) -> None:
    source = source_db(tmp_path / "source.db")
    target = sa.create_engine(f"sqlite:///{tmp_path / 'target.db'}")
    selection = pick(source, "pairs")
    result = check(source, selection, target, exact=True)
    assert not result.ok and result.message == "target table pairs does not exist"
    run(target, "CREATE TABLE pairs (v REAL, b TEXT, a INTEGER)")  # other column order
    run(
        target,
        "INSERT INTO pairs VALUES (3.5, 'z', 3), (2.5, 'a', 2), (1.5, 'b', 1), (0.5, 'a', 1)",
    )
    assert check(source, selection, target, exact=True).ok
    with source.connect() as conn:
        assert native_digest(conn, selection) == check(source, selection, target, exact=True).target


def test_same_kind_compares_fingerprints_without_the_portable_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = source_db(tmp_path / "source.db")
    target = sa.create_engine(f"sqlite:///{tmp_path / 'target.db'}")
    selection = pick(source, "awkward", where={"id": {"gt": 1}})
    copy(source, selection, target)

    def portable_digest(*_: Any) -> None:
        raise AssertionError("the portable digest was taken")

    with monkeypatch.context() as patch:
        patch.setattr(SubsetDigest, "add", portable_digest)
        result = check(source, selection, target, exact=True)
    assert result.ok, result.message
    assert result.source.rows == 3 and result.source.method is ChecksumMethod.PYTHON_ROW_HASH
    with source.connect() as conn:
        assert result.source == native_digest(conn, selection)

    run(target, "UPDATE awkward SET t = 'changed' WHERE id = 3")
    result = check(source, selection, target, exact=True)
    assert not result.ok and result.message == "target awkward has all 3 rows but content differs"


def test_same_kind_typed_differently_falls_back_to_the_portable_digest(tmp_path: Path) -> None:
    source = sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}")
    target = sa.create_engine(f"sqlite:///{tmp_path / 'target.db'}")
    run(source, "CREATE TABLE nums (id INTEGER PRIMARY KEY, n NUMERIC)")
    run(source, "INSERT INTO nums VALUES (1, 2), (2, 2.5)")
    run(target, "CREATE TABLE nums (id INTEGER PRIMARY KEY, n REAL)")  # stores 2 as 2.0
    run(target, "INSERT INTO nums VALUES (1, 2), (2, 2.5)")
    selection = pick(source, "nums")
    nums = sa.table("nums", sa.column("id"), sa.column("n"))
    with source.connect() as src, target.connect() as dst:
        stored_alike = native_digest(src, selection) == fingerprint_query(
            dst, sa.select(*nums.c), "nums"
        )
    assert not stored_alike
    result = check(source, selection, target, exact=True)
    assert result.ok, result.message
    assert result.source == result.target and result.source.method is ChecksumMethod.PORTABLE


def test_postgresql_to_postgresql_compares_fingerprints(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server = database(request, tmp_path, "postgresql")
    sqlite_source = source_db(tmp_path / "source.db")
    copy(sqlite_source, pick(sqlite_source, "awkward"), server)
    selection = pick(server, "awkward", rename_to="awkward_copy")
    copy(server, selection, server)
    result = check(server, selection, server, exact=True)
    assert result.ok, result.message
    assert result.source.rows == 4 and result.source.method is ChecksumMethod.POSTGRESQL_ROW_MD5

    run(server, "UPDATE awkward_copy SET d = d + 0.000001 WHERE id = 2")
    result = check(server, selection, server, exact=True)
    assert not result.ok
    assert result.message == "target awkward_copy has all 4 rows but content differs"
    server.dispose()


def test_a_recorded_subset_fingerprint_is_retaken_by_its_own_method(tmp_path: Path) -> None:
    source = source_db(tmp_path / "source.db")
    selection = pick(source, "pairs", where={"a": {"lte": 2}})
    with source.connect() as conn:
        portable, native = subset_digest(conn, selection), native_digest(conn, selection)
        assert portable.method is ChecksumMethod.PORTABLE
        assert native.method is ChecksumMethod.PYTHON_ROW_HASH
        assert subset_digest(conn, selection, like=portable) == portable
        assert subset_digest(conn, selection, like=native) == native


def test_an_in_memory_source_is_digested_in_its_own_thread(tmp_path: Path) -> None:
    """The two sides are digested at once where they can be; an in-memory SQLite source
    serves only the thread that opened it, so its side is digested there, before the other."""
    source = sa.create_engine("sqlite://")
    run(source, "CREATE TABLE pairs (a INTEGER, b TEXT, v REAL, PRIMARY KEY (a, b))")
    run(source, "INSERT INTO pairs VALUES (1, 'a', 0.5), (2, 'b', 1.5)")
    target = sa.create_engine(f"sqlite:///{tmp_path / 'target.db'}")
    selection = pick(source, "pairs")
    copy(source, selection, target)
    assert check(source, selection, target, exact=True).ok
    assert check(source, selection, target, exact=False).ok
    run(target, "UPDATE pairs SET v = 2.5 WHERE a = 2")
    assert not check(source, selection, target, exact=True).ok
