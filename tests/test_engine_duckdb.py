"""DuckDB, the fourth engine: its rules as values, then DuckDB files as the source and the
target of migrations, backups and restores, compared row by row with the other side."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import dsdb_plan as dsdb
from dsdb_plan.connection import Connection
from dsdb_plan.dbschema import (
    ColumnSchema,
    ForeignKeySchema,
    IndexSchema,
    TableSchema,
    create_tables,
    reflect_tables,
)
from dsdb_plan.engines import engine_for
from dsdb_plan.engines.duckdb import ArrowWriter, DuckDBEngine, index_columns
from dsdb_plan.fingerprint import change_token
from dsdb_plan.values import row_converter
from tests import test_fidelity as fidelity
from tests.helpers import run_cli, table_names, table_rows, through
from tests.servers import ServerDatabase

# -- the rules, as values ----------------------------------------------------------------------


def test_duckdb_declares_what_differs_as_capabilities() -> None:
    duckdb = engine_for("duckdb")
    assert duckdb.name == "DuckDB"
    capabilities = duckdb.capabilities
    assert duckdb.registration.embedded and capabilities.single_writer
    assert not capabilities.adds_constraints_later  # no ALTER TABLE ... ADD FOREIGN KEY
    assert not capabilities.validates_keys_later  # no NOT VALID
    assert capabilities.typed_columns and capabilities.zone_aware_timestamps
    assert capabilities.max_decimal_digits == 38


@pytest.mark.parametrize(
    ("statement", "columns"),
    [
        ('CREATE INDEX ix ON t(a, "b c");', ["a", "b c"]),
        ('CREATE UNIQUE INDEX "i(x)" ON "t, (u)"("se""lect", n);', ['se"lect', "n"]),
        ("CREATE INDEX ix ON t(lower(a), b);", [None, "b"]),
    ],
)
def test_index_columns_are_read_from_the_statement_duckdb_keeps(
    statement: str, columns: list[str | None]
) -> None:
    assert index_columns(statement) == columns


def _duckdb_url(path: Path) -> str:
    return Connection(driver="duckdb", database=str(path)).sqlalchemy_url().render_as_string()


def test_a_schema_created_in_duckdb_reflects_back_the_same(tmp_path: Path) -> None:
    """Types, keys, a self-reference, a composite reference, defaults and indexes, under
    names DuckDB reserves or that need quoting."""
    parent = TableSchema(
        'pa"rent',
        (
            ColumnSchema("id", "bigint", nullable=False, autoincrement=True),
            ColumnSchema("at", "text", nullable=False),
            ColumnSchema("up", "bigint"),
            ColumnSchema("on", "boolean", nullable=False, default="true"),
            ColumnSchema("amount", "decimal", precision=12, scale=2, default="0"),
            ColumnSchema("seen", "datetime", timezone=True, default="CURRENT_TIMESTAMP"),
            ColumnSchema("day", "date"),
            ColumnSchema("t", "time"),
            ColumnSchema("ratio", "double"),
            ColumnSchema("small", "float"),
            ColumnSchema("doc", "json"),
            ColumnSchema("u", "uuid"),
            ColumnSchema("raw", "binary"),
        ),
        primary_key=("id",),
        foreign_keys=(ForeignKeySchema(None, ("up",), 'pa"rent', ("id",)),),
        indexes=(IndexSchema("ix_at", ("at", "day"), unique=True),),
    )
    child = TableSchema(
        "child",
        (
            ColumnSchema("id", "integer", nullable=False),
            ColumnSchema("parent", "bigint"),
            ColumnSchema("label", "text", default="'it''s'"),
        ),
        primary_key=("id",),
        foreign_keys=(ForeignKeySchema(None, ("parent",), 'pa"rent', ("id",)),),
        indexes=(IndexSchema(None, ("label",), unique=False),),
    )
    engine = sa.create_engine(_duckdb_url(tmp_path / "schema.duckdb"))
    create_tables(engine, [child, parent])
    reflected = {table.name: table for table in reflect_tables(engine)}
    assert reflected['pa"rent'] == parent
    assert reflected["child"] == TableSchema(
        "child",
        child.columns,
        ("id",),
        child.foreign_keys,
        (IndexSchema("ix_child_label", ("label",), unique=False),),
    )


def test_an_identity_continues_after_the_copied_keys(tmp_path: Path) -> None:
    source = _sqlite(
        tmp_path / "ids.db",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT); "
        "INSERT INTO t VALUES (1, 'a'), (7, 'b');",
    )
    target = _duckdb_url(tmp_path / "ids.duckdb")
    _migrate(tmp_path, source, target)
    with sa.create_engine(target).begin() as conn:
        conn.exec_driver_sql("INSERT INTO t (label) VALUES ('next')")
        assert conn.exec_driver_sql("SELECT id FROM t WHERE label = 'next'").scalar() == 8


def test_a_driver_with_server_fields_is_refused_naming_the_driver(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duckdb takes only a database path"):
        Connection(driver="duckdb", database="x.duckdb", host="db")


def test_a_relative_path_resolves_against_the_manifest_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, write_manifest: Any
) -> None:
    manifest = write_manifest(
        "version: 1\nconnections:\n"
        "  a: {driver: duckdb, database: data/a.duckdb}\n"
        "  b: {url: 'duckdb:///data/b.duckdb'}\n"
    )
    assert run_cli(capsys, "validate", manifest).code == 0
    a = Connection.model_validate(
        {"driver": "duckdb", "database": "data/a.duckdb"}, context={"base_dir": tmp_path}
    )
    b = Connection.model_validate(
        {"url": "duckdb:///data/b.duckdb"}, context={"base_dir": tmp_path}
    )
    assert a.link == str(tmp_path / "data/a.duckdb")
    assert b.link == str(tmp_path / "data/b.duckdb")
    assert a.is_sqlite_file and b.is_sqlite_file


# -- DuckDB as source and target -------------------------------------------------------------

SOURCE_SQL = """
CREATE TABLE airlines (carrier TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                       active BOOLEAN NOT NULL DEFAULT 1);
CREATE TABLE flights (id INTEGER PRIMARY KEY, carrier TEXT NOT NULL REFERENCES airlines(carrier),
                      previous INTEGER REFERENCES flights(id), fare NUMERIC(10, 2),
                      delay REAL, departs DATETIME, note VARCHAR(20), payload BLOB);
