"""Target tables of migrations: the traps of issue 4 (item 4), each with its test, and the
checks a plan makes against an existing target."""

from __future__ import annotations

import dataclasses
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from dsdb_plan.dbschema import ColumnSchema, TableSchema, create_tables
from dsdb_plan.engines import engine_for
from dsdb_plan.errors import PlanError
from dsdb_plan.migrate.copier import copy_table
from dsdb_plan.migrate.subset import select_tables
from dsdb_plan.migrate.target import (
    ensure_target,
    finish_target,
    inspect_target,
    keys_left_out,
    misfit_values,
)
from dsdb_plan.models import MigrationTable
from tests.helpers import EVERY_DATABASE, database, fill, run_cli
from tests.servers import ServerDatabase
from tests.test_copier import selection


def _sqlite(path: Path, script: str) -> sa.Engine:
    with sqlite3.connect(path) as db:
        db.executescript(script)
    db.close()
    return sa.create_engine(f"sqlite:///{path}")


def _server(kind: str, request: pytest.FixtureRequest) -> sa.Engine:
    server: ServerDatabase = request.getfixturevalue(f"{kind}_db")
    return server.engine()


def _copy(source: sa.Engine, target: sa.Engine, table: str) -> None:
    chosen = selection(source, table, target=table)
    check = inspect_target(target, chosen, schema_changes="evolve")
    ensure_target(target, chosen, check)
    copy_table(source, target, chosen, mode="upsert", batch_size=1000)
    finish_target(target, chosen)


@pytest.mark.postgres
def test_sqlite_real_becomes_double_precision(tmp_path: Path, postgres_db: ServerDatabase) -> None:
    source = _sqlite(
        tmp_path / "s.db",
        "CREATE TABLE m (id INTEGER PRIMARY KEY, x REAL, y FLOAT, z DOUBLE);"
        "INSERT INTO m VALUES (1, 0.1 + 0.2, 1e-300, 123456789.123456789);",
    )
    target = postgres_db.engine()
    _copy(source, target, "m")
    with target.connect() as conn:
        types = dict(
            conn.execute(
                sa.text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = 'm'"
                )
            ).all()
        )
        row = conn.execute(sa.text("SELECT x, y, z FROM m")).one()
    assert types["x"] == types["y"] == types["z"] == "double precision"
    assert row == (0.1 + 0.2, 1e-300, 123456789.123456789)
    assert repr(row[0]) == "0.30000000000000004"


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_a_new_tables_keys_wait_for_the_load_where_one_query_checks_them_faster(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    # Both engines say a key added to a loaded table is checked faster than row by row as
    # rows load (`keys_faster_after_load`).
    source = _sqlite(
        tmp_path / "s.db",
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id));"
        "INSERT INTO parent VALUES (1), (2);"
        "INSERT INTO child VALUES (1, 1), (2, 2), (3, 1);",
    )
    target = _server(kind, request)
    _copy(source, target, "parent")
    child = selection(source, "child", target="child")
    ensure_target(target, child, inspect_target(target, child, schema_changes="evolve"))
    assert sa.inspect(target).get_foreign_keys("child") == []
    copy_table(source, target, child, mode="upsert", batch_size=2)
    finish_target(target, child)
    (key,) = sa.inspect(target).get_foreign_keys("child")
    assert (key["constrained_columns"], key["referred_table"]) == (["parent_id"], "parent")