CREATE INDEX flights_carrier ON flights (carrier, departs);
INSERT INTO airlines VALUES ('UA', 'United', 1), ('ua', 'united (lower)', 0),
                            ('AA ', 'American', 1);
"""


def _sqlite(path: Path, script: str) -> str:
    with sqlite3.connect(path) as db:
        db.executescript(script)
    return f"sqlite:///{path}"


def _flights_db(path: Path, flights: int = 300) -> str:
    url = _sqlite(path, SOURCE_SQL)
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO flights VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    ("UA", "ua", "AA ")[i % 3],
                    i - 1 if i > 1 else None,  # a chain of self-references, parents first
                    round(i * 1.25, 2) if i % 7 else None,
                    i / 3 if i % 5 else None,
                    f"2024-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:00:00.{i:06d}",
                    ["x", "x ", "X", None][i % 4],
                    bytes([i % 256, 0, 255]) if i % 2 else None,
                )
                for i in range(1, flights + 1)
            ],
        )
    return url


def _manager(tmp_path: Path, **urls: str) -> dsdb.ConnectionManager:
    mngr = dsdb.ConnectionManager({name: {"url": url} for name, url in urls.items()}, user="t")
    mngr.backup_root = tmp_path / "backups"
    return mngr


def _migrate(tmp_path: Path, source: str, target: str) -> None:
    mngr = _manager(tmp_path, src=source, dst=target)
    try:
        mngr.migrate("src", "dst")
    finally:
        mngr.close()


def _normal(value: Any) -> Any:
    """A value in one form across drivers (SQLite's text timestamps, 0/1 booleans and doubles
    for NUMERIC; memoryviews for bytes), so tables compare row by row."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return value


def _same_tables(source: str, target: str) -> None:
    assert table_names(target) == table_names(source)
    for table in table_names(source):
        found = sorted((tuple(map(_normal, row)) for row in table_rows(target, table)), key=repr)
        wanted = sorted((tuple(map(_normal, row)) for row in table_rows(source, table)), key=repr)
        assert found == wanted, table


def _manifest(source: str, target: str) -> str:
    return (
        "version: 1\nconnections:\n"
        f"  src: {{url: '{source}'}}\n"
        f"  dst: {{url: '{target}'}}\n"
        "backups:\n  nightly: {connection: src}\n"
    )


MIGRATION = "migrations:\n  copy: {from: src, to: dst}\n"
RESTORE = "restores:\n  back: {backup: nightly, to: dst}\n"


def _apply_then_plan_nothing(
    capsys: pytest.CaptureFixture[str], write_manifest: Any, text: str
) -> None:
    """Apply, then re-plan: nothing to do (the second apply would change nothing)."""
    manifest = write_manifest(text)
    applied = run_cli(capsys, "apply", manifest, "--auto-approve")
    assert applied.code == 0, applied.text
    replan = run_cli(capsys, "plan", manifest, "--detailed-exitcode")
    assert replan.code == 0, replan.text


def test_sqlite_to_duckdb_migration_and_back(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, write_manifest: Any
) -> None:
    source = _flights_db(tmp_path / "flights.db")
    target = _duckdb_url(tmp_path / "flights.duckdb")
    _apply_then_plan_nothing(capsys, write_manifest, _manifest(source, target) + MIGRATION)
    _same_tables(source, target)
    # Keys, the unique constraint and the default arrived with the data.
    duck = sa.create_engine(target)
    (airlines,) = reflect_tables(duck, ["airlines"])
    assert airlines.primary_key == ("carrier",)
    assert [(index.columns, index.unique) for index in airlines.indexes] == [(("name",), True)]
    assert airlines.column("active").default == "true"
    (flights,) = reflect_tables(duck, ["flights"])
    assert {fk.ref_table for fk in flights.foreign_keys} == {"airlines", "flights"}

    # And from DuckDB into a new SQLite file: the same rows again.
    back = f"sqlite:///{tmp_path / 'back.db'}"
    _apply_then_plan_nothing(capsys, write_manifest, _manifest(target, back) + MIGRATION)
    _same_tables(source, back)


def test_backup_of_duckdb_restores_into_duckdb(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, write_manifest: Any
) -> None:
    source = _duckdb_url(tmp_path / "source.duckdb")
    _migrate(tmp_path, _flights_db(tmp_path / "flights.db"), source)
    target = _duckdb_url(tmp_path / "restored.duckdb")
    _apply_then_plan_nothing(capsys, write_manifest, _manifest(source, target) + RESTORE)
    _same_tables(source, target)


@pytest.mark.postgres
def test_duckdb_to_postgresql_and_postgresql_to_duckdb(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest: Any,
    postgres_db: ServerDatabase,
) -> None:
    source = _duckdb_url(tmp_path / "source.duckdb")
    _migrate(tmp_path, _flights_db(tmp_path / "flights.db"), source)
    _apply_then_plan_nothing(
        capsys, write_manifest, _manifest(source, postgres_db.url_string) + MIGRATION
    )
    _same_tables(source, postgres_db.url_string)

    back = _duckdb_url(tmp_path / "back.duckdb")
    _apply_then_plan_nothing(
        capsys, write_manifest, _manifest(postgres_db.url_string, back) + MIGRATION
    )
    _same_tables(source, back)


@pytest.mark.mariadb
def test_duckdb_to_mariadb(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest: Any,
    mariadb_db: ServerDatabase,
) -> None:
    source = _duckdb_url(tmp_path / "source.duckdb")
    _migrate(tmp_path, _flights_db(tmp_path / "flights.db"), source)
    target = through(mariadb_db, "mariadb")
    _apply_then_plan_nothing(capsys, write_manifest, _manifest(source, target) + MIGRATION)
    _same_tables(source, target)