@pytest.mark.postgres
def test_a_key_added_after_the_load_refuses_rows_that_point_nowhere(
    tmp_path: Path, postgres_db: ServerDatabase
) -> None:
    source = _sqlite(
        tmp_path / "s.db",
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
        "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id));"
        "INSERT INTO parent VALUES (1);"
        "INSERT INTO child VALUES (1, 1), (2, 7);",
    )
    target = postgres_db.engine()
    _copy(source, target, "parent")
    with pytest.raises(sa.exc.IntegrityError):
        _copy(source, target, "child")
    assert sa.inspect(target).get_foreign_keys("child") == []


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_identity_continues_after_the_copied_keys(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    source = _sqlite(
        tmp_path / "s.db",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT);"
        "INSERT INTO t VALUES (0, 'zero'), (5, 'five'), (41, 'forty-one');",
    )
    target = _server(kind, request)
    _copy(source, target, "t")
    table = sa.table("t", sa.column("id"), sa.column("name"))
    with target.begin() as conn:
        conn.execute(sa.insert(table).values(name="by the application"))
    with target.connect() as conn:
        rows = dict(conn.execute(sa.select(table.c.name, table.c.id)).all())
    # Key 0 stays 0 (MySQL would make it a new AUTO_INCREMENT id) and the next id is 42.
    assert rows == {"zero": 0, "five": 5, "forty-one": 41, "by the application": 42}


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_incompatible_existing_target_names_the_columns(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    source = _sqlite(
        tmp_path / "s.db",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, code VARCHAR(50), "
        "amount DECIMAL(12, 2), extra TEXT);",
    )
    target = _server(kind, request)
    with target.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name INTEGER, code VARCHAR(10), "
            "amount DECIMAL(6, 2), must INTEGER NOT NULL)"
        )
        conn.exec_driver_sql("CREATE TABLE k (name TEXT)")
    check = inspect_target(target, selection(source, "t", target="t"), schema_changes="evolve")
    assert check.exists and check.missing_columns == ("extra",)
    text = "\n".join(check.incompatible)
    assert "'name' is integer in the target but text in the source" in text
    assert "'code' is varchar(10) in the target but varchar(50) in the source" in text
    assert "'amount' is decimal(6,2) in the target but decimal(12,2) in the source" in text
    assert "column 'must' is NOT NULL without a default" in text
    assert "'id'" not in text
    assert check.problems == check.incompatible
    with pytest.raises(PlanError, match="'name' is integer"):
        ensure_target(target, selection(source, "t", target="t"), check)

    keyless = inspect_target(target, selection(source, "t", target="k"), schema_changes="evolve")
    assert any("key column 'id' missing" in entry for entry in keyless.incompatible)


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "mariadb"])
def test_a_new_source_column_is_added_when_evolving_and_refused_when_strict(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    source = _sqlite(
        tmp_path / "s.db",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO t VALUES (1, 'a');",
    )
    target = (
        sa.create_engine(f"sqlite:///{tmp_path / 't.db'}")
        if kind == "sqlite"
        else _server(kind, request)
    )
    _copy(source, target, "t")
    with source.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE t ADD COLUMN born DATE")
        conn.exec_driver_sql("UPDATE t SET born = '2001-02-03'")
    chosen = selection(source, "t", target="t")

    strict = inspect_target(target, chosen, schema_changes="strict")
    assert strict.missing_columns == ("born",) and not strict.incompatible
    assert (
        strict.problems
        and "column 'born' in the source but not in the target" in (strict.problems[0])
    )
    with pytest.raises(PlanError, match="schema: strict"):
        ensure_target(target, chosen, strict)

    evolve = inspect_target(target, chosen, schema_changes="evolve")
    assert evolve.missing_columns == ("born",) and not evolve.problems
    ensure_target(target, chosen, evolve)
    copy_table(source, target, chosen, mode="upsert", batch_size=10)
    with target.connect() as conn:
        born = conn.execute(sa.text("SELECT born FROM t")).scalar_one()
    assert str(born) == "2001-02-03"
    assert inspect_target(target, chosen, schema_changes="strict").problems == ()


def test_a_missing_table_reports_that_it_does_not_exist(tmp_path: Path) -> None:
    source = _sqlite(tmp_path / "s.db", "CREATE TABLE t (id INTEGER PRIMARY KEY);")
    target = sa.create_engine(f"sqlite:///{tmp_path / 't.db'}")
    check = inspect_target(target, selection(source, "t"), schema_changes="strict")
    assert check.exists is False and check.problems == ()


def test_only_engines_that_cannot_add_or_forward_keys_leave_a_cycles_closing_key_out(
    tmp_path: Path,
) -> None:
    source = _sqlite(
        tmp_path / "cycle.db",
        "CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES b(id));"
        "CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a(id));",
    )
    ordered = [selection(source, "a", target="a"), selection(source, "b", target="b")]
    closing = (
        "foreign key (b_id) to b left out: DuckDB cannot make a key to a table created after "
        "its own (the tables' keys form a cycle)"
    )
    assert keys_left_out(engine_for("duckdb"), ordered, existing=()) == {"a": [closing]}
    # A parent already in the target is there to point at; an existing table is not created.
    assert keys_left_out(engine_for("duckdb"), ordered, existing=("b",)) == {}
    assert keys_left_out(engine_for("duckdb"), ordered, existing=("a",)) == {}
    for other in ("sqlite", "postgresql", "mysql"):
        assert keys_left_out(engine_for(other), ordered, existing=()) == {}


def _decimal_source(path: Path) -> str:
    # SQLite keeps whatever a NUMERIC(9,6) column is given: nycflights13's airports hold
    # latitudes with seven decimals, and one value here has too many whole digits.
    _sqlite(
        path,
        "CREATE TABLE airports (faa TEXT PRIMARY KEY, lat NUMERIC(9,6), alt NUMERIC(5,1));"
        "INSERT INTO airports VALUES ('04G', 41.1304722, 1044), ('06A', 32.460572, 264.5),"
        " ('ZZZ', NULL, 12345.6), ('06C', 41.989341, NULL);",
    ).dispose()
    return f"sqlite:///{path}"


def test_sqlite_decimals_a_typed_target_would_round_are_a_plan_error(tmp_path: Path) -> None:
    import dsdb_plan as dsdb

    source = _decimal_source(tmp_path / "src.db")
    target = f"duckdb:///{tmp_path / 'out.duckdb'}"
    mngr = dsdb.ConnectionManager({"local": {"url": source}, "duck": {"url": target}}, user="t")

    with pytest.raises(PlanError) as raised:
        mngr.migrate("local", "duck")

    assert str(raised.value).split("; ") == [
        "table 'airports': column 'alt' holds 1 value in the source that decimal(5,1) cannot "
        "hold exactly (more than 1 decimal place or 4 whole digits, e.g. 12345.6)",
        "table 'airports': column 'lat' holds 1 value in the source that decimal(9,6) cannot "
        "hold exactly (more than 6 decimal places or 3 whole digits, e.g. 41.1304722)",
    ]
    assert (
        not (tmp_path / "out.duckdb").exists()
        or not sa.inspect(sa.create_engine(target)).get_table_names()
    )
    # Only the subset counts: without those rows the copy goes ahead, values exact.
    mngr.migrate("local", "duck", tables=["airports"], where={"faa": {"in": ["06A", "06C"]}})
    with sa.create_engine(target).connect() as conn:
        rows = conn.exec_driver_sql("SELECT faa, lat, alt FROM airports ORDER BY faa").all()
    assert [(faa, str(lat), alt and str(alt)) for faa, lat, alt in rows] == [
        ("06A", "32.460572", "264.5"),
        ("06C", "41.989341", None),
    ]


@pytest.mark.postgres
def test_sqlite_decimals_an_existing_numeric_column_would_round_are_a_plan_error(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = sa.create_engine(_decimal_source(tmp_path / "src.db"))
    target = _server("postgres", request)
    with target.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE airports (faa text PRIMARY KEY, lat numeric(10,7), alt numeric(6,1))"
        )
    chosen = selection(source, "airports", target="airports")

    check = inspect_target(target, chosen, schema_changes="strict", source=source)

    assert check.problems == ()  # numeric(10,7) holds every latitude, numeric(6,1) every alt
    with target.begin() as conn:  # the types the source declares, too small for its values
        conn.exec_driver_sql(
            "ALTER TABLE airports ALTER COLUMN lat TYPE numeric(9,6), "
            "ALTER COLUMN alt TYPE numeric(5,1)"
        )
    check = inspect_target(target, chosen, schema_changes="strict", source=source)
    assert check.problems == (
        "table 'airports': column 'alt' holds 1 value in the source that decimal(5,1) cannot "
        "hold exactly (more than 1 decimal place or 4 whole digits, e.g. 12345.6)",
        "table 'airports': column 'lat' holds 1 value in the source that decimal(9,6) cannot "
        "hold exactly (more than 6 decimal places or 3 whole digits, e.g. 41.1304722)",
    )


DUCKDB, SQLITE = engine_for("duckdb"), engine_for("sqlite")

#: Per declared SQLite type, a value its affinity could not convert (SQLite keeps it as it
#: is), which no column of the type holds, and one it holds.
MISFITS = [
    ("INTEGER", "'abc'", "text 'abc'", 7),
    ("INTEGER", "2.5", "real 2.5", 7),
    ("REAL", "'nope'", "text 'nope'", 1.5),
    ("TEXT", "x'00ff'", "blob b'\\x00\\xff'", "ok"),
    ("BLOB", "5", "integer 5", b"\x01"),
    ("BLOB", "'text'", "text 'text'", b"\x01"),
    ("NUMERIC(10, 2)", "'zz'", "text 'zz'", 1.25),
    ("BOOLEAN", "7", "integer 7", 1),
    ("BOOLEAN", "'maybe'", "text 'maybe'", 0),
    ("DATE", "20240101", "integer 20240101", "2024-01-01"),
]


@pytest.mark.parametrize(("declared", "stored", "shown", "fits"), MISFITS)
def test_a_value_no_column_of_its_type_holds_is_found_with_one_example(
    tmp_path: Path, declared: str, stored: str, shown: str, fits: object
) -> None:
    source = _sqlite(
        tmp_path / "s.db",
        f"CREATE TABLE t (id INTEGER PRIMARY KEY, c {declared}); "
        f"INSERT INTO t VALUES (1, {stored}), (2, {stored}), (3, NULL);",
    )
    with source.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (4, ?)", (fits,))
        conn.exec_driver_sql("INSERT INTO t VALUES (5, ?)", (fits,))
    chosen = selection(source, "t")
    kind = chosen.schema.column("c").type

    (line,) = misfit_values(source, chosen, DUCKDB)

    assert line == (
        f"table 't': column 'c' ({kind}) holds 2 values in the source that dsdb cannot copy "
        f"as {kind} (e.g. {shown})"
    )
    assert misfit_values(source, chosen.restricted(chosen.source.c.id > 3), DUCKDB) == []
    assert misfit_values(source, chosen, SQLITE) == []  # values go across untouched


def test_a_masked_columns_misfits_are_counted_but_never_shown(tmp_path: Path) -> None:
    source = _sqlite(
        tmp_path / "s.db",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, ssn INTEGER);"
        "INSERT INTO t VALUES (1, 'x-secret');",
    )
    chosen = dataclasses.replace(selection(source, "t"), mask={"ssn": "hash"})

    (line,) = misfit_values(source, chosen, DUCKDB)

    assert "x-secret" not in line and line.endswith("(values not shown: the column is masked)")


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_plan_into_a_typed_engine_refuses_values_the_target_column_cannot_hold(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """Before the check, the plan was clean and the apply failed half-way on the target's
    conversion error; into SQLite every value keeps its class, so nothing is refused."""
    _sqlite(
        tmp_path / "s.db",
        "CREATE TABLE a (id INTEGER PRIMARY KEY, n INTEGER); INSERT INTO a VALUES (1, 1);"
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, b BLOB);"
        "INSERT INTO t VALUES (1, 'abc', x'00'), (2, 2, 'text');",
    ).dispose()
    target = (
        f"url: '{request.getfixturevalue('postgres_db').url_string}'"
        if kind == "postgresql"
        else "database: t.duckdb"
    )
    manifest = tmp_path / "dsdb.yaml"
    manifest.write_text(
        "version: 1\nconnections:\n  s: {driver: sqlite, database: s.db}\n"
        f"  t: {{driver: {kind}, {target}}}\n  c: {{driver: sqlite, database: c.db}}\n"
        "migrations:\n  typed: {from: s, to: t}\n  same: {from: s, to: c}\n"
    )

    result = run_cli(capsys, "apply", "--auto-approve", manifest)

    assert result.code == 1
    assert (
        "migration.typed: table 't': column 'n' (bigint) holds 1 value in the source that "
        "dsdb cannot copy as bigint (e.g. text 'abc')"
    ) in result.err
    assert "column 'b' (binary) holds 1 value" in result.err
    assert "correct or clear those values in the source" in result.err
    assert "migration.same" not in result.err
    assert not (tmp_path / "c.db").exists() and not (tmp_path / "t.duckdb").exists()