@pytest.mark.postgres
def test_a_decimal_wider_than_duckdb_holds_is_a_plan_error_naming_the_column(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest: Any,
    postgres_db: ServerDatabase,
) -> None:
    with postgres_db.engine().begin() as conn:
        conn.exec_driver_sql("CREATE TABLE big (id int PRIMARY KEY, amount numeric(50, 10))")
        conn.exec_driver_sql("INSERT INTO big VALUES (1, 12345678901234567890123456789.5)")
    target = _duckdb_url(tmp_path / "big.duckdb")
    manifest = write_manifest(_manifest(postgres_db.url_string, target) + MIGRATION)
    plan = run_cli(capsys, "plan", manifest)
    assert plan.code == 1
    assert (
        "table 'big': column 'amount' is decimal(50,10): DuckDB's DECIMAL holds at most 38 digits"
    ) in plan.text
    assert "Traceback" not in plan.text
    assert not (tmp_path / "big.duckdb").exists() or table_names(target) == []


def test_connection_manager_works_with_duckdb(tmp_path: Path) -> None:
    source = _flights_db(tmp_path / "flights.db")
    mngr = dsdb.ConnectionManager(
        {"local": {"driver": "sqlite", "database": str(tmp_path / "flights.db")}}, user="t"
    )
    mngr.backup_root = tmp_path / "backups"
    mngr.add_connections({"duck": {"driver": "duckdb", "database": str(tmp_path / "d.duckdb")}})
    assert mngr["duck"]["driver"] == "duckdb"
    assert "duckdb" in repr(mngr)
    with pytest.raises(ValueError, match="already"):
        mngr.add_connections({"again": {"url": f"duckdb:///{tmp_path / 'd.duckdb'}"}})
    try:
        mngr.migrate("local", "duck")
        mngr.backup("duck")
        mngr.add_connections(
            {"copy": {"driver": "duckdb", "database": str(tmp_path / "copy.duckdb")}}
        )
        mngr.restore("duck", "copy")
    finally:
        mngr.close()
    _same_tables(source, _duckdb_url(tmp_path / "d.duckdb"))
    _same_tables(source, _duckdb_url(tmp_path / "copy.duckdb"))


EXAMPLE = Path(__file__).parent.parent / "examples" / "duckdb"


def test_the_duckdb_example_runs_and_then_has_nothing_to_do(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "duckdb"
    shutil.copytree(EXAMPLE, work)
    seed = EXAMPLE.parent / "quickstart" / "seed.py"
    subprocess.run([sys.executable, seed, "data/flights.db"], cwd=work, check=True)
    monkeypatch.chdir(work)
    applied = run_cli(capsys, "apply", "--auto-approve")
    assert applied.code == 0, applied.text
    assert run_cli(capsys, "plan", "--detailed-exitcode").code == 0
    source = f"sqlite:///{work / 'data/flights.db'}"
    _same_tables(source, _duckdb_url(work / "data/analysis.duckdb"))
    _same_tables(source, _duckdb_url(work / "data/sandbox.duckdb"))


# -- the Arrow load path -------------------------------------------------------------------------


def _writer_target(tmp_path: Path, schema: TableSchema) -> sa.Engine:
    engine = sa.create_engine(_duckdb_url(tmp_path / "load.duckdb"))
    create_tables(engine, [schema])
    return engine


def test_the_arrow_writer_lands_every_awkward_value_exactly(tmp_path: Path) -> None:
    rows = fidelity._rows("duckdb", "duckdb")
    engine = _writer_target(tmp_path, fidelity.SCHEMA)
    convert = row_converter(fidelity.SCHEMA, "python", "duckdb")
    with engine.begin() as conn:
        writer = ArrowWriter(conn, fidelity.TABLE, fidelity.SCHEMA.columns, (), "insert")
        writer.write([convert(row) for row in rows])
    columns = fidelity.SCHEMA.columns
    found = fidelity._read(engine.url.render_as_string(), columns)
    fidelity._assert_same(found, fidelity._expected(rows, columns), columns)


def test_the_arrow_writer_upserts_and_ignores_by_key(tmp_path: Path) -> None:
    schema = TableSchema(
        "t",
        (ColumnSchema("id", "bigint", nullable=False), ColumnSchema("v", "text")),
        primary_key=("id",),
    )
    engine = _writer_target(tmp_path, schema)
    with engine.begin() as conn:
        ArrowWriter(conn, "t", schema.columns, ("id",), "insert").write([(1, "a"), (2, "b")])
        ArrowWriter(conn, "t", schema.columns, ("id",), "upsert").write([(2, "B"), (3, "c")])
        ArrowWriter(conn, "t", schema.columns, ("id",), "insert_ignore").write([(3, "x"), (4, "d")])
        rows = conn.exec_driver_sql("SELECT * FROM t ORDER BY id").all()
    assert [tuple(row) for row in rows] == [(1, "a"), (2, "B"), (3, "c"), (4, "d")]


def test_a_batch_of_a_table_that_references_itself_loads_parents_first(tmp_path: Path) -> None:
    """One multi-row INSERT cannot hold a row and the row it points at: the batch is cut."""
    schema = TableSchema(
        "tree",
        (ColumnSchema("id", "bigint", nullable=False), ColumnSchema("up", "bigint")),
        primary_key=("id",),
        foreign_keys=(ForeignKeySchema(None, ("up",), "tree", ("id",)),),
    )
    engine = _writer_target(tmp_path, schema)
    # Two levels under a root, parents first, as the copy orders them.
    rows = [(1, None), *((i, 1) for i in range(2, 50)), *((i, i - 48) for i in range(50, 98))]
    with engine.begin() as conn:
        ArrowWriter(conn, "tree", schema.columns, (), "insert").write(rows)
        found = conn.exec_driver_sql("SELECT * FROM tree ORDER BY id").all()
    assert [tuple(row) for row in found] == rows


def test_a_value_arrow_cannot_hold_is_refused_by_the_database_naming_it(tmp_path: Path) -> None:
    schema = TableSchema("d", (ColumnSchema("day", "date"),))
    engine = _writer_target(tmp_path, schema)
    with pytest.raises(Exception, match="not a date"), engine.begin() as conn:
        ArrowWriter(conn, "d", schema.columns, (), "insert").write([("not a date",)])


def test_an_upsert_updates_a_referenced_row_and_indexed_columns_where_they_differ(
    tmp_path: Path,
) -> None:
    """DuckDB refuses to update an indexed column of a row another table references: those
    columns are updated only in the rows where they changed."""
    parent = TableSchema(
        "parent",
        (
            ColumnSchema("id", "bigint", nullable=False),
            ColumnSchema("code", "text"),
            ColumnSchema("note", "text"),
        ),
        primary_key=("id",),
        indexes=(IndexSchema("ix_code", ("code",), unique=True),),
    )
    child = TableSchema(
        "child",
        (ColumnSchema("id", "bigint", nullable=False), ColumnSchema("parent", "bigint")),
        primary_key=("id",),
        foreign_keys=(ForeignKeySchema(None, ("parent",), "parent", ("id",)),),
    )
    engine = sa.create_engine(_duckdb_url(tmp_path / "upsert.duckdb"))
    create_tables(engine, [parent, child])
    with engine.begin() as conn:
        ArrowWriter(conn, "parent", parent.columns, (), "insert").write(
            [(1, "a", "old"), (2, "b", "old")]
        )
        conn.exec_driver_sql("INSERT INTO child VALUES (10, 1)")
    with engine.begin() as conn:
        ArrowWriter(conn, "parent", parent.columns, ("id",), "upsert").write(
            [(1, "a", "new"), (2, "B", "new"), (3, "c", "new")]
        )
        rows = conn.exec_driver_sql("SELECT * FROM parent ORDER BY id").all()
    assert [tuple(row) for row in rows] == [(1, "a", "new"), (2, "B", "new"), (3, "c", "new")]


def test_a_cycle_of_keys_copies_into_duckdb_without_the_key_that_closes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], write_manifest: Any
) -> None:
    """DuckDB creates a foreign key only to a table that exists and cannot add one later;
    the plan says which key is left out."""
    source = _sqlite(
        tmp_path / "cycle.db",
        "CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES b(id));"
        "CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a(id));"
        "INSERT INTO a VALUES (1, 1), (2, NULL); INSERT INTO b VALUES (1, 2);",
    )
    manifest = write_manifest(
        "version: 1\nconnections:\n"
        f"  src: {{driver: sqlite, database: {tmp_path / 'cycle.db'}}}\n"
        f"  dst: {{driver: duckdb, database: {tmp_path / 'planned.duckdb'}}}\n"
        "migrations:\n  m: {from: src, to: dst}\n"
    )
    plan = run_cli(capsys, "plan", manifest)
    assert plan.code == 0, plan.text
    assert (
        "a → dst.a: 2 rows (upsert, new table, foreign key (b_id) to b left out: DuckDB cannot "
        "make a key to a table created after its own (the tables' keys form a cycle))"
    ) in plan.out
    assert "b → dst.b: 1 row (upsert, new table)\n" in plan.out
    migrated = _duckdb_url(tmp_path / "migrated.duckdb")
    _migrate(tmp_path, source, migrated)
    restored = _duckdb_url(tmp_path / "restored.duckdb")
    mngr = _manager(tmp_path, src=source, dst=restored)
    try:
        mngr.backup("src")
        mngr.restore("src", "dst")
    finally:
        mngr.close()
    for target in (migrated, restored):
        _same_tables(source, target)
        tables = reflect_tables(sa.create_engine(target))
        assert [(t.name, fk.columns) for t in tables for fk in t.foreign_keys] == [("b", ("a_id",))]