#: Decimals as each typed engine holds them, and whether SQLite would round them.
DECIMALS = TableSchema(
    "amounts",
    (
        ColumnSchema("id", "bigint", nullable=False),
        ColumnSchema("d", "decimal", precision=30, scale=10),
    ),
    primary_key=("id",),
)
WIDE = [
    (1, Decimal("12345678901234567890.0123456789")),  # 30 significant digits
    (2, Decimal("-1234567890.123456789")),  # 19
    (3, Decimal("9999999999999999999")),  # whole, but past 64 bits
]
EXACT = [
    (4, Decimal("123456789012345678")),  # whole within 64 bits: stored as an integer
    (5, Decimal("-0.0001234567")),  # 7 significant digits
    (6, Decimal("12345.6789012345")),  # 15
    (7, None),
]


@pytest.mark.parametrize("kind", ["duckdb", *EVERY_DATABASE[2:]])
def test_sqlite_as_target_refuses_decimals_it_would_round_and_keeps_the_others_exactly(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """SQLite's NUMERIC keeps 15 significant digits of a number text (a whole number within
    64 bits is an integer): before the check the plan was clean, the apply wrote rounded
    values and then failed its verification."""
    source = database(request, tmp_path, kind)
    fill(source, DECIMALS, WIDE + EXACT)
    url = source.url.render_as_string(hide_password=False)
    manifest = tmp_path / "dsdb.yaml"
    manifest.write_text(
        f"version: 1\nconnections:\n  s: {{url: '{url}'}}\n"
        "  t: {driver: sqlite, database: t.db}\nmigrations:\n  down: {from: s, to: t}\n"
    )

    refused = run_cli(capsys, "plan", manifest)

    assert refused.code == 1
    assert (
        "migration.down: table 'amounts': column 'd' holds 3 values with more than 15 "
        "significant digits (e.g. -1234567890.1234567890), which SQLite stores as a double, "
        "rounding them"
    ) in refused.err
    assert "copy such a column into an engine that keeps its digits" in refused.err

    with source.begin() as conn:
        conn.execute(sa.text("DELETE FROM amounts WHERE id < 4"))
    applied = run_cli(capsys, "apply", "--auto-approve", manifest)
    assert applied.code == 0, applied.text
    with sqlite3.connect(tmp_path / "t.db") as db:
        landed = db.execute("SELECT id, d FROM amounts ORDER BY id").fetchall()
    assert [(i, None if d is None else Decimal(str(d))) for i, d in landed] == EXACT


NON_FINITE = TableSchema(
    "readings",
    (
        ColumnSchema("id", "bigint", nullable=False),
        ColumnSchema("at", "datetime"),
        ColumnSchema("day", "date"),
        ColumnSchema("f", "double"),
        ColumnSchema("n", "decimal"),
    ),
    primary_key=("id",),
)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("target", "refused"),
    [
        ("postgresql", ["at", "day"]),
        ("sqlite", ["at", "day", "n"]),
        ("duckdb", ["at", "day", "n"]),
        pytest.param("mariadb", ["at", "day", "f", "n"], marks=pytest.mark.mariadb),
    ],
)
def test_postgresql_infinities_and_nans_are_refused_where_they_cannot_land(
    request: pytest.FixtureRequest, tmp_path: Path, target: str, refused: list[str]
) -> None:
    """No Python date holds 'infinity'; MariaDB holds no non-finite float, and only
    PostgreSQL a non-finite decimal: each failed the apply half-way."""
    source = request.getfixturevalue("postgres_db").engine()
    create_tables(source, [NON_FINITE])
    with source.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO readings VALUES (1, 'infinity', '-infinity', 'NaN', 'NaN'), "
            "(2, '2024-01-01', '2024-01-01', '-Infinity', 'Infinity'), (3, NULL, NULL, 1.5, 2.5)"
        )
    (chosen,) = select_tables(source, {"readings": MigrationTable()}, "none")

    lines = misfit_values(source, chosen, engine_for(target))

    columns = [line.split("'")[3] for line in lines]
    assert columns == refused
    by_column = dict(zip(columns, lines, strict=True))
    assert by_column["at"].endswith(
        "holds 1 value in the source that dsdb cannot copy as datetime (e.g. infinity)"
    )
    if "f" in by_column:
        assert "holds 2 values" in by_column["f"]