def test_duckdb_native_types_travel_as_their_portable_forms(tmp_path: Path) -> None:
    """Lists, structs and maps as JSON, enums and intervals as text, HUGEINT as HUGEINT."""
    source = tmp_path / "native.duckdb"
    with sa.create_engine(_duckdb_url(source)).begin() as conn:
        conn.exec_driver_sql(
            "CREATE TYPE mood AS ENUM ('sad', 'happy');"
            "CREATE TABLE t (id INTEGER PRIMARY KEY, l VARCHAR[], s STRUCT(a INT, b VARCHAR),"
            " m MAP(VARCHAR, INT), e mood, h HUGEINT, ub UBIGINT, small UTINYINT);"
            "INSERT INTO t VALUES (1, ['x', NULL, 'y z'], {'a': 1, 'b': 'q'}, MAP {'k': 1},"
            " 'happy', 170141183460469231731687303715884105727, 18446744073709551615, 255),"
            " (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
        )
    target = _duckdb_url(tmp_path / "copy.duckdb")
    _migrate(tmp_path, _duckdb_url(source), target)
    (copied,) = reflect_tables(sa.create_engine(target), ["t"])
    assert [column.type for column in copied.columns] == [
        "integer",
        "json",
        "json",
        "json",
        "text",
        "decimal",
        "decimal",
        "smallint",
    ]
    with sa.create_engine(target).connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT id, l::VARCHAR, s::VARCHAR, m::VARCHAR, e, h, ub, small FROM t ORDER BY id"
        ).all()
    assert [tuple(row) for row in rows] == [
        (
            1,
            '["x",null,"y z"]',
            '{"a":1,"b":"q"}',
            '{"k":1}',
            "happy",
            170141183460469231731687303715884105727,
            Decimal("18446744073709551615"),
            255,
        ),
        (2, None, None, None, None, None, None, None),
    ]


@pytest.mark.parametrize("mode", ["replace", "mirror", "upsert"])
def test_a_resync_into_duckdb_keeps_referenced_and_self_referencing_tables_exact(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, write_manifest: Any, mode: str
) -> None:
    """DuckDB renames no table a key points at, and a renamed table's key to itself names the
    old name: a replace moves the rows into the table instead."""
    source = _flights_db(tmp_path / "flights.db")
    target = _duckdb_url(tmp_path / "flights.duckdb")
    text = _manifest(source, target) + (
        f"migrations:\n  copy: {{from: src, to: dst, mode: {mode}}}\n"
    )
    manifest = write_manifest(text)
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    with sqlite3.connect(tmp_path / "flights.db") as db:
        db.execute("UPDATE airlines SET active = 0 WHERE carrier = 'UA'")
        if mode == "replace":  # DuckDB refuses a new value under an index in a referenced row
            db.execute("UPDATE airlines SET name = 'United Airlines' WHERE carrier = 'UA'")
        db.execute("UPDATE flights SET delay = -1, note = 'changed' WHERE id % 10 = 0")
        if mode != "upsert":  # which keeps what the source deletes
            db.execute("DELETE FROM flights WHERE id = (SELECT max(id) FROM flights)")
        db.execute("INSERT INTO flights (id, carrier, previous) VALUES (1000, 'ua', 5)")
    resync = run_cli(capsys, "apply", manifest, "--auto-approve", "--allow-destroy")
    assert resync.code == 0, resync.text
    _same_tables(source, target)
    assert run_cli(capsys, "plan", manifest, "--detailed-exitcode").code == 0


def test_a_replace_into_duckdb_cut_short_after_dropping_the_indexes_makes_them_again(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    write_manifest: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DuckDB's swap drops the target's indexes in a step of their own: an apply stopped
    before it makes them again leaves the table without them, and the next apply restores
    the user's own index from its checkpoint."""
    source = _flights_db(tmp_path / "flights.db")
    target = _duckdb_url(tmp_path / "flights.duckdb")
    manifest = write_manifest(
        _manifest(source, target) + "migrations:\n  copy: {from: src, to: dst, mode: replace}\n"
    )
    assert run_cli(capsys, "apply", manifest, "--auto-approve").code == 0
    with sa.create_engine(target).begin() as conn:
        conn.exec_driver_sql("CREATE INDEX users_own ON airlines (name)")
    with sqlite3.connect(tmp_path / "flights.db") as db:
        db.execute("UPDATE airlines SET active = 0 WHERE carrier = 'UA'")

    def cut_short(*args: Any) -> None:
        raise OSError("the machine went down")

    with monkeypatch.context() as patched:
        patched.setattr(DuckDBEngine, "_move_rows", cut_short)
        cut = run_cli(capsys, "apply", manifest, "--auto-approve", "--allow-destroy")
        assert cut.code != 0, cut.text
    (between,) = reflect_tables(sa.create_engine(target), ["airlines"])
    assert between.indexes == ()  # the window this test is about

    resumed = run_cli(capsys, "apply", manifest, "--auto-approve", "--allow-destroy")
    assert resumed.code == 0, resumed.text
    (after,) = reflect_tables(sa.create_engine(target), ["airlines"])
    assert sorted((index.name, index.columns) for index in after.indexes) == [
        ("ix_airlines_name", ("name",)),  # the source's, which dsdb made
        ("users_own", ("name",)),
    ]
    _same_tables(source, target)
    assert run_cli(capsys, "plan", manifest, "--detailed-exitcode").code == 0


def test_connections_names_duckdb_and_its_version(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, write_manifest: Any
) -> None:
    import duckdb

    sa.create_engine(_duckdb_url(tmp_path / "there.duckdb")).connect().close()
    manifest = write_manifest(
        "version: 1\nconnections:\n"
        "  there: {driver: duckdb, database: there.duckdb}\n"
        "  later: {driver: duckdb, database: later.duckdb}\n"
    )
    result = run_cli(capsys, "connections", manifest)
    assert result.code == 0, result.text
    assert f"DuckDB {duckdb.__version__}, " in result.out
    assert f"DuckDB {duckdb.__version__} (file does not exist yet" in result.out


def test_a_change_in_a_duckdb_source_is_seen_by_the_next_plan(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, write_manifest: Any
) -> None:
    """DuckDB may hold a committed write in its WAL: its file gives no change token, so the
    plan reads the data."""
    source = _duckdb_url(tmp_path / "source.duckdb")
    _migrate(tmp_path, _flights_db(tmp_path / "flights.db"), source)
    assert change_token(sa.create_engine(source)) is None
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    _apply_then_plan_nothing(capsys, write_manifest, _manifest(source, target) + MIGRATION)
    with sa.create_engine(source).begin() as conn:
        conn.exec_driver_sql("UPDATE flights SET delay = 0 WHERE id = 7")
    manifest = write_manifest(_manifest(source, target) + MIGRATION)
    assert run_cli(capsys, "plan", manifest, "--detailed-exitcode").code == 2
    _apply_then_plan_nothing(capsys, write_manifest, _manifest(source, target) + MIGRATION)
    _same_tables(source, target)
